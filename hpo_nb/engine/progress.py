"""A run's state machine and the immutable progress snapshots observers receive."""

from __future__ import annotations

import dataclasses
import enum
import math
import time
from typing import Any

__all__ = ["Progress", "RunState", "check_transition"]


class RunState(str, enum.Enum):
    """Where a run is in its life; the last four are ends, each with a reason."""

    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    COMPLETED = "completed"  # reached its target (or its grid is exhausted)
    CONVERGED = "converged"  # the best value stopped improving (--patience)
    STOPPED = "stopped"  # a stop, an interrupt or a time limit
    FAILED = "failed"  # the run itself could not go on (the storage failed, ...)

    @property
    def done(self) -> bool:
        return self in _ENDS


_ENDS = {RunState.COMPLETED, RunState.CONVERGED, RunState.STOPPED, RunState.FAILED}
_ALLOWED = {
    RunState.STARTING: {RunState.RUNNING, RunState.STOPPING, RunState.STOPPED, RunState.FAILED},
    RunState.RUNNING: {RunState.STOPPING, *_ENDS},
    RunState.STOPPING: _ENDS,
}


def check_transition(old: RunState, new: RunState) -> None:
    """Raise ``RuntimeError`` for a transition the life cycle does not allow."""
    if new not in _ALLOWED.get(old, set()):
        raise RuntimeError(f"a run cannot go from {old.value} to {new.value}")


@dataclasses.dataclass(frozen=True)
class Progress:
    """One snapshot of a run; cheap to copy, safe to hand to another thread."""

    study: str
    target: int
    directions: tuple[str, ...] = ("minimize",)
    state: RunState = RunState.STARTING
    reason: str = ""
    note: str = ""
    finished_before: int = 0
    complete: int = 0
    pruned: int = 0
    failed: int = 0
    running: int = 0
    best_value: float | None = None
    best_params: dict[str, Any] = dataclasses.field(default_factory=dict)
    best_number: int | None = None
    last_failure: str = ""
    sampler: str = ""
    retried: int = 0  # failed trials whose parameters run again (they do not count)
    events: tuple[str, ...] = ()  # the latest ones, "HH:MM:SS text"
    events_total: int = 0  # how many the run has emitted (views tell the new ones by it)
    resources: tuple[dict[str, Any], ...] = ()
    started_at: float = dataclasses.field(default_factory=time.time)
    ended_at: float | None = None

    @property
    def finished(self) -> int:
        return self.complete + self.pruned + self.failed

    @property
    def counted(self) -> int:
        """Finished trials that count towards the target (a retried failure does not)."""
        return self.finished - self.retried

    @property
    def elapsed(self) -> float:
        end = self.ended_at if self.ended_at is not None else time.time()
        return max(0.0, end - self.started_at)

    @property
    def eta(self) -> float | None:
        """Seconds until the target is reached at this run's pace; ``None`` before any result."""
        done_here = self.finished - self.finished_before
        if self.state.done:
            return 0.0
        if done_here <= 0:
            return None
        remaining = max(0, self.target - self.counted)
        return remaining * self.elapsed / done_here

    def summary(self) -> str:
        """A stable one-line summary (no clock in it), at most 110 characters when it can; a
        failed run's says why (a cell's text output is all some front ends show)."""
        best = "" if self.best_value is None else f", best {_short(self.best_value)}"
        why = f": {self.reason}" if self.state == RunState.FAILED and self.reason else ""
        return (
            f"{self.study}: {self.finished}/{self.target} finished ({self.complete} complete, "
            f"{self.pruned} pruned, {self.failed} failed, {self.running} running){best} "
            f"[{self.state.value}{why}]"
        )

    def to_json(self) -> dict[str, Any]:
        """What the widget receives."""
        data = dataclasses.asdict(self)
        data["state"] = self.state.value
        data["finished"] = self.finished
        data["summary"] = self.summary()
        best = self.best_value
        data["best_value"] = None if best is None or not math.isfinite(best) else best
        data["best_params"] = {k: _jsonable(v) for k, v in self.best_params.items()}
        return data


def _short(value: float) -> str:
    return f"{value:.6g}"


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value
