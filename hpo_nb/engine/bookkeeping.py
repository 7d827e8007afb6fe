"""What a run knows of itself and tells others: its progress (counts, best, events), the rows of
its finished trials, the study's record in the storage, and the observers it informs."""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import time
from collections.abc import Callable, Iterable
from typing import Any

import optuna
from distributed import Client
from optuna.trial import TrialState

from hpo_nb._settings import Settings
from hpo_nb.engine.mirror import Mirror, MirroredTrial
from hpo_nb.engine.progress import Progress, RunState, check_transition
from hpo_nb.engine.records import FAIL_REASON_KEY, RECORD_KEY, now_iso, session
from hpo_nb.engine.rows import trial_row
from hpo_nb.engine.tasks import Task
from hpo_nb.execution.monitor import worker_stats
from hpo_nb.search.algorithms import explain_prune

__all__ = ["Bookkeeping"]

_FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


class Bookkeeping:
    """The run's progress, rows and record; the observers get a snapshot a few times a second
    at most."""

    def __init__(self, mirror: Mirror, config: Settings, min_delta: float, target: int) -> None:
        self._mirror = mirror
        self._config = config
        self._min_delta = min_delta
        directions = tuple(d.name.lower() for d in mirror.study.directions)
        self.progress = Progress(
            study=mirror.study.study_name, target=target, directions=directions
        )
        self.rows: list[dict[str, Any]] = []  # this run's finished trials, appended
        self.log: collections.deque[str] = collections.deque(maxlen=200)
        self.since_improvement = 0  # finished trials since the best improved by min_delta
        self._observers: list[Callable[[Progress], None]] = []
        self._dirty = False
        self._last_publish = 0.0
        self._last_record = 0.0
        self._last_monitor = 0.0
        self._last_heartbeat = 0.0

    # -- progress --------------------------------------------------------------------------
    def update(self, **changes: Any) -> None:
        self.progress = dataclasses.replace(self.progress, **changes)
        self._dirty = True

    def set_state(self, state: RunState, **changes: Any) -> None:
        check_transition(self.progress.state, state)
        self.update(state=state, **changes)

    def event(self, text: str) -> None:
        """A notable moment of the run, for the views and %hpo_status."""
        stamp = time.strftime("%H:%M:%S")
        p = self.progress
        self.update(events=(*p.events[-19:], f"{stamp} {text}"), events_total=p.events_total + 1)

    def count_study(self) -> None:
        """The study's trials so far, before the run starts."""
        trials = self._mirror.study.get_trials(deepcopy=False)
        counts = collections.Counter(t.state for t in trials)
        self.update(
            complete=counts[TrialState.COMPLETE],
            pruned=counts[TrialState.PRUNED],
            failed=counts[TrialState.FAIL],
            **self._best_of(trials),
        )
        finished = self.progress.finished
        self.update(finished_before=finished)
        if finished >= self.progress.target:
            self.update(
                reason=f"the study already has {finished} finished trials "
                f"(target {self.progress.target})"
            )

    # -- finished trials -------------------------------------------------------------------
    def record(
        self,
        task: Task,
        t: MirroredTrial,
        state: TrialState,
        values: list[float] | None,
        attrs: dict[str, str] | None,
        cancelled: bool,
        running: int,
    ) -> None:
        """Store trial ``t``'s end, and count it (``running``: the trials still running)."""
        frozen = self._mirror.finish(t, state, values, attrs)
        reason = (attrs or {}).get(FAIL_REASON_KEY, "")
        row = trial_row(frozen, t.number)
        self.rows.append({**row, "w": task.worker, "g": task.gpu, "r": reason})
        p, changes = self.progress, dict[str, Any](running=running)
        self.since_improvement += 1
        if state == TrialState.COMPLETE:
            changes["complete"] = p.complete + 1
            if values is not None and len(values) == 1 and self._is_better(values[0]):
                if self._improves(values[0]):
                    self.since_improvement = 0
                changes.update(
                    best_value=values[0], best_params=t.trial.params, best_number=t.number
                )
        elif state == TrialState.PRUNED:
            changes["pruned"] = p.pruned + 1
            study = self._mirror.study
            self.event(explain_prune(study.pruner, study, frozen, t.number))
        else:
            changes.update(failed=p.failed + 1, last_failure=f"trial {t.number}: {reason}")
            if not cancelled:
                self.event(f"trial {t.number} failed: {reason}")
        self.update(**changes)

    def history(self) -> list[dict[str, Any]]:
        """Rows of the study's finished trials that this run did not finish (from memory)."""
        mine = {r["n"] for r in self.rows}
        trials = self._mirror.study.get_trials(deepcopy=False, states=_FINISHED)
        rows = (trial_row(t, self._mirror.storage_number(t.number)) for t in trials)
        return [r for r in rows if r["n"] not in mine]

    def _is_better(self, value: float) -> bool:
        best = self.progress.best_value
        if best is None:
            return True
        return value > best if self.progress.directions[0] == "maximize" else value < best

    def _improves(self, value: float) -> bool:
        """Better than the best by at least ``min_delta`` (the first value always is)."""
        best = self.progress.best_value
        if best is None:
            return True
        if self.progress.directions[0] == "minimize":
            return value < best - self._min_delta
        return value > best + self._min_delta

    def _best_of(self, trials: list[optuna.trial.FrozenTrial]) -> dict[str, Any]:
        if len(self.progress.directions) != 1:
            return {}
        complete = [t for t in trials if t.state == TrialState.COMPLETE]
        if not complete:
            return {}
        pick = max if self.progress.directions[0] == "maximize" else min
        best = pick(complete, key=lambda t: t.values[0])
        return {
            "best_value": best.values[0],
            "best_params": best.params,
            "best_number": self._mirror.storage_number(best.number),
        }

    # -- telling others --------------------------------------------------------------------
    def subscribe(self, observer: Callable[[Progress], None]) -> None:
        """Call ``observer(progress)`` now and on every (throttled) update."""
        self._observers = [*self._observers, observer]
        observer(self.progress)

    def publish(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and (not self._dirty or now - self._last_publish < self.interval):
            return
        self._last_publish = now
        self._dirty = False
        progress = self.progress
        for observer in self._observers:
            with contextlib.suppress(Exception):  # a broken view must not stop the study
                observer(progress)

    @property
    def interval(self) -> float:
        return self._config.widget_interval

    def publish_wait(self) -> float:
        """Seconds until the next publication is due (1 when nothing changed)."""
        if not self._dirty:
            return 1.0
        return max(0.0, self.interval - (time.monotonic() - self._last_publish))

    def write_record(self, force: bool = True) -> None:
        """The study's state in the storage, for %hpo_list and other kernels."""
        now = time.monotonic()
        if not force and now - self._last_record <= self._config.record_interval:
            return
        self._last_record = now
        p = self.progress
        counts = {"complete": p.complete, "pruned": p.pruned, "failed": p.failed}
        record = {
            "state": p.state.value,
            "reason": p.reason,
            "owner": session().to_json(),
            "heartbeat": time.time(),
            "updated": now_iso(),
            "counts": {**counts, "running": p.running},
            "target": p.target,
            "best_value": p.best_value,
            "best_number": p.best_number,
            "sampler": p.sampler,
        }
        self._mirror.set_study_attr(RECORD_KEY, record)

    def monitor(self, client: Client, tasks: Iterable[Task]) -> bool:
        """Each worker's CPU, memory and GPU figures (from dask's heartbeats) and its trial,
        once a second; True when it looked."""
        now = time.monotonic()
        if now - self._last_monitor <= 1.0:
            return False
        self._last_monitor = now
        trials = {t.worker: t.trial.number for t in tasks if t.worker and t.trial is not None}
        workers = client.scheduler_info().get("workers", {})
        self.update(
            resources=tuple(
                worker_stats(address, info, trials.get(address))
                for address, info in sorted(workers.items())
            )
        )
        return True

    def heartbeat(self, tasks: Iterable[Task]) -> None:
        """Tell the storage the running trials are alive (other kernels fail stale ones)."""
        now = time.monotonic()
        if now - self._last_heartbeat <= self._config.heartbeat_interval / 2:
            return
        for task in tasks:
            if task.trial is not None:
                self._mirror.heartbeat(task.trial)
        self._last_heartbeat = now
