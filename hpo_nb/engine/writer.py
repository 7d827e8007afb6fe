"""The thread that writes a running study to its storage: in order, batched, and patient.

A storage that stops answering (a database restarting, a network blip, a full disk) does not
end the run at once: the writer retries with backoff for ``patience`` seconds, keeping every
write queued in memory, and says so (``notes``: "storage unreachable, retrying (3/9)"). If the
storage is still gone then, the writer gives up: every waiting future fails with
:class:`StorageUnreachable` (the run ends, failed, with that line), but the writes themselves
stay queued and are retried every few seconds for as long as the process lives, so that once
the storage is back it holds every result, no trial of the run stays RUNNING and the study's
record says why the run failed. Only new trials' records are dropped then: a trial without a
record never existed for anyone else.
"""

from __future__ import annotations

import collections
import itertools
import queue
import threading
import time
import weakref
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import sqlalchemy

from hpo_nb._errors import HpoError, one_line

__all__ = ["StorageUnreachable", "Writer", "wait_for_stranded"]

_FIRST_DELAY = 0.5  # seconds before the first retry; doubled each time up to _MAX_DELAY
_MAX_DELAY = 5.0
_STRANDED: weakref.WeakSet[Writer] = weakref.WeakSet()  # gave up, still holding writes


class StorageUnreachable(HpoError):
    """The storage did not take the run's writes for longer than the writer's patience."""


def unreachable(error: BaseException) -> bool:
    """Whether ``error`` (or its cause: Optuna wraps SQLAlchemy's errors) says the storage
    could not be reached or could not write now, rather than that the write was wrong."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, sqlalchemy.exc.DBAPIError) and seen.connection_invalidated:
            return True
        if isinstance(
            seen,
            (
                sqlalchemy.exc.OperationalError,
                sqlalchemy.exc.InterfaceError,
                sqlalchemy.exc.TimeoutError,
                ConnectionError,
            ),
        ):
            return True
        seen = seen.__cause__
    return False


def _delays(patience: float) -> list[float]:
    """The waits between attempts within ``patience`` seconds."""
    delays, total, delay = [], 0.0, _FIRST_DELAY
    while total < patience:
        delays.append(delay)
        total += delay
        delay = min(delay * 2, _MAX_DELAY)
    return delays


def wait_for_stranded(url: str, timeout: float) -> int:
    """Give the writers that gave up on ``url`` up to ``timeout`` seconds to write what they
    hold (a new run must not fail trials an earlier run still completes); the writes left."""
    deadline = time.monotonic() + timeout
    writers = [w for w in list(_STRANDED) if str(w.url) == url]
    for writer in writers:
        writer.wake()
    while time.monotonic() < deadline and any(w.holding for w in writers):
        time.sleep(0.05)
    return sum(w.holding for w in writers)


class Writer:
    """One thread running writes in the order they came, urgent ones (new trials' records)
    before the others. SQL writes queued together run in one transaction (one at a time if
    that fails, so that a bad write loses nothing else)."""

    _BATCH = 500

    def __init__(self, engine: sqlalchemy.Engine, patience: float) -> None:
        self._engine = engine
        self.url = engine.url
        self._delays = _delays(patience)
        self._queue: queue.PriorityQueue[tuple[Any, ...]] = queue.PriorityQueue()
        self._order = itertools.count()
        self._notes: collections.deque[str] = collections.deque()
        self._wake = threading.Event()
        self._busy = False
        self.gave_up: StorageUnreachable | None = None
        self._thread = threading.Thread(target=self._loop, name="hpo_nb-writer", daemon=True)
        self._thread.start()

    @property
    def holding(self) -> int:
        """Writes not done yet."""
        return self._queue.qsize() + int(self._busy)

    def submit(
        self, fn: Callable[..., Any], args: tuple[Any, ...], urgent: bool = False, sql: bool = False
    ) -> Future:
        future: Future[Any] = Future()
        if self.gave_up is not None:
            future.set_exception(self.gave_up)  # the write itself still goes, unless urgent
            if urgent:
                return future
        self._queue.put((0 if urgent else 1, next(self._order), sql, fn, args, future))
        return future

    def notes(self) -> list[str]:
        """What happened since the last call ("storage unreachable, retrying (2/9)")."""
        taken = []
        while self._notes:
            taken.append(self._notes.popleft())
        return taken

    def wake(self) -> None:
        """Retry now instead of at the next attempt's time."""
        self._wake.set()

    def shutdown(self) -> None:
        """Run every pending write, then stop (once they are written, if the writer gave up:
        the caller does not wait for that)."""
        self._queue.put((2, next(self._order), False, None, (), None))
        if self.gave_up is None:
            self._thread.join()

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            _, _, sql, fn, _, _ = item
            if fn is None:
                _STRANDED.discard(self)
                return
            self._busy = True
            batch = [item]
            while sql and len(batch) < self._BATCH:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if not more[2]:
                    self._queue.put(more)  # the same key: it stays first in line
                    break
                batch.append(more)
            self._run(batch)
            self._busy = False

    def _run(self, batch: list[tuple[Any, ...]], retried: bool = False) -> None:
        """Run ``batch``, retrying while the storage is unreachable."""
        since, attempt = time.monotonic(), 0
        while True:
            try:
                results = self._once(batch)
            except Exception as e:
                if not unreachable(e):
                    self._split(batch, e, retried or attempt > 0)
                    return
                attempt += 1
                self._wait(attempt, since, e, batch)
                if not batch:  # only new trials' records, dropped
                    return
                continue
            if attempt and self.gave_up is None:
                self._notes.append(
                    f"storage reachable again after {time.monotonic() - since:.0f} s: "
                    f"{len(batch) + self._queue.qsize()} writes caught up"
                )
            for item, result in zip(batch, results, strict=True):
                if not item[-1].done():
                    item[-1].set_result(result)
            return

    def _once(self, batch: list[tuple[Any, ...]]) -> list[Any]:
        if not batch[0][2]:  # a write through Optuna's own storage
            _, _, _, fn, args, _ = batch[0]
            return [fn(*args)]
        with self._engine.begin() as conn:
            return [fn(conn, *args) for *_, fn, args, _ in batch]

    def _wait(
        self, attempt: int, since: float, error: Exception, batch: list[tuple[Any, ...]]
    ) -> None:
        """Note the failed attempt and wait for the next; give up once past the patience."""
        limit = len(self._delays)
        if self.gave_up is None and attempt > limit:
            elapsed = time.monotonic() - since
            self.gave_up = StorageUnreachable(
                f"the storage did not answer for {elapsed:.0f} s ({attempt} attempts): "
                f"{_cause_line(error)}; the results are kept in memory and written once "
                "it is back"
            )
            self._give_up(batch)
        if self.gave_up is None:
            self._notes.append(
                f"storage unreachable, retrying ({attempt}/{limit}): {_cause_line(error)}"
            )
        delay = self._delays[min(attempt, limit) - 1]
        self._wake.wait(delay)
        self._wake.clear()

    def _give_up(self, batch: list[tuple[Any, ...]]) -> None:
        """Fail every waiting future; drop the new trials' records, keep the other writes."""
        assert self.gave_up is not None
        _STRANDED.add(self)
        queued = []
        while True:
            try:
                queued.append(self._queue.get_nowait())
            except queue.Empty:
                break
        for item in [*batch, *queued]:
            if not item[-1] or item[-1].done():
                continue
            item[-1].set_exception(self.gave_up)
        batch[:] = [item for item in batch if item[0] != 0]
        for item in queued:
            if item[0] != 0:
                self._queue.put(item)

    def _split(self, batch: list[tuple[Any, ...]], error: Exception, retried: bool) -> None:
        if len(batch) > 1:
            for item in batch:
                self._run([item], retried)
            return
        future = batch[0][-1]
        if future.done():
            return
        if retried and isinstance(error, sqlalchemy.exc.IntegrityError):
            # The connection broke after the server committed: the write is there already.
            future.set_result(None)
        else:
            future.set_exception(error)


def _cause_line(error: BaseException) -> str:
    """The database's own words for ``error`` (SQLAlchemy's and Optuna's wrappers left out)."""
    while error.__cause__ is not None:
        error = error.__cause__
    orig = getattr(error, "orig", None)
    return one_line(orig if isinstance(orig, BaseException) else error)
