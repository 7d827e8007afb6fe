"""Keeping log lines out of notebook cells.

A line logged from a run's threads (Optuna's warnings, say) would land in whatever cell runs at
that moment: each run keeps its own instead (``Run.log``). Some of Optuna's notices (a study
created in memory) are noise and are silenced while they happen.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import threading
from collections.abc import Iterator

__all__ = ["keep_thread_quiet", "quiet"]


class _ThreadLogs(logging.Filter):
    """Sends the records of registered threads to their own log instead of the handlers."""

    logs: dict[int, collections.deque[str]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        log = self.logs.get(threading.get_ident())
        if log is None:
            return True
        log.append(f"{record.levelname.lower()}: {record.getMessage()}")
        return False


_FILTER = _ThreadLogs()


@contextlib.contextmanager
def keep_thread_quiet(log: collections.deque[str]) -> Iterator[None]:
    """While it lasts, what Optuna logs from this thread goes to ``log``."""
    for handler in logging.getLogger("optuna").handlers:
        if _FILTER not in handler.filters:
            handler.addFilter(_FILTER)
    _FILTER.logs[threading.get_ident()] = log
    try:
        yield
    finally:
        _FILTER.logs.pop(threading.get_ident(), None)


@contextlib.contextmanager
def quiet(logger_name: str) -> Iterator[None]:
    """Logger ``logger_name`` says nothing while it lasts."""
    logger = logging.getLogger(logger_name)
    disabled, logger.disabled = logger.disabled, True
    try:
        yield
    finally:
        logger.disabled = disabled
