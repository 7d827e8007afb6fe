"""Ctrl-C during a blocking wait is never lost, even when Python drops its KeyboardInterrupt.

Python runs the SIGINT handler in the main thread between two bytecodes, wherever that is.
When it is inside a weakref callback or a ``__del__`` (the garbage collector runs them at any
moment, SQLAlchemy's result caches among them), the KeyboardInterrupt is printed as "Exception
ignored" and dropped, and a ``--wait`` run would go on to its end. While :func:`watch` is
active a Ctrl-C is also remembered, and :func:`wait` raises it.
"""

from __future__ import annotations

import contextlib
import functools
import signal
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

_SLICE = 0.25  # a Ctrl-C that Python dropped ends a wait within this many seconds
_seen: threading.Event | None = None  # the main thread's outermost watch

F = TypeVar("F", bound=Callable[..., Any])


@contextlib.contextmanager
def watch() -> Iterator[threading.Event]:
    """Remember every Ctrl-C in the event yielded while the block runs (in the main thread;
    elsewhere the event is never set). Nested blocks share the outermost block's event."""
    global _seen
    if threading.current_thread() is not threading.main_thread():
        yield threading.Event()
        return
    if _seen is not None:
        yield _seen
        return
    previous = signal.getsignal(signal.SIGINT)
    if not callable(previous):  # Ctrl-C is ignored, or ends the process: nothing to remember
        yield threading.Event()
        return
    seen = threading.Event()

    def remember(signum: int, frame: Any) -> None:
        seen.set()
        previous(signum, frame)

    signal.signal(signal.SIGINT, remember)
    _seen = seen
    try:
        yield seen
    finally:
        _seen = None
        if signal.getsignal(signal.SIGINT) is remember:
            signal.signal(signal.SIGINT, previous)


def watched(fn: F) -> F:
    """Run ``fn`` inside :func:`watch`."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with watch():
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def wait(event: threading.Event, timeout: float | None, ctrl_c: threading.Event) -> bool:
    """``event.wait(timeout)`` that raises KeyboardInterrupt for a Ctrl-C in ``ctrl_c``
    (then forgotten), including one Python dropped before or during the wait."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while not event.is_set():
        if ctrl_c.is_set():
            ctrl_c.clear()
            raise KeyboardInterrupt
        left = _SLICE if deadline is None else min(_SLICE, deadline - time.monotonic())
        if left <= 0:
            return False
        event.wait(left)
    return True
