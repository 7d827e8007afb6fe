"""The run's dask tasks: each runs trials one after another on one worker thread."""

from __future__ import annotations

import concurrent.futures
import dataclasses
from collections.abc import Iterator

from distributed import Future

from hpo_nb.engine.mirror import MirroredTrial
from hpo_nb.engine.supply import Retry
from hpo_nb.engine.writer import StorageUnreachable

__all__ = ["Task", "Tasks"]


@dataclasses.dataclass
class Task:
    """A submitted dask task; it holds a trial once it has started and asked for one."""

    key: str
    future: Future | None = None  # set once submitted
    trial: MirroredTrial | None = None
    worker: str | None = None  # the worker's address, from the task's first message
    gpu: str | None = None  # the UUID of the worker's GPU, if it has one
    pid: int | None = None  # the worker's process
    attempt: str | None = None  # the execution of the task (see channel) that runs trials
    started: float | None = None  # when its trial left for the worker (monotonic)
    retry: Retry | None = None  # the failed trial its trial runs again
    # Its trial while the storage creates the record (see Tasks.settle).
    created: concurrent.futures.Future[MirroredTrial] | None = None

    @property
    def idle(self) -> bool:
        """No trial, nor one being created: queued, or told there is none."""
        return self.trial is None and self.created is None

    @property
    def creating(self) -> bool:
        """Whether the storage is still creating the record of its trial."""
        return self.created is not None and not self.created.done()


class Tasks:
    """The tasks of a run by dask key, and which of them hold a trial (the budget counts
    those). The only place that gives a task a trial or takes it away."""

    def __init__(self) -> None:
        self._tasks: dict[str, Task] = {}
        self._busy: set[str] = set()  # holding a trial, or its creation
        self._creating: set[str] = set()  # whose trial's record is not settled yet

    def __len__(self) -> int:
        return len(self._tasks)

    def __iter__(self) -> Iterator[Task]:
        return iter(list(self._tasks.values()))

    def __contains__(self, key: str) -> bool:
        return key in self._tasks

    def get(self, key: str) -> Task | None:
        return self._tasks.get(key)

    def add(self, task: Task) -> None:
        self._tasks[task.key] = task

    def remove(self, key: str) -> Task:
        self._busy.discard(key)
        self._creating.discard(key)
        return self._tasks.pop(key)

    def running(self) -> int:
        """Trials handed out and not finished (the budget counts them)."""
        return len(self._busy)

    def started(self) -> int:
        """Trials running on a worker (what users see as running)."""
        return sum(1 for key in self._busy if self._tasks[key].started is not None)

    def any_creating(self) -> bool:
        return bool(self._creating)

    def give(self, task: Task, created: concurrent.futures.Future[MirroredTrial]) -> None:
        """``task`` gets the trial whose record the storage is creating."""
        task.created = created
        self._busy.add(task.key)
        self._creating.add(task.key)

    def settle(self, task: Task) -> MirroredTrial | None:
        """Its trial, once created (waiting for the storage if it must); None if it has none,
        or the storage gave up before creating its record."""
        if task.created is not None:
            created, task.created = task.created, None
            self._creating.discard(task.key)
            try:
                task.trial = created.result()
            except StorageUnreachable:
                task.started = task.retry = None
                self._busy.discard(task.key)
        return task.trial

    def take_back(self, task: Task) -> tuple[MirroredTrial, Retry | None, float | None] | None:
        """The task's trial ended: it holds none now. Returns the trial, the retry it was, and
        when it started (None: its trial never had a record)."""
        trial = self.settle(task)
        if trial is None:
            return None
        taken = (trial, task.retry, task.started)
        task.trial = task.started = task.retry = None
        self._busy.discard(task.key)
        return taken
