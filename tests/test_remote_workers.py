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


POSTGRES = "postgresql+psycopg://127.0.0.1:5432/test"

SLOW_CELL = """
x = trial.suggest_float("x", 0, 10)
for step in range(4):
    time.sleep(0.15)
    trial.report(x + step, step)
    if trial.should_prune():
        raise optuna.TrialPruned()
x
"""


@pytest.mark.database
@pytest.mark.kernel
def test_remote_workers_postgres_and_a_second_kernel_watching(scheduler, tmp_path):
    from _kernel import Kernel

    address, _ = scheduler
    name = f"remote-pg-{os.getpid()}"
    objective = hpo_nb.objective_from_cell("remote_pg", SLOW_CELL, {"optuna": optuna, "time": time})
    watcher = Kernel(str(tmp_path))
    try:
        watcher.ok("%load_ext hpo_nb")
        run = hpo_nb.run(
            objective,
            n_trials=24,
            study=name,
            storage=POSTGRES,
            cluster=address,
            sampler="random",
            seed=1,
        )
        seen = []
        while not run.done:
            reply = watcher.execute(f"%hpo_status {name} --storage {POSTGRES}")
            if reply.status == "ok":
                seen.append(reply.text)
            time.sleep(0.5)
        run.wait(60)
        assert run.state == hpo_nb.RunState.COMPLETED, run.reason
        running = [s for s in seen if ": running" in s]
        assert len(running) >= 2, seen
        finished = [int(s.split(", ")[1].split()[0]) for s in running]
        assert finished == sorted(finished) and finished[-1] > finished[0]
        trials = optuna.load_study(study_name=name, storage=POSTGRES).trials
        assert len(trials) == 24
        assert {t.state for t in trials} <= {TrialState.COMPLETE, TrialState.PRUNED}
        assert any(t.state == TrialState.PRUNED for t in trials)
        final = watcher.ok(f"%hpo_status {name} --storage {POSTGRES}").text
        assert ": completed" in final and "24 finished" in final
    finally:
        watcher.shutdown()
        optuna.delete_study(study_name=name, storage=POSTGRES)
