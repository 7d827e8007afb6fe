"""The panel's progress: what it receives, how often, and how it reads as text."""

from __future__ import annotations

import itertools
import json
import math
import time

import hpo_nb
from hpo_nb.engine.progress import Progress, RunState
from hpo_nb.frontends.panel import Panel


def instant(trial):
    return trial.suggest_float("x", -1, 1) ** 2


def test_the_widget_shows_the_final_state(db):
    run = hpo_nb.run(instant, n_trials=40, storage=db, wait=True)
    widget = run.widget
    p = widget.progress
    assert p["state"] == "completed" and p["finished"] == 40 and p["target"] == 40
    assert p["complete"] == 40 and p["running"] == 0 and p["ended_at"] is not None
    assert p["best_value"] == run.best_value and p["best_params"] == run.best_params
    assert repr(widget) == run.progress.summary() and "\n" not in repr(widget)
    json.dumps(p, allow_nan=False)


def test_updates_are_throttled(db):
    updates = []
    run = hpo_nb.run(instant, n_trials=300, storage=db)
    run._controller.subscribe(lambda p: updates.append((time.monotonic(), p.state, p.finished)))
    run.wait(120)
    assert run.state == RunState.COMPLETED and updates[-1][1:] == (RunState.COMPLETED, 300)
    # Changes of state are sent at once; between them, updates come at most every interval.
    steady = [
        b[0] - a[0] for a, b in itertools.pairwise(updates) if a[1] == b[1] == RunState.RUNNING
    ]
    assert steady, "the run was too short to see regular updates"
    assert min(steady) >= hpo_nb.settings.widget_interval * 0.99, steady


def test_snapshot_json_is_strict_json():
    progress = Progress(study="s", target=3, best_value=math.inf, best_params={"x": math.nan})
    data = progress.to_json()
    json.dumps(data, allow_nan=False)
    assert data["best_value"] is None and data["best_params"] == {"x": "nan"}


def test_summary_is_stable_and_short():
    p = Progress(
        study="quickstart",
        target=30,
        complete=25,
        pruned=4,
        failed=1,
        best_value=0.97123456,
        state=RunState.COMPLETED,
    )
    assert p.summary() == (
        "quickstart: 30/30 finished (25 complete, 4 pruned, 1 failed, 0 running), "
        "best 0.971235 [completed]"
    )
    assert len(p.summary()) <= 110


def test_eta_follows_this_runs_pace():
    start = time.time() - 10
    p = Progress(
        study="s",
        target=30,
        finished_before=10,
        complete=20,
        started_at=start,
        state=RunState.RUNNING,
    )
    assert p.eta is not None and math.isclose(p.eta, 10.0, rel_tol=0.05)
    assert Progress(study="s", target=5, state=RunState.RUNNING).eta is None


def test_widget_ships_its_front_end():
    widget = Panel(lambda command: None)
    assert "export default" in str(widget._esm) and "hpo-panel" in str(widget._esm)
    assert ".hpo-panel" in str(widget._css)
