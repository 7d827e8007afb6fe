"""Ending trials that will not end by themselves: a cancelled trial whose process goes on past
its grace has its worker process restarted (its nanny starts a fresh one); on a GPU, the
process's memory must come back, or that GPU gets no more trials."""

from __future__ import annotations

import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable

from hpo_nb._errors import one_line
from hpo_nb.engine.link import Link
from hpo_nb.engine.tasks import Task
from hpo_nb.execution.gpu import memory_released

__all__ = ["Reaper"]


class Reaper:
    """The attempts of cancelled trials still running, each with the time it must end by."""

    def __init__(
        self,
        event: Callable[[str], None],
        log: Callable[[str], None],
        post: Callable[..., None],
        link: Link,
    ) -> None:
        self._event = event  # a notable moment, for the views
        self._log = log  # a warning, kept out of the cells
        self._post = post  # run a function on the loop's thread
        self._doomed: dict[str, tuple[float, Task]] = {}  # attempt -> (deadline, its task)
        self._link = link  # the run's client (once connected)

    def __bool__(self) -> bool:
        return bool(self._doomed)

    def doom(self, task: Task, attempts: Iterable[str], grace: float) -> None:
        """The trial of ``task`` was cancelled: restart its worker unless it ends within
        ``grace`` seconds (a cancelled dask task keeps running)."""
        if task.worker is None:
            return  # it never started
        for attempt in attempts:
            self._doomed[attempt] = (time.monotonic() + grace, task)

    def ended(self, attempt: str) -> None:
        """A cancelled trial left its worker by itself."""
        self._doomed.pop(attempt, None)

    def overdue(self, tasks: Iterable[Task], limit: float) -> list[Task]:
        """The tasks whose trial has run longer than ``limit`` seconds."""
        now = time.monotonic()
        return [t for t in tasks if t.started is not None and now - t.started > limit]

    def reap(self) -> None:
        """Restart the workers of cancelled trials still running past their grace."""
        now = time.monotonic()
        for attempt, (deadline, task) in list(self._doomed.items()):
            if now >= deadline:
                del self._doomed[attempt]
                self._restart(task)

    def next_deadline(self) -> float | None:
        return min((deadline for deadline, _ in self._doomed.values()), default=None)

    def _restart(self, task: Task) -> None:
        """End a worker's process without blocking the loop; on a GPU, check that the
        process's memory came back, else take that GPU out of rotation."""
        client, worker = self._link.client, task.worker
        if client is None or worker is None:
            return
        name = (client.scheduler_info().get("workers", {}).get(worker) or {}).get("name", worker)
        self._event(f"restarting worker {name} to end a trial that would not stop")

        def restart() -> None:
            try:
                status = client.restart_workers([worker], timeout=60, raise_for_error=False)
                if status.get(worker) not in ("OK", None):
                    self._log(f"warning: worker {worker} restart: {status.get(worker)}")
            except Exception as e:  # e.g. a worker without a nanny cannot be restarted
                self._log(f"warning: could not restart worker {worker}: {one_line(e)}")
            if self._leaked(worker, task.gpu, task.pid):
                self._post(self._retire, name, task.gpu)

        threading.Thread(target=restart, name="hpo_nb-restart", daemon=True).start()

    def _leaked(self, worker: str, gpu: str | None, pid: int | None) -> bool:
        """Whether the killed process still holds memory on its GPU. NVML here sees this
        machine's GPUs only: only the workers that run here are checked."""
        local = urllib.parse.urlparse(worker).hostname in ("127.0.0.1", "localhost")
        if not local or gpu is None or pid is None:
            return False
        try:
            return not memory_released(gpu, pid)
        except Exception as e:
            self._log(f"warning: could not check GPU {gpu}: {one_line(e)}")
            return False

    def _retire(self, name: str, gpu: str) -> None:
        """A GPU whose memory did not come back gets no more trials."""
        self._event(f"GPU {gpu} taken out of rotation: the killed trial's memory did not come back")
        if self._link.client is not None:
            try:
                self._link.client.retire_workers(names=[name], close_workers=True)
            except Exception as e:
                self._log(f"warning: could not retire worker {name}: {one_line(e)}")
