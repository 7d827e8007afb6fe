"""The one exception type users see from hpo_nb."""

from __future__ import annotations

__all__ = ["HpoError", "one_line"]


class HpoError(ValueError):
    """Bad input or a run that cannot go on; the message is one line saying what to do."""


def one_line(error: BaseException | None) -> str:
    """``error`` as one line: hpo_nb's own message as it is, else ``Type: first line``."""
    if error is None:
        return "unknown error"
    if isinstance(error, HpoError):
        return str(error)
    text = str(error).strip()
    first = text.splitlines()[0] if text else ""
    return f"{type(error).__name__}: {first}" if first else type(error).__name__
