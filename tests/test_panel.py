"""The control panel's Python side: what it sends, and what its commands do to the study."""

from __future__ import annotations

import json
import time

import optuna
import pytest

import hpo_nb
from hpo_nb.engine.rows import downsample, trial_row
from hpo_nb.frontends.console import Console, importance_of
from hpo_nb.search.space import SearchSpace


def curve(trial):
    """Define-by-run: a float, an int and a choice, five reports, prunable."""
    import time as _time

    x = trial.suggest_float("x", -5, 5)
    n = trial.suggest_int("n", 0, 10)
    kind = trial.suggest_categorical("kind", ["a", "b"])
    value = (x - 1) ** 2 + n / 10 + (kind == "b")
    for step in range(5):
        trial.report(value * (5 - step), step)
        if trial.should_prune():
            raise optuna.TrialPruned()
        _time.sleep(0.01)
    return value


def slow(trial):
    import time as _time

    x = trial.suggest_float("x", -5, 5)
    _time.sleep(0.2)
    return x**2


class Sent:
    """Records what the panel sends to the front end."""

    def __init__(self, panel):
        self.messages = []
        panel.send = lambda content, buffers=None: self.messages.append(
            json.loads(json.dumps(content, allow_nan=False))
        )

    def rows(self, reset=None):
        return [
            r
            for m in self.messages
            if m["kind"] == "trials" and (reset is None or m["reset"] == reset)
            for r in m["rows"]
        ]


def _wait_for(predicate, timeout=60.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("timed out")


def test_the_panel_follows_a_run_with_deltas_top_trials_and_importance(db):
    run = hpo_nb.run(curve, n_trials=60, storage=db, seed=1)
    console = hpo_nb.panel(run)
    sent = Sent(console.panel)
    run.wait(120)
    _wait_for(lambda: console.panel.progress.get("state") == "completed")
    study = optuna.load_study(study_name="curve", storage=db)
    numbers = sorted(t.number for t in study.trials)
    # Every trial arrives once, as it finishes; the deltas never resend old rows.
    deltas = sent.rows(reset=False)
    assert sorted(r["n"] for r in deltas) == numbers
    assert all(len(m["rows"]) < 60 for m in sent.messages)
    # A new view gets everything in one reset.
    console.command({"cmd": "sync"})
    reset = sent.messages[-1]
    assert reset["reset"] and reset["total"] == 60
    assert sorted(r["n"] for r in reset["rows"]) == numbers
    row = next(r for r in reset["rows"] if r["s"] == "complete")
    assert row["w"] and row["t1"] >= row["t0"] and len(row["iv"]) == 5
    pruned = [r for r in reset["rows"] if r["s"] == "pruned"]
    assert all(r["ps"] == r["iv"][-1][0] for r in pruned)
    # The top table is the ten best, best first.
    best = sorted(t.value for t in study.trials if t.state.name == "COMPLETE")[:10]
    assert [r["v"][0] for r in console.panel.top] == best
    _wait_for(lambda: console.panel.importance.get("params"))
    assert {p for p, _ in console.panel.importance["params"]} == {"x", "n", "kind"}
    # The discovered space lists the code's parameters.
    assert console.panel.space["source"] == "discovered"
    assert console.panel.space["params"]["x"] == {
        "type": "float", "low": -5.0, "high": 5.0, "log": False, "step": None
    }  # fmt: skip
    assert console.panel.can["resume"] and not console.panel.can["stop"]


def test_prune_events_say_why(db):
    run = hpo_nb.run(curve, n_trials=40, storage=db, seed=2, wait=True)
    events = [e for e in run.progress.events if "pruned" in e]
    assert events, run.progress.events
    assert any("vs median" in e and "pruned at step" in e for e in events), events
    assert run.progress.events_total >= len(run.progress.events)


def test_drafts_are_validated_with_the_python_messages(db):
    space = {"x": {"type": "float", "low": -5, "high": 5}}
    console = hpo_nb.panel(slow, storage=db, n_trials=10, space=space)
    declared = SearchSpace.parse(space).to_dict()
    assert console.panel.space == {"params": declared, "source": "declared"}
    bad = {"x": {"type": "float", "low": 3, "high": -3}}
    console.command({"cmd": "draft", "space": {"params": bad}})
    with pytest.raises(hpo_nb.HpoError) as expected:
        SearchSpace.parse(bad)
    assert console.panel.draft_error == str(expected.value)
    assert "greater than high" in console.panel.draft_error
    good = {"x": {"type": "float", "low": 0, "high": 1}}
    console.command({"cmd": "draft", "space": {"params": good}})
    assert console.panel.draft_error == ""
    # A define-by-run objective's parameters come from its code.
    console = hpo_nb.panel(curve, storage=db, n_trials=10)
    console.command({"cmd": "draft", "space": {"params": good}})
    assert "not in the objective's code" in console.panel.draft_error


def test_config_changes_are_checked(db):
    console = hpo_nb.panel(curve, storage=db, n_trials=10)
    console.command({"cmd": "config", "config": {"sampler": "simulated-annealing"}})
    assert "unknown sampler" in console.panel.config_error
    assert console.panel.config["sampler"] == "auto"
    console.command({"cmd": "config", "config": {"n_trials": 0}})
    assert "n_trials must be an integer >= 1, got 0" in console.panel.config_error
    console.command({"cmd": "config", "config": {"sampler": "random", "n_trials": 12}})
    assert console.panel.config_error == ""
    assert console.panel.config["sampler"] == "random" and console.panel.config["n_trials"] == 12


def test_start_then_stop_from_the_panel(db):
    console = hpo_nb.panel(slow, storage=db, n_trials=500)
    assert console.loaded.wait(30) and console.panel.can["start"] and not console.panel.can["stop"]
    console.command({"cmd": "start"})
    assert console.run is not None
    _wait_for(lambda: console.panel.progress.get("finished", 0) >= 3)
    assert console.panel.can["stop"]
    console.command({"cmd": "stop"})
    console.run.wait(60)
    _wait_for(lambda: console.panel.progress.get("state") == "stopped")
    assert hpo_nb.status("slow", storage=db).state == "stopped"
    study = optuna.load_study(study_name="slow", storage=db)
    assert all(t.state.is_finished() for t in study.trials)
    assert console.panel.can["resume"]


def test_narrowing_a_range_changes_later_trials_of_the_same_study(db):
    console = hpo_nb.panel(slow, storage=db, n_trials=400, sampler="random")
    console.loaded.wait(30)
    console.command({"cmd": "start"})
    _wait_for(lambda: console.panel.progress.get("finished", 0) >= 2)
    _wait_for(lambda: "x" in console.panel.space["params"])
    narrowed = {"x": {"type": "float", "low": -5, "high": -4}}
    console.command({"cmd": "apply", "space": {"params": narrowed}})
    assert console.panel.status == "later trials use the edited space", console.panel.status
    study = optuna.load_study(study_name="slow", storage=db)
    first_new = len(study.trials) + 2  # trials already running keep their values
    _wait_for(lambda: console.panel.progress.get("finished", 0) >= first_new + 6)
    console.command({"cmd": "stop_now"})
    console.run.wait(60)
    later = [t for t in study.trials if t.number >= first_new and "x" in t.params]
    assert len(later) >= 5
    assert all(-5 <= t.params["x"] <= -4 for t in later), [t.params["x"] for t in later]
    assert console.panel.space["params"]["x"]["high"] == -4


def test_changing_choices_continues_as_a_linked_child_study(db):
    hpo_nb.run(curve, n_trials=20, storage=db, seed=3, wait=True)
    console = hpo_nb.panel("curve", storage=db)
    assert console.loaded.wait(30) and console.panel.progress["finished"] == 20
    assert console.panel.can["resume"] is False  # no objective: it can only watch
    console = hpo_nb.panel(curve, storage=db, n_trials=30)
    assert console.loaded.wait(30) and console.panel.can["resume"]
    console.command({"cmd": "apply", "space": {"params": {"kind": ["a"]}}})
    _wait_for(lambda: "continued as study 'curve-2'" in console.panel.status, 30)
    assert console.panel.study["name"] == "curve-2" and console.panel.study["parent"] == "curve"
    assert console.run is None and console.panel.can["resume"]  # it was idle: it stays so
    console.command({"cmd": "resume"})
    console.run.wait(120)
    parent = optuna.load_study(study_name="curve", storage=db)
    child = optuna.load_study(study_name="curve-2", storage=db)
    fitting = [t for t in parent.trials if t.params.get("kind") == "a" and t.state.name != "FAIL"]
    carried = [t for t in child.trials if "hpo_nb:parent" in t.system_attrs]
    assert len(carried) == len(fitting)
    assert all(t.params["kind"] == "a" for t in child.trials if "kind" in t.params)
    assert child._storage.get_study_system_attrs(child._study_id)["hpo_nb:parent"] == "curve"
    assert len([t for t in child.trials if t.state.is_finished()]) >= 30


def test_the_saved_output_holds_a_static_snapshot(db):
    run = hpo_nb.run(curve, n_trials=15, storage=db, seed=4, wait=True)
    panel = hpo_nb.panel(run).panel  # what IPython displays for a run (see hpo_nb.__init__)
    _wait_for(lambda: panel.progress.get("state") == "completed")
    bundle = panel._repr_mimebundle_()
    data = bundle[0] if isinstance(bundle, tuple) else bundle
    assert "application/vnd.jupyter.widget-view+json" in data
    html = data["text/html"]
    assert "curve" in html and "completed" in html and "15/15 finished" in html
    assert f"{run.best_value:.6g}" in html


def test_rows_downsample_keeps_the_extremes_and_the_latest():
    rows = [{"n": i, "s": "complete", "v": [float((i * 7919) % 1000)]} for i in range(10_000)]
    kept = downsample(rows, 1000)
    assert len(kept) == 1000 and [r["n"] for r in kept] == sorted(r["n"] for r in kept)
    values = [r["v"][0] for r in kept]
    assert min(values) == 0 and max(values) == 999
    assert kept[-1]["n"] == 9999


def test_importance_comes_from_optunas_default_evaluator():
    dists = {
        "x": optuna.distributions.FloatDistribution(-1, 1),
        "y": optuna.distributions.FloatDistribution(-1, 1),
    }
    study = optuna.create_study()
    study.optimize(
        lambda t: 10 * t.suggest_float("x", -1, 1) ** 2 + 0.01 * t.suggest_float("y", -1, 1),
        n_trials=60,
    )
    rows = [trial_row(t) for t in study.trials]
    result = importance_of(rows, dists)
    assert result["params"][0][0] == "x" and result["params"][0][1] > result["params"][1][1]


def test_unknown_names_are_one_line_errors(db):
    with pytest.raises(hpo_nb.HpoError, match="neither an objective nor a study"):
        Console(study="nothing-here", options=hpo_nb.RunOptions(storage=db))


def test_a_resumed_runs_panel_holds_every_earlier_trial_by_its_number(db):
    hpo_nb.run(curve, n_trials=20, storage=db, seed=5, wait=True)
    run = hpo_nb.run(curve, n_trials=30, storage=db, seed=6)
    console = hpo_nb.panel(run)
    sent = Sent(console.panel)
    run.wait(120)
    _wait_for(lambda: console.panel.progress.get("state") == "completed")
    console.command({"cmd": "sync"})
    rows = sent.messages[-1]["rows"]
    study = optuna.load_study(study_name="curve", storage=db)
    stored = {t.number: t for t in study.trials}
    assert sorted(r["n"] for r in rows) == sorted(stored) and len(rows) == 30
    for r in rows:
        assert r["p"] == stored[r["n"]].params
