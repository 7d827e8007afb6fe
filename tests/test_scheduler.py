"""The local cluster's scheduler runs in a process of its own, and does not outlive its kernel."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

import hpo_nb
from hpo_nb._errors import HpoError
from hpo_nb.execution.cluster import get_client

START_AND_WAIT = """
import os, time
from hpo_nb.execution.cluster import get_client
if __name__ == "__main__":
    client = get_client("local", workers=1)
    workers = list(client.run(os.getpid).values())
    print(client.run_on_scheduler(os.getpid), *workers, flush=True)
    time.sleep(600)
"""


def gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.1)
    return False


def test_the_scheduler_runs_outside_the_kernel_and_its_process_group():
    """The kernel's interpreter lock is left to the trial loop; Jupyter's signals to the
    kernel's process group (interrupt, shutdown) do not reach the scheduler."""
    client = get_client("local")
    pid = client.run_on_scheduler(os.getpid)
    assert pid != os.getpid()
    assert os.getpgid(pid) != os.getpgid(0)
    assert psutil.Process(pid).ppid() == os.getpid()
    # It starts fast and stays small: nothing of hpo_nb (optuna, sqlalchemy...) is loaded there.
    assert client.run_on_scheduler(lambda: [m for m in sys.modules if m.startswith("hpo_nb")]) == []


def test_closing_the_clusters_ends_the_scheduler_process():
    pid = get_client("local").run_on_scheduler(os.getpid)
    hpo_nb.close_clusters()
    assert gone(pid, timeout=15)
    assert get_client("local").run_on_scheduler(os.getpid) != pid  # a new one on demand


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_the_scheduler_and_workers_exit_when_the_kernel_is_killed(tmp_path):
    kernel = subprocess.Popen(
        [sys.executable, "-c", START_AND_WAIT],
        stdout=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        start_new_session=True,
    )
    try:
        line = kernel.stdout.readline() if kernel.stdout else ""
        pids = [int(p) for p in line.split()]
        assert len(pids) == 2, f"no scheduler and worker pids: {line!r}"
    finally:
        kernel.send_signal(signal.SIGKILL)
        kernel.wait(30)
    scheduler, worker = pids
    assert gone(scheduler, timeout=20)
    assert gone(worker, timeout=60)


def test_an_idle_cluster_ticks_and_samples_coarsely():
    """Dask's 20 ms event-loop tick and 10 ms stack sampling kept an idle cluster busy: the
    coarser settings reach the scheduler, the workers and the nannies in the kernel."""
    import dask

    client = get_client("local")

    def settings() -> tuple[str, str]:
        return (
            dask.config.get("distributed.admin.tick.interval"),
            dask.config.get("distributed.worker.profile.interval"),
        )

    assert set(client.run(settings).values()) == {("1s", "100ms")}
    assert client.run_on_scheduler(settings)[0] == "1s"
    nannies = client.cluster.workers.values()
    assert nannies and {nanny._tick_interval for nanny in nannies} == {1.0}


def test_a_scheduler_that_cannot_start_is_one_clear_line(monkeypatch):
    hpo_nb.close_clusters()
    monkeypatch.setattr(
        "hpo_nb.execution.scheduler._RUN_THIS_FILE",
        "import sys; sys.exit('no room for a scheduler')",
    )
    with pytest.raises(HpoError) as caught:
        get_client("local")
    assert str(caught.value) == (
        "the local dask cluster did not start: "
        "the dask scheduler process did not start: no room for a scheduler"
    )
    monkeypatch.undo()
    assert get_client("local").run_on_scheduler(os.getpid) != os.getpid()  # it starts again
