"""The order of the tasks' messages: each attempt's messages are handled in the order they were
sent, whatever order dask delivers them in, and a task's messages that arrive while the storage
creates its trial's record wait for that record (in order), so the loop never waits for the
storage writer.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

from hpo_nb.engine.tasks import Task, Tasks
from hpo_nb.execution.protocol import Envelope, Finish

__all__ = ["Inbox"]

FINISH_GRACE = 5.0  # seconds to wait for a finished task's earlier messages


@dataclasses.dataclass
class _Order:
    """One task's place in its messages."""

    next_seq: dict[str, int] = dataclasses.field(default_factory=dict)  # attempt -> seq
    parked: dict[str, dict[int, Envelope]] = dataclasses.field(default_factory=dict)
    waiting_since: float | None = None  # a finish came before messages sent earlier
    early: list[Envelope] = dataclasses.field(default_factory=list)  # while its record is made


class Inbox:
    """Hands each task's messages to ``handle`` in order; ``unknown`` gets those of tasks the
    run no longer has."""

    def __init__(
        self,
        tasks: Tasks,
        handle: Callable[[Task, Envelope], None],
        unknown: Callable[[Envelope], None],
    ) -> None:
        self._tasks = tasks
        self._handle = handle
        self._unknown = unknown
        self._orders: dict[str, _Order] = {}

    def deliver(self, envelope: Envelope) -> None:
        task = self._tasks.get(envelope.key)
        if task is None:
            self._unknown(envelope)
            return
        order = self._orders.setdefault(task.key, _Order())
        if order.early or task.creating:
            order.early.append(envelope)  # after its record exists, and after those before it
            return
        attempt, seq = envelope.attempt, envelope.seq
        expected = order.next_seq.get(attempt, 1)
        if seq < expected:
            return  # a duplicate (the finish message arrives twice)
        if seq > expected:
            order.parked.setdefault(attempt, {})[seq] = envelope
            if isinstance(envelope.body, Finish) and order.waiting_since is None:
                order.waiting_since = time.monotonic()
            return
        self._pass(task, order, envelope)
        parked = order.parked.get(attempt, {})
        while task.key in self._tasks and order.next_seq[attempt] in parked:
            self._pass(task, order, parked.pop(order.next_seq[attempt]))

    def _pass(self, task: Task, order: _Order, envelope: Envelope) -> None:
        order.next_seq[envelope.attempt] = envelope.seq + 1
        self._handle(task, envelope)

    def attempts(self, key: str) -> list[str]:
        """The attempts of task ``key`` that have sent messages."""
        order = self._orders.get(key)
        return list(order.next_seq) if order is not None else []

    def caught_up(self, key: str) -> None:
        """Task ``key``'s trial ended: it waits for no earlier message now."""
        order = self._orders.get(key)
        if order is not None:
            order.waiting_since = None

    def created(self, key: str) -> None:
        """The record of task ``key``'s trial exists: its messages that waited go on."""
        order = self._orders.get(key)
        if order is None:
            return
        early, order.early = order.early, []
        for envelope in early:  # in order; one that starts another trial may wait again
            self.deliver(envelope)

    def forget(self, key: str) -> None:
        """Task ``key`` is gone: its waiting messages go to ``unknown`` (a request hears so)."""
        order = self._orders.pop(key, None)
        for envelope in order.early if order is not None else []:
            self._unknown(envelope)

    def give_up_waiting(self) -> None:
        """Handle the parked messages of tasks that waited too long for lost ones."""
        now = time.monotonic()
        for key, order in list(self._orders.items()):
            task = self._tasks.get(key)
            if task is None or order.waiting_since is None:
                continue
            if now - order.waiting_since <= FINISH_GRACE:
                continue
            for parked in order.parked.values():
                for seq in sorted(parked):
                    if key in self._tasks:
                        self._pass(task, order, parked.pop(seq))
