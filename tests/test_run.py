"""Runs through the Python API on a real local dask cluster and a real SQLite file."""

from __future__ import annotations

import collections
import math
import os
import signal
import threading
import time
import weakref

import optuna
import pytest
from optuna.trial import TrialState

import hpo_nb
from hpo_nb import HpoError, RunState
from hpo_nb.engine import interrupts as interrupts
from hpo_nb.engine.controller import FAIL_REASON_KEY, TRACEBACK_KEY


def curve(trial):
    x = trial.suggest_float("x", 0, 10)
    k = trial.suggest_int("k", 1, 3)
    for step in range(4):
        trial.report(x * k + step, step)
    return x * k


def pruned_when_bad(trial):
    x = trial.suggest_float("x", 0, 10)
    for step in range(10):
        trial.report(x + step, step)
        if trial.should_prune():
            raise optuna.TrialPruned()
    return x


def by_mode(trial):
    mode = trial.suggest_categorical("mode", ["ok", "raise", "nan", "none", "str"])
    if mode == "raise":
        raise ValueError(f"bad mode {mode}")
    return {"ok": 1.0, "nan": math.nan, "none": None, "str": "0.9"}[mode]


def slow(trial):
    trial.suggest_float("x", 0, 1)
    for _ in range(2400):  # two minutes unless cancelled
        time.sleep(0.05)
        trial.should_prune()
    return 0.0


def reporter(trial):
    trial.suggest_float("x", 0, 1)
    for step in range(2400):  # two minutes unless cancelled
        time.sleep(0.05)
        trial.report(0.0, step)
    return 0.0


def sleepy(trial):
    time.sleep(0.3)
    return trial.suggest_float("x", 0, 1)


def two_goals(trial):
    x = trial.suggest_float("x", 0, 1)
    return x, 1 - x**2


def where(trial):
    trial.set_user_attr("pid", os.getpid())
    return trial.suggest_float("x", 0, 1)


def trials_of(db, name):
    return optuna.load_study(study_name=name, storage=db).trials


def test_values_params_and_intermediate_values_are_stored(db):
    run = hpo_nb.run(curve, n_trials=12, storage=db, sampler="random", seed=1, wait=True)
    assert run.state == RunState.COMPLETED and run.reason == "reached 12 finished trials"
    trials = trials_of(db, "curve")
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 12
    for t in trials:
        x, k = t.params["x"], t.params["k"]
        assert t.value == pytest.approx(x * k)
        assert t.intermediate_values == {s: pytest.approx(x * k + s) for s in range(4)}
        assert set(t.distributions) == {"x", "k"}
    best = min(trials, key=lambda t: t.value)
    assert run.best_value == best.value and run.best_params == best.params
    assert run.progress.best_value == best.value and run.progress.best_number == best.number


def test_pruning_runs_on_the_workers(db):
    run = hpo_nb.run(
        pruned_when_bad,
        n_trials=30,
        storage=db,
        sampler="random",
        seed=3,
        pruner="median",
        wait=True,
    )
    states = collections.Counter(t.state for t in trials_of(db, "pruned_when_bad"))
    assert states[TrialState.PRUNED] > 0 and states[TrialState.COMPLETE] >= 5
    assert run.progress.pruned == states[TrialState.PRUNED]
    for t in trials_of(db, "pruned_when_bad"):
        if t.state == TrialState.PRUNED:
            assert len(t.intermediate_values) < 10


def test_no_pruner_never_prunes(db):
    hpo_nb.run(pruned_when_bad, n_trials=12, storage=db, pruner="none", wait=True)
    assert {t.state for t in trials_of(db, "pruned_when_bad")} == {TrialState.COMPLETE}


def test_failures_record_their_reason_and_the_study_goes_on(db):
    study = optuna.create_study(study_name="by_mode", storage=db)
    for mode in ["raise", "nan", "none", "str", "ok"]:
        study.enqueue_trial({"mode": mode})
    run = hpo_nb.run(by_mode, n_trials=5, storage=db, wait=True)
    trials = {t.params["mode"]: t for t in trials_of(db, "by_mode")}
    assert trials["ok"].state == TrialState.COMPLETE and trials["ok"].value == 1.0
    reasons = {m: trials[m].system_attrs.get(FAIL_REASON_KEY) for m in trials if m != "ok"}
    assert reasons["raise"] == "ValueError: bad mode raise"
    assert "ValueError: bad mode raise" in trials["raise"].system_attrs[TRACEBACK_KEY]
    assert reasons["nan"] == "objective returned NaN"
    assert "returned None" in reasons["none"]
    assert "returned a str" in reasons["str"]
    assert all(trials[m].state == TrialState.FAIL for m in reasons)
    assert run.progress.failed == 4 and run.progress.last_failure.startswith("trial ")


def test_resume_counts_every_finished_trial(db):
    hpo_nb.run(curve, n_trials=4, storage=db, wait=True)
    run = hpo_nb.run(curve, n_trials=7, storage=db, wait=True)
    assert run.progress.finished_before == 4 and len(trials_of(db, "curve")) == 7
    again = hpo_nb.run(curve, n_trials=7, storage=db, wait=True)
    assert again.state == RunState.COMPLETED and "already has 7 finished" in again.reason
    assert len(trials_of(db, "curve")) == 7


def wait_until_running(run, n=2):
    deadline = time.monotonic() + 60
    while run.progress.running < n and time.monotonic() < deadline:
        time.sleep(0.05)
    assert run.progress.running == n


@pytest.mark.parametrize(
    ("objective", "pruner"), [(slow, "median"), (slow, "none"), (reporter, "median")]
)
def test_stop_cancels_running_trials_and_frees_the_workers(db, objective, pruner):
    """Trials that ask (should_prune, answered on the worker without a pruner) or only report
    all stop; the next run gets the workers."""
    run = hpo_nb.run(objective, n_trials=10, storage=db, pruner=pruner, workers=2)
    wait_until_running(run)
    run.stop()
    run.wait(timeout=30)
    assert run.state == RunState.STOPPED and run.reason == "stopped by user"
    trials = trials_of(db, objective.__name__)
    assert trials and all(t.state == TrialState.FAIL for t in trials)
    assert {t.system_attrs[FAIL_REASON_KEY] for t in trials} == {"cancelled: stopped by user"}
    # The cancelled objectives left the workers (else they would hold them for two minutes).
    after = hpo_nb.run(curve, n_trials=4, storage=db).wait(timeout=60)
    assert after.state == RunState.COMPLETED


def drop_a_ctrl_c():
    """A Ctrl-C whose KeyboardInterrupt Python prints and drops: its handler runs inside a
    weakref callback, as it does when the garbage collector happens to run one then."""

    class Thing:
        pass

    thing = Thing()
    ref = weakref.ref(thing, lambda _: signal.raise_signal(signal.SIGINT))
    del thing
    assert ref() is None


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_ctrl_c_python_dropped_still_stops_a_waiting_run(db):
    """hpo_nb.run(wait=True) and %hpo_run --wait: a Ctrl-C is remembered while they start."""
    handler = signal.getsignal(signal.SIGINT)
    with interrupts.watch():
        run = hpo_nb.run(slow, n_trials=10, storage=db, workers=2)
        wait_until_running(run)
        drop_a_ctrl_c()
        with pytest.raises(KeyboardInterrupt):  # not a plain return when the timeout passes
            run.wait(timeout=20)
    assert signal.getsignal(signal.SIGINT) is handler
    assert run.state == RunState.STOPPED and run.reason == "interrupted"
    trials = trials_of(db, "slow")
    assert trials and {t.system_attrs[FAIL_REASON_KEY] for t in trials} == {
        "cancelled: interrupted"
    }
    # Forgotten once raised: the next wait runs to the end.
    assert hpo_nb.run(curve, n_trials=3, storage=db).wait().state == RunState.COMPLETED


def test_graceful_stop_lets_running_trials_finish(db):
    run = hpo_nb.run(sleepy, n_trials=50, storage=db, workers=2)
    wait_until_running(run)
    run.stop(graceful=True)
    run.wait(timeout=30)
    trials = trials_of(db, "sleepy")
    assert run.state == RunState.STOPPED and 2 <= len(trials) < 50
    assert {t.state for t in trials} == {TrialState.COMPLETE}


def test_time_limit_stops_starting_trials(db):
    start = time.monotonic()
    run = hpo_nb.run(sleepy, n_trials=1000, storage=db, timeout=1.0, wait=True)
    assert run.state == RunState.STOPPED and run.reason == "time limit of 1 s reached"
    assert time.monotonic() - start < 30
    trials = trials_of(db, "sleepy")
    assert 0 < len(trials) < 1000 and {t.state for t in trials} == {TrialState.COMPLETE}


def test_multi_objective(db):
    run = hpo_nb.run(
        two_goals, n_trials=10, storage=db, directions=["minimize", "maximize"], wait=True
    )
    trials = trials_of(db, "two_goals")
    assert all(t.state == TrialState.COMPLETE and len(t.values) == 2 for t in trials)
    assert 1 <= len(run.best_trials) <= 10
    with pytest.raises(RuntimeError):
        _ = run.best_value


def test_trials_run_in_worker_processes(db):
    hpo_nb.run(where, n_trials=6, storage=db, wait=True)
    pids = {t.user_attrs["pid"] for t in trials_of(db, "where")}
    assert os.getpid() not in pids and 1 <= len(pids) <= 2


def test_a_study_runs_once_at_a_time(db):
    run = hpo_nb.run(slow, n_trials=4, storage=db)
    try:
        with pytest.raises(HpoError, match="already running in this kernel"):
            hpo_nb.run(slow, n_trials=4, storage=db)
    finally:
        run.stop().wait(30)


def test_direction_mismatch_on_resume_is_refused_and_harmless(db):
    hpo_nb.run(curve, n_trials=3, storage=db, wait=True)
    with pytest.raises(HpoError, match=r"optimizes minimize but the objective declares maximize"):
        hpo_nb.run(curve, n_trials=5, storage=db, direction="maximize")
    assert len(trials_of(db, "curve")) == 3


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_trials": 0}, "n_trials must be an integer >= 1, got 0"),
        ({"n_trials": -3}, "n_trials must be an integer >= 1, got -3"),
        ({"n_trials": "5"}, "n_trials must be an integer >= 1, got '5'"),
        ({"n_trials": 5, "sampler": "bayes"}, "unknown sampler 'bayes': choose from auto, tpe, gp"),
        ({"n_trials": 5, "pruner": "early"}, "unknown pruner 'early'"),
        ({"n_trials": 5, "workers": 0}, "workers must be an integer >= 1, got 0"),
        ({"n_trials": 5, "timeout": -1}, "timeout must be a positive number of seconds, got -1"),
        ({"n_trials": 5, "storage": "sqlite:////no/such/dir/x.db"}, "folder /no/such/dir"),
        ({"n_trials": 5, "storage": "nosuchdb://x"}, "cannot open storage nosuchdb://x"),
    ],
)
def test_bad_input_is_one_line(kwargs, message, db):
    kwargs.setdefault("storage", db)
    with pytest.raises(HpoError, match=message) as info:
        hpo_nb.run(curve, **kwargs)
    assert "\n" not in str(info.value)


def test_unpicklable_globals_are_named():
    namespace = {"lock": threading.Lock()}
    obj = hpo_nb.objective_from_cell("uses_lock", "with lock:\n    pass\n1.0", namespace)
    with pytest.raises(HpoError, match=r"it uses 'lock', which cannot be pickled"):
        hpo_nb.run(obj, n_trials=2)


def test_repr_is_one_stable_line(db):
    run = hpo_nb.run(curve, n_trials=3, storage=db, wait=True)
    text = repr(run)
    assert text == repr(run) and "\n" not in text
    assert text.startswith("<hpo_nb.Run curve: 3/3 finished (3 complete, 0 pruned, 0 failed")
    assert text.endswith("[completed]>")


def flat(trial):
    trial.suggest_float("x", 0, 1)
    return 1.0


def creeping(trial):
    trial.suggest_float("x", 0, 1)
    # Improves by a millionth per trial: below any sensible min_delta.
    return -1e-6 * trial.number


def study_record(db, name):
    from hpo_nb.engine.records import RECORD_KEY

    rdb = optuna.storages.RDBStorage(db)
    return rdb.get_study_system_attrs(rdb.get_study_id_from_name(name))[RECORD_KEY]


def test_patience_stops_a_converged_study(db):
    run = hpo_nb.run(flat, n_trials=200, storage=db, patience=5, workers=2, wait=True)
    assert run.state == RunState.CONVERGED
    assert run.reason.startswith("converged: no improvement of at least 0 in 5 finished trials")
    # one improving trial, then five without; trials already running when it stops finish
    trials = trials_of(db, "flat")
    assert 6 <= len(trials) <= 8 and {t.state for t in trials} == {TrialState.COMPLETE}
    assert study_record(db, "flat")["state"] == "converged"


def test_min_delta_ignores_tiny_improvements(db):
    run = hpo_nb.run(creeping, n_trials=200, storage=db, patience=4, min_delta=0.001, wait=True)
    assert run.state == RunState.CONVERGED and len(trials_of(db, "creeping")) < 20
    tiny = hpo_nb.run(creeping, n_trials=12, study="no_delta", storage=db, patience=4, wait=True)
    assert tiny.state == RunState.COMPLETED  # every trial improves a little


def test_max_time_ends_the_run_and_cancels_running_trials(db):
    start = time.monotonic()
    run = hpo_nb.run(slow, n_trials=10, storage=db, max_time=2.0).wait(60)
    assert time.monotonic() - start < 30
    assert run.state == RunState.STOPPED and run.reason == "max time of 2 s reached"
    trials = trials_of(db, "slow")
    assert trials and {t.system_attrs[FAIL_REASON_KEY] for t in trials} == {
        "cancelled: max time of 2 s reached"
    }
    assert study_record(db, "slow")["state"] == "stopped"


SPACE = {
    "optimizer": ["sgd", "adam"],
    "lr": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
    "momentum": {"type": "float", "low": 0.0, "high": 0.9, "when": {"optimizer": "sgd"}},
}


def uses_params(trial):
    params = trial.params
    return params["lr"] * (1 + params.get("momentum", 0.0))


def test_declarative_space_with_conditions(db):
    run = hpo_nb.run(
        uses_params, n_trials=16, storage=db, space=SPACE, sampler="random", seed=4, wait=True
    )
    assert run.state == RunState.COMPLETED
    trials = trials_of(db, "uses_params")
    assert {t.params["optimizer"] for t in trials} == {"sgd", "adam"}
    for t in trials:
        assert ("momentum" in t.params) == (t.params["optimizer"] == "sgd")
        assert t.state == TrialState.COMPLETE


def test_a_declared_space_is_sampled_with_the_trial_and_asks_nothing(db, monkeypatch):
    from hpo_nb.engine.controller import Controller

    ops: list[str] = []
    handle = Controller._handle

    def counting(self, task, envelope):
        ops.append(envelope.body.op)
        handle(self, task, envelope)

    monkeypatch.setattr(Controller, "_handle", counting)
    run = hpo_nb.run(uses_params, n_trials=12, storage=db, space=SPACE, sampler="random", wait=True)
    assert run.state == RunState.COMPLETED
    assert "suggest" not in ops  # every value came with its trial, momentum when it applied too
    trials = trials_of(db, "uses_params")
    assert len(trials) == 12 and all(t.state == TrialState.COMPLETE for t in trials)
    for t in trials:
        assert ("momentum" in t.params) == (t.params["optimizer"] == "sgd")
        assert t.value == pytest.approx(t.params["lr"] * (1 + t.params.get("momentum", 0.0)))


def test_cell_objective_gets_params_from_its_space(db):
    obj = hpo_nb.objective_from_cell(
        "cell_space",
        "params['lr'] + params.get('momentum', 0)",
        {},
        space=hpo_nb.SearchSpace.parse(SPACE),
    )
    assert obj(optuna.trial.FixedTrial({"optimizer": "adam", "lr": 0.01})) == 0.01
    hpo_nb.run(obj, n_trials=6, storage=db, wait=True)
    for t in trials_of(db, "cell_space"):
        assert t.value == pytest.approx(t.params["lr"] + t.params.get("momentum", 0))


def test_enqueued_configurations_run_first_and_once(db):
    seeds = [{"x": 0.25}, {"x": 0.75}]
    hpo_nb.run(sleepy, n_trials=3, storage=db, enqueue=seeds, workers=1, wait=True)
    hpo_nb.run(sleepy, n_trials=5, storage=db, enqueue=seeds, workers=2, wait=True)
    values = [t.params["x"] for t in trials_of(db, "sleepy")]
    assert values[:2] == [0.25, 0.75] and values.count(0.25) == values.count(0.75) == 1


def test_ci_trials_apply_only_under_ci(db, monkeypatch):
    monkeypatch.setenv("CI", "1")
    run = hpo_nb.run(curve, n_trials=50, ci_trials=3, storage=db, wait=True)
    assert len(trials_of(db, "curve")) == 3 and run.progress.target == 3
    monkeypatch.delenv("CI")
    run = hpo_nb.run(curve, n_trials=5, ci_trials=3, storage=db, wait=True)
    assert len(trials_of(db, "curve")) == 5


def test_a_changed_objective_warns_and_versions_its_trials(db):
    from hpo_nb.engine.records import TRIAL_KEY

    first = hpo_nb.objective_from_cell("versioned", "trial.suggest_float('x', 0, 1)", {})
    second = hpo_nb.objective_from_cell("versioned", "2 * trial.suggest_float('x', 0, 1)", {})
    hpo_nb.run(first, n_trials=2, storage=db, wait=True)
    hpo_nb.run(first, n_trials=3, storage=db, wait=True)  # the same code: no warning
    with pytest.warns(hpo_nb.ObjectiveChangedWarning, match="changed since the study's last run"):
        hpo_nb.run(second, n_trials=5, storage=db, wait=True)
    versions = [t.system_attrs[TRIAL_KEY]["version"] for t in trials_of(db, "versioned")]
    assert versions[:3] == [first.fingerprint] * 3 and versions[3:] == [second.fingerprint] * 2


def constrained(trial):
    x = trial.suggest_float("x", 0, 1)
    trial.set_constraint("x_below_half", x - 0.5)
    return x, 1 - x


def test_constraints_reach_the_storage_and_the_pareto_front(db):
    run = hpo_nb.run(
        constrained,
        n_trials=12,
        storage=db,
        sampler="nsga2",
        sampler_options={"population_size": 4},
        seed=0,
        directions=["minimize", "minimize"],
        wait=True,
    )
    for t in trials_of(db, "constrained"):
        assert t.system_attrs["constraints:x_below_half"] == pytest.approx(t.params["x"] - 0.5)
    assert all(t.params["x"] <= 0.5 for t in run.best_trials)  # only feasible trials


class _Watching(optuna.samplers.RandomSampler):
    """Random search that notes, for each trial it starts, how many others were running."""

    def __init__(self) -> None:
        super().__init__(seed=0)
        self.others_running: list[int] = []

    def before_trial(self, study, trial):
        running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        self.others_running.append(len(running) - 1)


def test_the_next_trial_is_drawn_while_the_current_one_runs(db):
    sampler = _Watching()
    try:
        hpo_nb.run(sleepy, n_trials=4, storage=db, sampler=sampler, workers=1, wait=True)
    finally:
        hpo_nb.close_clusters()  # later tests expect the default two workers
    # One worker runs one trial at a time, yet later trials were drawn during earlier ones.
    assert max(sampler.others_running[1:]) == 1
    trials = trials_of(db, "sleepy")
    assert [t.number for t in trials] == [0, 1, 2, 3]  # nothing drawn ahead reached the storage
    assert all(t.state == TrialState.COMPLETE for t in trials)
