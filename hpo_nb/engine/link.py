"""The run's side of the dask cluster: its client, the channel to the trial tasks, and the
objective's copy on the workers."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence

from distributed import Client, Future

from hpo_nb.execution.channel import ControllerChannel, new_topic
from hpo_nb.execution.protocol import Answer, Envelope, Revoke, TrialAhead
from hpo_nb.execution.worker import PickledObjective, run_slot

__all__ = ["Link"]

_CAPACITY_REFRESH = 2.0  # seconds the count of worker threads is trusted


class Link:
    """Connected by :meth:`open`; closed by :meth:`close` (the client stays: it is shared)."""

    def __init__(self, objective: PickledObjective, reply_timeout: float) -> None:
        self._objective = objective
        self._reply_timeout = reply_timeout
        self.client: Client | None = None
        self._channel: ControllerChannel | None = None
        self._objective_future: Future | None = None
        self._resources: dict[str, float] | None = None
        self._capacity = (0, 0.0)

    def open(self, client: Client, deliver: Callable[[Envelope], None]) -> None:
        """Listen to the tasks' messages and send the objective to every worker."""
        self.client = client
        self._channel = ControllerChannel(client, new_topic(), deliver)
        self._objective_future = client.scatter(self._objective, broadcast=True, hash=False)
        workers = client.scheduler_info().get("workers", {}).values()
        if any("GPU" in (w.get("resources") or {}) for w in workers):
            self._resources = {"GPU": 1}  # one trial per GPU

    def slots(self) -> int:
        """Worker threads of the cluster (counted again every few seconds)."""
        slots, checked = self._capacity
        now = time.monotonic()
        if now - checked > _CAPACITY_REFRESH:
            assert self.client is not None
            slots = sum(self.client.nthreads().values())
            self._capacity = (slots, now)
        return slots

    def workers(self) -> int:
        return len(self.client.nthreads()) if self.client is not None else 0

    def submit(self, keys: list[str], tickets: Sequence[bytes | None]) -> list[Future]:
        """One trial task per key, in one graph; each brings its ticket's trial, if any."""
        assert self.client is not None and self._channel is not None
        count = len(keys)
        futures: list[Future] = self.client.map(
            run_slot,
            [self._objective_future] * count,
            [self._channel.topic] * count,
            [self._reply_timeout] * count,
            tickets,
            key=keys,
            pure=False,
            retries=0,
            resources=self._resources,
        )
        return futures

    def reply(self, request: Envelope, answer: Answer) -> None:
        assert self._channel is not None
        self._channel.reply(request, answer)

    def tell(self, attempt: str, answer: TrialAhead | Revoke) -> None:
        assert self._channel is not None
        self._channel.tell(attempt, answer)  # no one waits for it: no pause to send it

    def cancel_tasks(self, futures: list[Future]) -> None:
        """Cancel these tasks in dask (a running one keeps running: see Reaper)."""
        if self.client is not None and futures:
            self.client.cancel(futures)

    def cancel_attempts(self, attempts: list[str], reason: str) -> None:
        """Tell the waiting requests of these attempts, if any, that their trial is given up."""
        if self._channel is not None and attempts:
            self._channel.cancel(attempts, reason)

    def objective_lost(self) -> bool:
        """Whether the workers lost every copy of the objective (restarted or gone); then it
        is sent again, and tasks submitted before must be replaced."""
        future = self._objective_future
        if future is None or future.status in ("finished", "pending"):
            return False
        assert self.client is not None
        if not self.client.nthreads():  # every worker is restarting: try again later
            return False
        try:
            fresh = self.client.scatter(self._objective, broadcast=True, hash=False)
        except TimeoutError:  # "No valid workers found": they left meanwhile
            return False
        self._objective_future = fresh
        future.release()
        return True

    def close(self) -> None:
        if self._channel is not None:
            self._channel.close()
        if self._objective_future is not None:
            with contextlib.suppress(Exception):
                self._objective_future.release()
