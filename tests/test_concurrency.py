"""Many reports at once, and trials whose records the storage is still creating."""

from __future__ import annotations

import math
import threading
import time

import optuna
import pytest
from optuna.trial import TrialState

import hpo_nb
from hpo_nb import RunState
from hpo_nb.engine.controller import FAIL_REASON_KEY
from hpo_nb.engine.mirror import Mirror
from hpo_nb.engine.records import retry_params
from hpo_nb.execution.protocol import TrialAhead
from hpo_nb.io.storage import open_storage

SPECIAL = {3: math.inf, 4: -math.inf, 5: math.nan}


def many_reports(trial):
    x = trial.suggest_float("x", 0, 1)
    for step in range(50):  # no pause: the values reach the controller in bursts
        trial.report(SPECIAL.get(step, x + step), step)
    return x


def sleepy(trial):
    time.sleep(0.3)
    return trial.suggest_float("x", 0, 1)


def test_every_reported_value_is_stored(any_db):
    """Values are written in batches; each one lands, infinities and NaN included."""
    run = hpo_nb.run(many_reports, n_trials=6, storage=any_db, sampler="random", wait=True)
    assert run.state == RunState.COMPLETED, run.reason
    trials = optuna.load_study(study_name="many_reports", storage=any_db).trials
    assert len(trials) == 6
    for t in trials:
        x = t.params["x"]
        assert set(t.intermediate_values) == set(range(50))
        for step, value in t.intermediate_values.items():
            expected = SPECIAL.get(step, x + step)
            assert (math.isnan(value) and math.isnan(expected)) or value == pytest.approx(expected)


def test_stop_while_the_storage_creates_trials_leaves_none_running(db, monkeypatch):
    """The controller hands a trial out once the storage has created it; a stop in between
    still ends that trial (FAIL, with the reason) instead of leaving it RUNNING."""
    create = Mirror._create_trial

    def slow_create(self, *args):
        time.sleep(0.5)
        return create(self, *args)

    monkeypatch.setattr(Mirror, "_create_trial", slow_create)
    run = hpo_nb.run(sleepy, n_trials=10, storage=db)
    deadline = time.monotonic() + 60
    while run.progress.running < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    run.stop()
    run.wait(timeout=60)
    assert run.state == RunState.STOPPED
    trials = optuna.load_study(study_name="sleepy", storage=db).trials
    assert trials and {t.state for t in trials} <= {TrialState.FAIL, TrialState.COMPLETE}
    failed = [t for t in trials if t.state == TrialState.FAIL]
    assert {t.system_attrs[FAIL_REASON_KEY] for t in failed} <= {"cancelled: stopped by user"}
    assert run.progress.failed == len(failed) and run.progress.running == 0


def reports_then_waits(trial):
    x = trial.suggest_float("x", 0, 1)
    trial.report(x, 0)  # the trial's first message leaves at once
    time.sleep(0.2 + x)
    return x


def test_the_loop_goes_on_while_the_storage_creates_a_trial(db, monkeypatch):
    """A message of a trial whose record the storage is still creating waits for it, in order,
    without holding up the messages of the other trials: here the third trial's record waits
    (its worker has started it and reported) while the second trial ends."""
    create, calls, gate = Mirror._create_trial, [], threading.Event()

    def third_waits(self, *args):
        calls.append(1)
        if len(calls) == 3:
            assert gate.wait(60)
        return create(self, *args)

    monkeypatch.setattr(Mirror, "_create_trial", third_waits)
    first_two = [{"x": 0.0}, {"x": 1.0}]  # 0.2 s, then the third starts; 1.2 s
    run = hpo_nb.run(  # seeded: nothing sent ahead, the third goes to the first worker free
        reports_then_waits,
        n_trials=3,
        storage=db,
        sampler="random",
        seed=0,
        workers=2,
        enqueue=first_two,
    )
    try:
        deadline = time.monotonic() + 60
        while run.progress.complete < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(calls) == 3 and not gate.is_set()
        assert run.progress.complete == 2  # recorded while the third trial's record waited
    finally:
        gate.set()
        run.wait(timeout=60)
    assert run.state == RunState.COMPLETED, run.reason
    trials = optuna.load_study(study_name="reports_then_waits", storage=db).trials
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3
    assert [t.params["x"] for t in trials[:2]] == [0.0, 1.0]
    assert all(t.intermediate_values == {0: t.params["x"]} == {0: t.value} for t in trials)


def test_a_new_trial_is_written_before_the_queued_writes(db):
    """A worker waits for its trial's record; the previous trials' results need not go first."""
    optuna.create_study(study_name="order", storage=db)
    mirror = Mirror(
        open_storage(db),
        "order",
        optuna.samplers.RandomSampler(seed=0),
        optuna.pruners.NopPruner(),
    )
    try:
        first = mirror.create(mirror.draw()).result()
        gate, order = threading.Event(), []
        mirror._write(gate.wait)  # the writer is busy
        for i in range(3):
            mirror._write(order.append, f"result {i}")
        created = mirror.create(mirror.draw())
        created.add_done_callback(lambda f: order.append("new trial"))
        gate.set()
        second = created.result()
        mirror.flush()
        assert order == ["new trial", "result 0", "result 1", "result 2"]
        assert (first.number, second.number) == (0, 1)
    finally:
        mirror.close()


def test_values_sampled_ahead_become_params_only_when_asked_for(db):
    """A trial drawn ahead carries independent samples for the known parameters; one that
    the objective asks for with that distribution is stored as the trial's, and the others
    are no params of it (only the values it was given, ``hpo_nb:given``, list them)."""
    optuna.create_study(study_name="ahead", storage=db)
    mirror = Mirror(
        open_storage(db), "ahead", optuna.samplers.RandomSampler(seed=1), optuna.pruners.NopPruner()
    )
    space = {"x": optuna.distributions.FloatDistribution(0, 1)}
    space["k"] = optuna.distributions.IntDistribution(0, 9)
    try:
        t = mirror.create(mirror.draw(space)).result()
        (dx, x), (_, k) = t.proposed["x"], t.proposed["k"]
        assert 0 <= x <= 1 and 0 <= k <= 9
        assert mirror.suggest(t, "x", dx) == x  # the objective asked for x only
        mirror.finish(t, TrialState.COMPLETE, [x])
        mirror.flush()
        (stored,) = optuna.load_study(study_name="ahead", storage=db).trials
        assert stored.params == {"x": x} and stored.distributions == {"x": dx}
        assert "fixed_params" not in stored.system_attrs
    finally:
        mirror.close()


def test_a_trial_records_the_values_it_was_given_for_its_retry(db):
    """A trial whose kernel dies before its worker reported the values it used (they travel
    with its next message) still has them in its record: ``--retry-failed`` runs them again."""
    optuna.create_study(study_name="given", storage=db)
    sampler = optuna.samplers.RandomSampler(seed=2)
    mirror = Mirror(open_storage(db), "given", sampler, optuna.pruners.NopPruner())
    space = {"x": optuna.distributions.FloatDistribution(0, 1)}
    try:
        t = mirror.create(mirror.draw(space)).result()
        mirror.flush()
    finally:
        mirror.close()
    (orphan,) = optuna.load_study(study_name="given", storage=db).trials
    assert orphan.state == TrialState.RUNNING and orphan.params == {}
    assert retry_params(orphan) == {"x": t.proposed["x"][1]}
    # What the storage has wins over what was given.
    stored = optuna.trial.create_trial(
        params={"x": 0.5}, distributions=space, value=1.0, system_attrs=orphan.system_attrs
    )
    assert retry_params(stored) == {"x": 0.5}


def test_each_running_trial_has_its_successor_sent_while_it_runs(db, monkeypatch):
    """Trials that end together (a burst) wait for no round trip: the controller draws one
    trial per running trial while they run, none beyond the budget, and sends each to the
    task of a running trial, which starts it the moment its trial ends; none in memory
    becomes a stored trial unless started."""
    started_ahead = []
    process = hpo_nb.engine.controller.Controller._handle

    def counting(self, task, envelope):
        if envelope.body.op == "finish" and envelope.body.next is not None:
            started_ahead.append(envelope.body.next)
        return process(self, task, envelope)

    monkeypatch.setattr(hpo_nb.engine.controller.Controller, "_handle", counting)
    run = hpo_nb.run(sleepy, n_trials=6, storage=db, workers=2)
    controller = run._controller
    waiting, sent = [], []
    while not controller.done.is_set():
        waiting.append(len(controller.supply.ahead) + len(controller.supply.sent))
        sent.append(len(controller.supply.sent))
        time.sleep(0.01)
    assert run.state == RunState.COMPLETED
    assert max(waiting) == 2  # two running, so two successors; not more
    assert max(sent) == 2
    # The first two came with their tasks; of the other four, on a busy machine, one may
    # end before its successor arrives (it asks for it then).
    assert len(started_ahead) >= 3
    study = optuna.load_study(study_name=run.progress.study, storage=db)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 6


LOW, HIGH = 0.0, 1.0


def computed_range(trial):
    time.sleep(0.2)
    return trial.suggest_float("x", LOW, HIGH)  # not literal: learnt from the first trials


@pytest.mark.parametrize(
    ("objective", "most_requests"),
    [(sleepy, 0), (computed_range, 4)],
    ids=["literal", "computed"],
)
def test_trials_get_their_parameters_without_asking(db, monkeypatch, objective, most_requests):
    """A trial's parameters travel with it, sampled when it was drawn: those of literal
    ``suggest_*`` calls from the first trial on; others once a running trial has asked for
    them. Only the trials drawn before any asked (the first two, and the two sent ahead to
    their workers at once) ask for a computed range."""
    requests = []
    process = hpo_nb.engine.controller.Controller._handle

    def counting(self, task, envelope):
        if envelope.body.op == "suggest":
            requests.append(envelope.body.name)
        return process(self, task, envelope)

    monkeypatch.setattr(hpo_nb.engine.controller.Controller, "_handle", counting)
    run = hpo_nb.run(objective, n_trials=8, storage=db, workers=2, sampler="random", wait=True)
    assert run.state == RunState.COMPLETED, run.reason
    assert len(requests) <= most_requests
    trials = optuna.load_study(study_name=run.progress.study, storage=db).trials
    assert len(trials) == 8 and all(0 <= t.params["x"] <= 1 for t in trials)


def test_a_graceful_stop_takes_back_the_trials_sent_ahead(db):
    """Trials sent ahead to the workers are not started once the run stops gracefully: the
    running trials finish, and nothing else reaches the storage."""
    run = hpo_nb.run(sleepy, n_trials=20, storage=db, workers=2)
    controller = run._controller
    deadline = time.monotonic() + 60
    while len(controller.supply.sent) < 2 and time.monotonic() < deadline:
        time.sleep(0.005)
    running = run.progress.running
    run.stop(graceful=True)
    run.wait(timeout=60)
    assert run.state == RunState.STOPPED
    study = optuna.load_study(study_name=run.progress.study, storage=db)
    assert running == 2
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * running


def instant(trial):
    return trial.suggest_float("x", 0, 1)


def test_short_trials_are_not_sent_ahead(db, monkeypatch):
    """A trial that ends before its successor could reach its worker asks for it anyway: once
    the trials are known to be that short, the controller sends none ahead on its own (only
    the first tasks, before any trial ended, may have got one; see the next test)."""
    sent = []
    tell = hpo_nb.execution.channel.ControllerChannel.tell

    def counting(self, attempt, answer):
        if isinstance(answer, TrialAhead):
            sent.append(answer.id)
        return tell(self, attempt, answer)

    monkeypatch.setattr(hpo_nb.execution.channel.ControllerChannel, "tell", counting)
    run = hpo_nb.run(instant, n_trials=30, storage=db, workers=2, wait=True)
    assert run.state == RunState.COMPLETED, run.reason
    assert len(sent) <= 2
    study = optuna.load_study(study_name=run.progress.study, storage=db)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 30


def test_a_short_trial_comes_with_its_successor(db, monkeypatch):
    """Trials too short for a successor sent later: the answer to a task's request carries
    the trial it asked for and the next (drawn then if none was drawn ahead), which the task
    starts the moment the first ends; so it asks for about every other trial instead of each."""
    requests, started_ahead = [], []
    process = hpo_nb.engine.controller.Controller._handle

    def counting(self, task, envelope):
        if envelope.body.op == "finish" and envelope.body.next is not None:
            started_ahead.append(envelope.body.next)
        elif envelope.body.op == "finish" and envelope.wants_answer:
            requests.append(envelope.key)
        return process(self, task, envelope)

    monkeypatch.setattr(hpo_nb.engine.controller.Controller, "_handle", counting)
    run = hpo_nb.run(instant, n_trials=40, storage=db, workers=2, sampler="random", wait=True)
    assert run.state == RunState.COMPLETED, run.reason
    assert len(started_ahead) >= 10  # 0-2 without (the first tasks' only)
    assert len(requests) + len(started_ahead) == 40  # each trial ended one way or the other
    study = optuna.load_study(study_name=run.progress.study, storage=db)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 40
