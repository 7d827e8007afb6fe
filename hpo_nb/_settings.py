"""Every default of hpo_nb in one place, with ``HPO_NB_*`` environment overrides."""

from __future__ import annotations

import dataclasses
import os
from typing import Any

__all__ = ["Settings", "settings"]


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return os.cpu_count() or 1


@dataclasses.dataclass(frozen=True)
class Settings:
    """Defaults; each field ``x`` may be overridden by the environment variable ``HPO_NB_X``."""

    storage: str = "sqlite:///hpo.db"
    """Where studies live when ``--storage`` is not given (relative to the working directory)."""
    workers: int = dataclasses.field(default_factory=_cpu_count)
    """Worker processes of the local dask cluster (one thread each)."""
    widget_interval: float = 0.25
    """Seconds between two widget updates at most (4 per second)."""
    reply_timeout: float = 300.0
    """Seconds a worker waits for the controller to answer before giving its trial up."""
    heartbeat_interval: int = 30
    """Seconds between heartbeats of running trials in the storage."""
    stale_grace: int = 120
    """Seconds without a heartbeat after which another session may fail a RUNNING trial."""
    sqlite_timeout: float = 60.0
    """Seconds SQLite waits on a lock held by another process before giving up."""
    storage_patience: float = 60.0
    """Seconds a run keeps retrying a storage that does not answer (writes wait in memory)
    before it fails; its writes are still written once the storage is back."""
    kill_grace: float = 3.0
    """Seconds a stopped trial may take to stop by itself before its worker is restarted."""
    timeout_grace: float = 1.0
    """The same for a trial over its --trial-timeout."""
    record_interval: float = 5.0
    """Seconds between refreshes of a running study's record (state, counts) in the storage."""

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        """Read the defaults, then apply every ``HPO_NB_<FIELD>`` found in ``environ``."""
        environ = dict(os.environ if environ is None else environ)
        base = cls()
        changes: dict[str, Any] = {}
        for field in dataclasses.fields(cls):
            raw = environ.get(f"HPO_NB_{field.name.upper()}")
            if raw is None:
                continue
            kind = type(getattr(base, field.name))
            try:
                changes[field.name] = kind(raw)
            except ValueError:
                raise ValueError(
                    f"HPO_NB_{field.name.upper()}={raw!r} is not a valid {kind.__name__}"
                ) from None
        return dataclasses.replace(base, **changes)


settings = Settings.from_env()
