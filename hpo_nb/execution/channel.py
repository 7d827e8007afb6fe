"""Messages between tasks on dask workers and the controller in the kernel, via the scheduler.

Both ways are dask topics. A task publishes with ``Worker.log_event`` (pushed to the kernel's
subscribed client, in order). The controller answers on the run's reply topic, to which each
worker process running the run's tasks subscribes once (with its worker client): one event
carries every answer the controller gave in one go, and each process hands the answers to the
tasks waiting for them. No queue, no long poll and no round trip per answer at the scheduler.
Nothing here needs a route from a worker to the kernel, so a worker on another machine (or
behind the scheduler's network) works unchanged. What travels is :mod:`hpo_nb.execution.protocol`'s
messages: each in an envelope that names its task (the dask key) and the attempt (one execution
of that task), with a sequence number, so the controller can restore their order.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import queue
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from distributed import Client, get_client, get_worker

from hpo_nb.execution.protocol import (
    AHEAD,
    Answer,
    Cancel,
    Envelope,
    GiveTrial,
    Revoke,
    TaskMessage,
    TrialAhead,
    decode,
    decode_answer,
    encode,
)

__all__ = ["ControllerChannel", "ReplyTimeout", "TaskCancelled", "WorkerChannel", "new_topic"]

_POLL = 2.0  # seconds between checks that a waiting task is still wanted
# Seconds an unrequested answer (a trial sent ahead) may wait for others to travel with: one
# event for many, instead of one each for every worker process to read.
_GATHER = 0.02
_FLUSH_TIMEOUT = 5.0  # seconds a task waits for its messages to leave (see WorkerChannel.flush)


def new_topic() -> str:
    """A fresh topic name for one run."""
    return f"hpo_nb-{uuid.uuid4().hex[:12]}"


class ReplyTimeout(RuntimeError):
    """The controller did not answer in time (the kernel is gone or stuck)."""


class TaskCancelled(BaseException):
    """The run gave this task up (stopped, or its kernel went away). Not an ``Exception``, so
    that a broad ``except Exception`` in an objective cannot swallow it."""


def _reply_topic(topic: str) -> str:
    return f"{topic}-replies"


class _Replies:
    """This worker process's subscription to one run's reply topic: it hands each answer to
    the attempt waiting for it. Shared by the run's tasks in the process; the last to leave
    unsubscribes."""

    _lock = threading.Lock()
    _open: dict[str, _Replies] = {}

    def __init__(self, topic: str) -> None:
        self.topic = topic
        self.inboxes: dict[str, queue.SimpleQueue[dict[str, Any]]] = {}
        self._client = get_client()
        self._ping = uuid.uuid4().hex
        self._heard = threading.Event()
        self._client.subscribe_topic(topic, self._deliver)

    @classmethod
    def join(cls, topic: str, attempt: str, timeout: float) -> queue.SimpleQueue[dict[str, Any]]:
        """The inbox of ``attempt``, once the subscription is known to be live."""
        with cls._lock:
            replies = cls._open.get(topic)
            if replies is None:
                replies = cls._open[topic] = cls(topic)
            inbox = replies.inboxes[attempt] = queue.SimpleQueue()
        try:
            replies._wait_live(timeout)
        except BaseException:
            cls.leave(topic, attempt)
            raise
        return inbox

    @classmethod
    def leave(cls, topic: str, attempt: str) -> None:
        with cls._lock:
            replies = cls._open.get(topic)
            if replies is None:
                return
            replies.inboxes.pop(attempt, None)
            if not replies.inboxes:
                del cls._open[topic]
                with contextlib.suppress(Exception):  # the client may be closing
                    replies._client.unsubscribe_topic(topic)

    def _wait_live(self, timeout: float) -> None:
        """Publish a ping until it comes back: the subscription (sent on the client's stream)
        and a publication (a call of its own) may reach the scheduler in either order."""
        deadline = time.monotonic() + timeout
        while not self._heard.is_set():
            self._client.log_event(self.topic, {"ping": self._ping})
            if self._heard.wait(0.05):
                return
            if time.monotonic() > deadline:
                raise ReplyTimeout(f"no answer from the scheduler in {timeout:g} s")

    def _deliver(self, event: tuple[float, dict[str, Any]]) -> None:
        message = event[1]
        if message.get("ping") == self._ping:
            self._heard.set()
        for attempt, payload in message.get("replies", ()):
            inbox = self.inboxes.get(attempt)
            if inbox is not None:
                inbox.put(payload)


class WorkerChannel:
    """A task's side: ordered messages to the controller, blocking requests, and the next
    trial the controller sends ahead while the current one runs."""

    def __init__(self, topic: str, reply_timeout: float) -> None:
        self.topic = topic
        self.attempt = uuid.uuid4().hex[:12]
        self.seq = 0
        self._reply_timeout = reply_timeout
        self._worker = get_worker()
        self.worker = self._worker.address
        self.key = str(self._worker.get_current_task())
        self._inbox: queue.SimpleQueue[dict[str, Any]] | None = None
        self._lock = threading.Lock()  # a trial's flush thread sends too (see _worker)
        self._ahead: TrialAhead | None = None  # the next trial, sent ahead
        self._taken: set[int] = set()  # the trials this task has started (their ids)
        self._unread: collections.deque[Answer] = collections.deque()

    def listen(self) -> None:
        """Receive answers, and trials sent ahead, from now on (before the first message)."""
        if self._inbox is None:
            self._inbox = _Replies.join(_reply_topic(self.topic), self.attempt, self._reply_timeout)

    def cancelled(self) -> bool:
        """True once dask no longer wants this task (the run cancelled it or its client left)."""
        task = self._worker.state.tasks.get(self.key)
        return task is None or task.state in ("cancelled", "released", "forgotten")

    def _envelope(self, body: TaskMessage, wants_answer: bool) -> Envelope:
        """``body`` in this task's next envelope (not sent)."""
        self.seq += 1
        return Envelope(self.key, self.attempt, self.seq, wants_answer, body)

    def send(self, body: TaskMessage, *, wants_answer: bool = False) -> Envelope:
        """Publish one message and return its envelope; ``wants_answer``: ``wait`` for it."""
        if body.op != "finish" and self.cancelled():
            raise TaskCancelled("the run no longer wants this trial")
        if wants_answer:
            self.listen()
        with self._lock:
            envelope = self._envelope(body, wants_answer)
            self._worker.log_event(self.topic, encode(envelope))
        return envelope

    def flush(self, timeout: float = _FLUSH_TIMEOUT) -> None:
        """Wait until the messages sent so far have left this process. The worker's event loop
        sends them; a trial that starts next and holds the interpreter lock (a long call into C)
        would keep them here, and the controller, not knowing that trial started, could not
        time it (``--trial-timeout``)."""
        worker = self._worker
        if worker.thread_id == threading.get_ident():
            return
        left = threading.Event()

        async def sent() -> None:
            # Runs after the callbacks that queued the messages (in order): they are in the
            # stream's buffer, or taken from it, their write started in the loop's next round.
            stream = worker.batched_stream
            deadline = time.monotonic() + timeout
            while stream.buffer and not stream.please_stop and time.monotonic() < deadline:
                await asyncio.sleep(0.001)
            await asyncio.sleep(0)  # the write of the batch that took them
            await asyncio.sleep(0)
            left.set()

        worker.loop.add_callback(sent)
        left.wait(timeout)

    def request(self, body: TaskMessage) -> Answer:
        """Send a message and wait for the controller's answer."""
        return self.wait(self.send(body, wants_answer=True))

    def wait(self, envelope: Envelope) -> Answer:
        """The controller's answer to ``envelope`` (sent with ``wants_answer``)."""
        assert self._inbox is not None and envelope.wants_answer
        # A task whose run ended before its request was read gets no answer, so it checks
        # between waits whether dask still wants it.
        deadline = time.monotonic() + self._reply_timeout
        while True:
            if self._unread:
                answer = self._unread.popleft()
            else:
                try:
                    answer = decode_answer(self._inbox.get(timeout=min(_POLL, self._reply_timeout)))
                except queue.Empty:
                    if self.cancelled():
                        raise TaskCancelled("the run no longer wants this trial") from None
                    if time.monotonic() > deadline:
                        raise ReplyTimeout(
                            f"no answer from the controller in {self._reply_timeout:g} s"
                        ) from None
                    continue
            if not self._keep_ahead(answer):
                if isinstance(answer, GiveTrial):
                    self._taken.add(answer.id)  # the same trial may come ahead too: late
                    if self._ahead is not None and self._ahead.id == answer.id:
                        self._ahead = None  # or early: sent ahead, then given on request
                return answer

    def take_ahead(self) -> TrialAhead | None:
        """The next trial, if the controller sent it ahead and nothing since cancelled this
        task; the caller starts it and tells the controller so."""
        if self._inbox is None:
            return None
        with contextlib.suppress(queue.Empty):
            while True:
                answer = decode_answer(self._inbox.get_nowait())
                if not self._keep_ahead(answer):
                    self._unread.append(answer)  # a cancel: the next request reads it
        ahead, self._ahead = self._ahead, None
        if ahead is None or self._unread or self.cancelled():
            return None
        self._taken.add(ahead.id)
        return ahead

    def _keep_ahead(self, answer: Answer) -> bool:
        """Hold a trial sent ahead, or drop it when the controller takes it back; False for
        any other answer."""
        if not isinstance(answer, AHEAD):
            return False
        if isinstance(answer, TrialAhead):
            if answer.id not in self._taken:
                self._ahead = answer
        elif self._ahead is not None and self._ahead.id == answer.id:
            self._ahead = None
        return True

    def close(self) -> None:
        if self._inbox is not None:
            _Replies.leave(_reply_topic(self.topic), self.attempt)
            self._inbox = None


class ControllerChannel:
    """The kernel's side: receives every message of one run and answers requests."""

    def __init__(self, client: Client, topic: str, deliver: Callable[[Envelope], None]):
        self._client = client
        self.topic = topic
        self._lock = threading.Lock()
        self._unsent: list[tuple[str, dict[str, Any]]] = []  # (attempt, answer)
        self._sending: str | None = None  # "now", "soon" (see _GATHER), or None: no send due
        client.subscribe_topic(topic, lambda event: deliver(decode(event[1])))

    def reply(self, request: Envelope, answer: Answer) -> None:
        """Answer ``request`` without waiting."""
        assert request.wants_answer
        self._post([(request.attempt, encode(answer))])

    def tell(self, attempt: str, answer: TrialAhead | Revoke) -> None:
        """Send ``attempt`` (listening, see ``WorkerChannel.listen``) an unrequested answer,
        with the next answers or within ``_GATHER`` seconds."""
        self._post([(attempt, encode(answer))], urgent=False)

    def cancel(self, attempts: list[str], reason: str) -> None:
        """Tell the waiting requests (if any) of these attempts that their trial was given up."""
        self._post([(attempt, encode(Cancel(reason))) for attempt in attempts])

    def _post(self, answers: list[tuple[str, dict[str, Any]]], urgent: bool = True) -> None:
        """Queue answers; the client's event loop sends all that are queued when it runs, in
        one event (answers given while it is busy wait for the same event)."""
        if not answers:
            return
        when = "now" if urgent else "soon"
        with self._lock:
            self._unsent.extend(answers)
            due, self._sending = self._sending, self._sending or when
            if due == "soon" and urgent:
                self._sending = "now"
        if due is None or (due == "soon" and urgent):
            loop = self._client.loop
            assert loop is not None
            loop.add_callback(self._send, 0.0 if urgent else _GATHER)

    async def _send(self, delay: float) -> None:
        if delay:
            await asyncio.sleep(delay)
        with self._lock:
            answers, self._unsent, self._sending = self._unsent, [], None
        if not answers:
            return
        topic, msg = _reply_topic(self.topic), {"replies": answers}
        with contextlib.suppress(OSError):  # the cluster is going away: tasks time out
            await self._client.scheduler.log_event(topic=topic, msg=msg)

    def close(self) -> None:
        with contextlib.suppress(ValueError):  # already unsubscribed
            self._client.unsubscribe_topic(self.topic)
