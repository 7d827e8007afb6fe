"""The execution layer on CPU workers: concurrency cap, hard timeouts, lost workers, retries,
monitoring."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

import hpo_nb
from hpo_nb import HpoError, RunState
from hpo_nb.engine.records import FAIL_REASON_KEY, TRIAL_KEY


def stamped(trial):
    from distributed import get_worker

    x = trial.suggest_float("x", 0, 1)
    start = time.time()
    time.sleep(0.2)
    trial.set_user_attr("span", [start, time.time()])
    trial.set_user_attr("worker", str(get_worker().name))
    return x


def trials_of(db, name):
    return optuna.load_study(study_name=name, storage=db).trials


def most_at_once(trials):
    spans = [t.user_attrs["span"] for t in trials if "span" in t.user_attrs]
    return max(sum(1 for s in spans if s[0] < moment < s[1]) for moment, _ in spans) + 1


def test_concurrency_cap_holds_under_load(db):
    run = hpo_nb.run(stamped, n_trials=12, storage=db, concurrency=1, wait=True)
    assert run.state == RunState.COMPLETED
    assert most_at_once(trials_of(db, "stamped")) == 1
    hpo_nb.run(stamped, n_trials=24, storage=db, wait=True)  # uncapped: both workers
    assert most_at_once(trials_of(db, "stamped")[12:]) == 2


HANGS_ONCE = """
from distributed import get_worker
x = trial.suggest_float("x", 0, 1)
trial.set_user_attr("worker", str(get_worker().name))
if not marker.exists():
    marker.write_text("hung")
    time.sleep(10**6)  # never returns, never asks: only killing its process ends it
time.sleep(0.4)
x
"""


def hangs_once(marker: Path) -> hpo_nb.Objective:
    """An objective whose first trial hangs (the marker file is shared by its workers)."""
    return hpo_nb.objective_from_cell("hangs", HANGS_ONCE, {"marker": marker, "time": time})


def in_task(trial):
    from distributed import get_worker

    trial.set_user_attr("task", str(get_worker().get_current_task()))
    return stamped(trial)


def test_each_worker_thread_runs_trials_one_after_another_in_one_task(db):
    run = hpo_nb.run(in_task, n_trials=12, storage=db, workers=2, wait=True)
    assert run.state == RunState.COMPLETED
    trials = trials_of(db, "in_task")
    assert len(trials) == 12 and all(t.state == TrialState.COMPLETE for t in trials)
    tasks = {t.user_attrs["task"] for t in trials}
    assert 1 <= len(tasks) <= 2  # at most one per worker thread, not one per trial
    # every trial, the first of each task (which travels with the task) too, knows where it ran
    ran_on = [t.system_attrs[TRIAL_KEY] for t in trials]
    assert all(r["worker"].startswith("tcp://") and "gpu" in r for r in ran_on)


def test_a_hung_trial_is_killed_and_its_worker_serves_again(db, tmp_path):
    start = time.monotonic()
    objective = hangs_once(tmp_path / "hung")
    run = hpo_nb.run(objective, n_trials=16, storage=db, trial_timeout=2, workers=1, wait=True)
    hpo_nb.run(objective, n_trials=2, study="resize", storage=db, workers=2, wait=True)
    trials = trials_of(db, "hangs")
    hung = trials[0]
    assert hung.state == TrialState.FAIL
    assert hung.system_attrs[FAIL_REASON_KEY] == "timeout after 2 s"
    assert (hung.datetime_complete - hung.datetime_start).total_seconds() < 2 + 5
    assert run.state == RunState.COMPLETED and len(trials) == 16
    # one worker only: every later trial ran on the restarted worker
    assert all(t.state == TrialState.COMPLETE for t in trials[1:])
    assert any("timed out after 2 s" in e for e in run.progress.events)
    assert time.monotonic() - start < 60


DIES_ONCE = """
x = trial.suggest_float("x", 0, 1)
if x == 0.5 and not marker.exists():
    marker.write_text(str(os.getpid()))
    os.kill(os.getpid(), signal.SIGKILL)  # the worker process dies mid-trial
x
"""


def test_a_lost_worker_fails_its_trial_and_the_retry_runs_elsewhere(db, tmp_path):
    namespace = {"marker": tmp_path / "died", "os": os, "signal": signal}
    dies_once = hpo_nb.objective_from_cell("dies_once", DIES_ONCE, namespace)
    run = hpo_nb.run(
        dies_once,
        n_trials=4,
        storage=db,
        retries=1,
        enqueue={"x": 0.5},
        wait=True,
        workers=2,
    )
    trials = trials_of(db, "dies_once")
    first = trials[0]
    assert first.state == TrialState.FAIL
    assert first.system_attrs[FAIL_REASON_KEY] == (
        "its worker process died during the trial (killed, or out of memory)"
    )
    (retry,) = [t for t in trials if (t.system_attrs.get(TRIAL_KEY) or {}).get("retry_of") == 0]
    assert retry.params == {"x": 0.5} and retry.state == TrialState.COMPLETE
    # the failure was retried, so it does not count: 4 more finished trials besides it
    assert run.state == RunState.COMPLETED and len(trials) == 5 and run.progress.retried == 1
    assert any("will run again (retry 1 of 1)" in e for e in run.progress.events)


def test_stop_now_kills_trials_that_ignore_it(db, tmp_path):
    run = hpo_nb.run(hangs_once(tmp_path / "hung"), n_trials=4, storage=db)
    deadline = time.monotonic() + 60
    while run.progress.running < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    run.stop().wait(60)
    assert run.state == RunState.STOPPED
    assert any("restarting worker" in e for e in run.progress.events)
    after = hpo_nb.run(stamped, n_trials=4, storage=db).wait(60)  # both workers serve again
    assert after.state == RunState.COMPLETED


def test_monitoring_reports_each_worker_without_nvml(db):
    seen = []
    hpo_nb.execution.cluster.get_client("local").wait_for_workers(
        2, timeout=60
    )  # after restarts above
    run = hpo_nb.run(stamped, n_trials=16, storage=db, workers=2)
    run.subscribe(lambda p: seen.extend(p.resources))
    run.wait(60)
    assert seen
    workers = {r["worker"] for r in seen}
    assert len(workers) == 2
    assert all(r["rss"] > 10_000_000 and r["cpu"] >= 0 for r in seen)
    assert not any("gpu_utilization" in r for r in seen)  # no NVML here: CPU figures only
    assert any(r["trial"] is not None for r in seen)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"concurrency": 0}, "concurrency must be an integer >= 1, got 0"),
        ({"trial_timeout": -1}, "trial_timeout must be a positive number of seconds"),
        ({"retries": -1}, "retries must be an integer >= 0"),
        ({"cluster": "cuda"}, "--cluster cuda needs an NVIDIA GPU"),
        ({"cluster": "tcp://127.0.0.1:1"}, "cannot reach the dask scheduler at tcp://127.0.0.1:1"),
        ({"cluster": "tcp://127.0.0.1:1", "workers": 2}, "--workers sizes the local CPU"),
    ],
)
def test_execution_options_are_checked(kwargs, message, db):
    run = None
    try:
        run = hpo_nb.run(stamped, n_trials=2, storage=db, **kwargs)
        run.wait(60)
    except HpoError as e:
        assert message in str(e)
        return
    assert run.state == RunState.FAILED and message in run.reason


def test_cluster_shows_its_dashboard():
    info = hpo_nb.cluster("local")
    assert info.kind == "local" and info.workers == 2 and info.gpus == 0
    assert info.dashboard and info.dashboard.startswith("http://127.0.0.1:")
    assert "dashboard http://127.0.0.1" in repr(info) and "<a href=" in info._repr_html_()
