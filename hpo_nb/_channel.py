"""Messages between tasks on dask workers and the controller in the kernel, via the scheduler.

A task publishes with ``Worker.log_event`` (pushed to the subscribed client, in order) and waits
for replies on its own ``distributed.Queue``. Nothing here needs a route from a worker to the
kernel, so a worker on another machine (or behind the scheduler's network) works unchanged.
Every message names its task (the dask key) and the attempt (one execution of that task), and
carries a sequence number, so the controller can restore their order.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from distributed import Client, Queue, get_worker

__all__ = ["ControllerChannel", "ReplyTimeout", "TaskCancelled", "WorkerChannel", "new_topic"]

_POLL = 2.0  # seconds between checks that a waiting task is still wanted


class _QuietPolls(logging.Filter):
    """The scheduler logs every timed-out ``queue_get`` as an ERROR with a traceback; for the
    long polls above that is the normal case, and with a local cluster it would land in the
    notebook."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not (
            isinstance(error, TimeoutError) and "handling op queue_get" in record.getMessage()
        )


logging.getLogger("distributed.core").addFilter(_QuietPolls())


def new_topic() -> str:
    """A fresh topic name for one run."""
    return f"hpo_nb-{uuid.uuid4().hex[:12]}"


class ReplyTimeout(RuntimeError):
    """The controller did not answer in time (the kernel is gone or stuck)."""


class TaskCancelled(BaseException):
    """The run gave this task up (stopped, or its kernel went away). Not an ``Exception``, so
    that a broad ``except Exception`` in an objective cannot swallow it."""


def _queue_name(topic: str, attempt: str) -> str:
    return f"{topic}-{attempt}"


class WorkerChannel:
    """A task's side: ordered messages to the controller, and blocking requests."""

    def __init__(self, topic: str, reply_timeout: float) -> None:
        self.topic = topic
        self.attempt = uuid.uuid4().hex[:12]
        self.seq = 0
        self._reply_timeout = reply_timeout
        self._worker = get_worker()
        self.worker = self._worker.address
        self.key = self._worker.get_current_task()
        self._queue: Queue | None = None
        self._lock = threading.Lock()  # a trial's flush thread sends too (see _worker)

    def cancelled(self) -> bool:
        """True once dask no longer wants this task (the run cancelled it or its client left)."""
        task = self._worker.state.tasks.get(self.key)
        return task is None or task.state in ("cancelled", "released", "forgotten")

    def send(self, op: str, *, reply: bool = False, **payload: Any) -> dict[str, Any]:
        """Publish one message and return it; ``reply``: it asks for an answer (``wait``)."""
        if op != "finish" and self.cancelled():
            raise TaskCancelled("the run no longer wants this trial")
        if reply and self._queue is None:
            self._queue = Queue(_queue_name(self.topic, self.attempt))
        with self._lock:
            self.seq += 1
            message = {"op": op, "key": self.key, "attempt": self.attempt, "seq": self.seq}
            if reply:
                assert self._queue is not None
                message["reply_to"] = self._queue.name
            message.update(payload)
            self._worker.log_event(self.topic, message)
        return message

    def request(self, op: str, **payload: Any) -> dict[str, Any]:
        """Send a message and wait for the controller's reply."""
        return self.wait(self.send(op, reply=True, **payload))

    def wait(self, message: dict[str, Any]) -> dict[str, Any]:
        """The controller's reply to ``message`` (sent with ``reply=True``)."""
        assert self._queue is not None and message.get("reply_to") == self._queue.name
        # Long-polling: a task whose run ended before its request was read gets no answer, so
        # it checks between waits whether dask still wants it.
        deadline = time.monotonic() + self._reply_timeout
        while True:
            try:
                return self._queue.get(timeout=min(_POLL, self._reply_timeout))
            except TimeoutError:
                if self.cancelled():
                    raise TaskCancelled("the run no longer wants this trial") from None
                if time.monotonic() > deadline:
                    raise ReplyTimeout(
                        f"no answer from the controller in {self._reply_timeout:g} s"
                    ) from None

    def close(self) -> None:
        if self._queue is not None:
            self._queue.close()
            self._queue = None


class ControllerChannel:
    """The kernel's side: receives every message of one run and answers requests."""

    def __init__(self, client: Client, topic: str, deliver: Callable[[dict[str, Any]], None]):
        self._client = client
        self.topic = topic
        self._queues: dict[str, Queue] = {}
        client.subscribe_topic(topic, lambda event: deliver(event[1]))

    def reply(self, message: dict[str, Any], payload: dict[str, Any]) -> None:
        """Answer the request ``message`` without waiting (its task made the queue already)."""
        loop = self._client.loop
        assert loop is not None
        loop.add_callback(self._client.scheduler.queue_put, name=message["reply_to"], data=payload)

    def cancel(self, attempts: list[str], reason: str) -> None:
        """Tell the waiting requests (if any) of these attempts that their trial was given up."""
        for attempt in attempts:
            self._post(_queue_name(self.topic, attempt), {"cancel": reason})

    def _post(self, name: str, payload: dict[str, Any]) -> None:
        queue = self._queues.get(name)
        if queue is None:
            queue = self._queues[name] = Queue(name, client=self._client)
        queue.put(payload)

    def forget(self, attempts: list[str]) -> None:
        """Release the reply queues of a finished task's attempts."""
        for attempt in attempts:
            queue = self._queues.pop(_queue_name(self.topic, attempt), None)
            if queue is not None:
                queue.close()

    def close(self) -> None:
        for queue in self._queues.values():
            queue.close()
        self._queues.clear()
        with contextlib.suppress(ValueError):  # already unsubscribed
            self._client.unsubscribe_topic(self.topic)
