"""A study through an existing dask scheduler whose workers run elsewhere and see no files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import optuna
import pytest
from optuna.trial import TrialState

import hpo_nb

CELL = """
x = trial.suggest_float("x", 0, 10)
for step in range(5):
    trial.report(x + step, step)
    if trial.should_prune():
        raise optuna.TrialPruned()
trial.set_user_attr("cwd", os.getcwd())
x
"""


@pytest.fixture
def scheduler(tmp_path):
    """``dask scheduler`` plus ``dask worker`` (2 processes) started in another directory."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    bin_dir = os.path.dirname(sys.executable)
    file = tmp_path / "scheduler.json"
    procs = [
        subprocess.Popen(
            [
                os.path.join(bin_dir, "dask"),
                "scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--no-dashboard",
                "--scheduler-file",
                str(file),
            ],
            cwd=elsewhere,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    ]
    deadline = time.monotonic() + 60
    while not file.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    address = json.loads(file.read_text())["address"]
    procs.append(
        subprocess.Popen(
            [
                os.path.join(bin_dir, "dask"),
                "worker",
                address,
                "--nworkers",
                "2",
                "--nthreads",
                "1",
                "--no-dashboard",
                "--local-directory",
                str(elsewhere),
            ],
            cwd=elsewhere,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    )
    try:
        yield address, elsewhere
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            p.wait(30)


def test_study_runs_on_workers_that_cannot_see_the_database(scheduler, tmp_path, monkeypatch):
    address, elsewhere = scheduler
    notebook = tmp_path / "notebook"
    notebook.mkdir()
    monkeypatch.chdir(notebook)
    objective = hpo_nb.objective_from_cell("remote", CELL, {"optuna": optuna, "os": os})
    run = hpo_nb.run(objective, n_trials=16, cluster=address, sampler="random", seed=0)
    run.wait(timeout=180)
    assert run.state == hpo_nb.RunState.COMPLETED, run.reason
    trials = optuna.load_study(study_name="remote", storage="sqlite:///hpo.db").trials
    assert len(trials) == 16
    states = {t.state for t in trials}
    assert states <= {TrialState.COMPLETE, TrialState.PRUNED} and TrialState.COMPLETE in states
    assert {t.user_attrs["cwd"] for t in trials if t.state == TrialState.COMPLETE} == {
        str(elsewhere)
    }
    assert all(len(t.intermediate_values) >= 1 for t in trials)
    assert not list(elsewhere.rglob("*.db")), "a worker created a database file"
