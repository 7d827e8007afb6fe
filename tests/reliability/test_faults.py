"""Faults a study must survive (issue 24): worker processes killed mid-trial, again and again;
trials that hang (asleep, or spinning with or without the interpreter lock) past their timeout.

The kernel killed mid-study and resumed in a new one is tested in tests/test_lifecycle.py
(``test_resume_after_the_kernel_was_killed_accounts_exactly``), which also checks that the dead
kernel's scheduler and workers exit.

Every test asserts what happened, never how fast; the deadlines are guards against hangs.
"""

from __future__ import annotations

import itertools
import os
import signal
import time
from pathlib import Path

import dask
import optuna
import pytest
from optuna.trial import FrozenTrial, TrialState

import hpo_nb
from hpo_nb import RunState
from hpo_nb.engine.records import FAIL_REASON_KEY, TRIAL_KEY, retry_params
from hpo_nb.execution import cluster
from hpo_nb.execution.cluster import get_client

KILLS = 10
DIED = "its worker process died during the trial (killed, or out of memory)"

# Each trial says which process runs it (written whole: a reader never sees half of it), then
# waits for the test to let it finish, or to kill its process.
GATED = """
x = trial.suggest_float("x", -1, 1)
n = trial.number
(folder / f"{n}.tmp").write_text(f"{os.getpid()}")
os.replace(folder / f"{n}.tmp", folder / f"{n}.run")
deadline = time.monotonic() + 120
while not (folder / f"{n}.go").exists() and time.monotonic() < deadline:
    time.sleep(0.02)
x ** 2
"""


def gated(folder: Path) -> hpo_nb.Objective:
    return hpo_nb.objective_from_cell("gated", GATED, {"folder": folder, "os": os, "time": time})


def trials_of(db: str, name: str) -> list[FrozenTrial]:
    return optuna.load_study(study_name=name, storage=db).trials


def lineage(t: FrozenTrial) -> tuple[int, int]:
    """(the number of the first trial with ``t``'s parameters, which attempt ``t`` is)."""
    attrs = t.system_attrs.get(TRIAL_KEY) or {}
    return (attrs["retry_of"], attrs["retry"]) if "retry_of" in attrs else (t.number, 0)


def kill_workers(run: hpo_nb.Run, folder: Path, kills: int) -> dict[int, int]:
    """SIGKILL the processes of running trials, ``kills`` in all: one, then both workers' at
    once (no worker is left), and so on, letting two trials finish in between. Returns the
    killed trials' numbers and processes."""
    killed: dict[int, int] = {}
    waiting: list[tuple[int, int]] = []  # running trials, not yet killed nor let go
    seen: set[int] = set()
    spare = 0  # trials to let finish before the next kill
    rounds = 0
    deadline = time.monotonic() + 150
    while not run.done:
        assert time.monotonic() < deadline, f"the run hangs: {run!r}"
        for marker in sorted(folder.glob("*.run"), key=lambda p: int(p.stem)):
            if int(marker.stem) not in seen:
                seen.add(int(marker.stem))
                waiting.append((int(marker.stem), int(marker.read_text())))
        while waiting and (spare > 0 or len(killed) >= kills):
            (folder / f"{waiting.pop(0)[0]}.go").touch()
            spare -= 1
        at_once = min(1 + rounds % 2, kills - len(killed))  # 1, 2, 1, 2, ...
        if len(killed) < kills and len(waiting) >= at_once:
            for number, pid in waiting[:at_once]:
                os.kill(pid, signal.SIGKILL)
                killed[number] = pid
            del waiting[:at_once]
            spare, rounds = 2, rounds + 1
        time.sleep(0.02)
    return killed


def test_a_study_survives_its_workers_killed_ten_times(db, tmp_path):
    """Ten trials lose their worker process to SIGKILL: each is FAIL with the reason and runs
    again with its parameters; the study still reaches its count and leaves nothing RUNNING."""
    n_trials = 16
    run = hpo_nb.run(gated(tmp_path), n_trials=n_trials, storage=db, workers=2, retries=KILLS)
    killed = kill_workers(run, tmp_path, KILLS)
    run.wait(60)
    assert len(killed) == KILLS and len(set(killed.values())) == KILLS  # ten processes
    assert run.state == RunState.COMPLETED, run.reason
    trials = trials_of(db, "gated")
    by_number = {t.number: t for t in trials}
    assert sum(t.state == TrialState.COMPLETE for t in trials) == n_trials
    assert not any(t.state == TrialState.RUNNING for t in trials)
    assert {t.number for t in trials if t.state == TrialState.FAIL} == set(killed)
    attempts = {lineage(t): t for t in trials}
    for number in killed:
        dead = by_number[number]
        assert dead.system_attrs[FAIL_REASON_KEY] == DIED
        origin, attempt = lineage(dead)
        again = attempts[(origin, attempt + 1)]  # the next attempt, after this one failed
        assert again.params == retry_params(dead) and again.number > number
    assert run.progress.retried == KILLS


def test_a_killed_worker_comes_back_however_long_its_restart_takes():
    """dask closes the nanny of a worker not back within ``lost-worker-timeout`` (checked
    once): a worker killed again as that check came was lost for good. Local nannies stay."""
    client = get_client("local", workers=2)
    client.wait_for_workers(2, timeout=60)
    nannies = cluster._local["local"][0].workers
    address, pid = sorted(client.run(os.getpid).items())[0]
    with dask.config.set({"distributed.deploy.lost-worker-timeout": "10ms"}):
        os.kill(pid, signal.SIGKILL)  # its nanny restarts it, in more than 10 ms
        deadline = time.monotonic() + 60
        while True:
            workers = client.scheduler_info()["workers"]
            if address not in workers and len(workers) == 2:
                break
            assert time.monotonic() < deadline, f"workers: {workers}"
            time.sleep(0.1)
        assert len(nannies) == 2  # dask's check ran long ago: it kept the nanny
    assert pid not in client.run(os.getpid).values()


# The trial of x = 0.5 hangs the first time it runs (the marker is created once, by one
# process), in one of three ways; its retry and the other trials record where they ran.
HANGS = {
    "sleep": "time.sleep(10**6)",
    "python-loop": "while True: pass",  # lets the worker's event loop run between
    "c-loop": "sum(itertools.repeat(1))",  # holds the interpreter lock: the worker is deaf
}
HANGS_ONCE = """
from distributed import get_worker
x = trial.suggest_float("x", 0, 1)
here = f"{{get_worker().name}} {{os.getpid()}}"
if x == 0.5:
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        fd = None
    if fd is not None:
        os.write(fd, here.encode())
        os.close(fd)
        {hang}
trial.set_user_attr("ran_on", here)
time.sleep(0.2)
x
"""


# Each trial checks in, then waits until trials of two workers have checked in.
TOGETHER = """
from distributed import get_worker
here = f"{get_worker().name} {os.getpid()}"
(folder / f"in {here}").touch()
deadline = time.monotonic() + 120
while len({p.name.split()[1] for p in folder.glob("in *")}) < 2 and time.monotonic() < deadline:
    time.sleep(0.05)
trial.set_user_attr("ran_on", here)
0.0
"""


@pytest.mark.parametrize("how", list(HANGS))
def test_a_hung_trial_times_out_and_frees_its_worker(db, tmp_path, how):
    """A trial that never returns is FAIL "timeout after ...", its process restarted (the same
    worker runs later trials, in a new process) and its parameters run again; the run reaches
    its count with nothing left RUNNING."""
    marker = tmp_path / "hung"
    namespace = {"marker": marker, "os": os, "time": time, "itertools": itertools}
    objective = hpo_nb.objective_from_cell("hangs", HANGS_ONCE.format(hang=HANGS[how]), namespace)
    n_trials = 8
    run = hpo_nb.run(
        objective,
        n_trials=n_trials,
        storage=db,
        workers=2,
        trial_timeout=2,
        retries=1,
        enqueue={"x": 0.5},
    ).wait(150)
    assert run.state == RunState.COMPLETED, run.reason
    trials = trials_of(db, "hangs")
    (hung,) = [t for t in trials if t.state == TrialState.FAIL]
    # A trial that holds the interpreter lock could not report its parameters; it was given
    # them as it started.
    assert retry_params(hung) == {"x": 0.5}
    assert hung.system_attrs[FAIL_REASON_KEY] == "timeout after 2 s"
    assert not any(t.state == TrialState.RUNNING for t in trials)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) == n_trials  # the retried failure does not count
    (again,) = [t for t in complete if lineage(t) == (hung.number, 1)]
    assert again.params == {"x": 0.5}
    worker, pid = marker.read_text().split()
    ran_on = [t.user_attrs["ran_on"].split() for t in complete]
    assert [worker, pid] not in ran_on  # its process ran nothing more: it was restarted
    assert any("timed out after 2 s" in e for e in run.progress.events)
    # Its worker serves again, in a new process: trials that wait for each other run on both
    # workers at once.
    together = hpo_nb.objective_from_cell("together", TOGETHER, {**namespace, "folder": tmp_path})
    after = hpo_nb.run(together, n_trials=4, storage=db, workers=2).wait(150)
    assert after.state == RunState.COMPLETED, after.reason
    ran_on = [t.user_attrs["ran_on"].split() for t in trials_of(db, "together")]
    assert worker in [w for w, _ in ran_on] and [worker, pid] not in ran_on
