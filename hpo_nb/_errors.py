"""The one exception type users see from hpo_nb."""

from __future__ import annotations

__all__ = ["HpoError"]


class HpoError(ValueError):
    """Bad input or a run that cannot go on; the message is one line saying what to do."""
