"""Where a run's next trials come from: drawn ahead while others run, sent ahead to the task
that will run them, or a failed trial's parameters run again.

The one rule for how many more trials may start is :meth:`Supply.room_left`.
"""

from __future__ import annotations

import collections
import dataclasses
import pickle
import statistics
import time
from collections.abc import Callable, Iterable
from typing import Any

import optuna
from optuna.distributions import BaseDistribution

from hpo_nb.engine.mirror import DrawnTrial, Mirror, MirroredTrial
from hpo_nb.engine.progress import Progress
from hpo_nb.execution.worker import TrialTicket

__all__ = ["AHEAD_MIN", "Next", "Retry", "Supply"]

_SEND_TIME = 0.005  # seconds left to the event loop to send a ticket
# Trials sent ahead only when the recent ones lasted longer than this (median, seconds): a
# shorter trial ends before its successor could arrive, and asks for it anyway (the answer
# then brings its successor: see Supply.successor).
AHEAD_MIN = 0.1


@dataclasses.dataclass(frozen=True)
class Retry:
    """A failed trial's parameters, to run again (preferably on another worker)."""

    params: dict[str, Any]
    origin: int  # the number of the first trial with these parameters
    attempt: int  # 1 for the first retry
    avoid: str | None  # the worker it failed on


@dataclasses.dataclass
class Next:
    """A trial ready to hand out: drawn, and its ticket made; not yet in the storage."""

    drawn: DrawnTrial
    retry: Retry | None
    ticket: bytes
    revoked: bool = False  # sent ahead, then taken back (the run is stopping)

    @property
    def id(self) -> int:
        return self.drawn.trial.number  # unique in the run (the in-memory study's number)


class Supply:
    """The trials drawn ahead, those sent ahead (by task key), and the retries waiting."""

    def __init__(
        self,
        mirror: Mirror,
        progress: Callable[[], Progress],
        running: Callable[[], int],
        workers: Callable[[], int],
        *,
        declared: dict[str, BaseDistribution],
        overrides: dict[str, BaseDistribution],
        draw_ahead: bool,
        retries: int,
    ) -> None:
        self._mirror = mirror
        self._progress = progress
        self._running = running  # trials handed out and not finished
        self._workers = workers  # how many workers the cluster has
        self._declared = declared
        self.overrides = dict(overrides)
        self._draw_ahead = draw_ahead
        self._max_retries = retries
        self.ahead: list[DrawnTrial] = []  # drawn before a task asks, oldest first
        self.sent: dict[str, Next] = {}  # task key -> its next trial, sent ahead
        self.retries: list[Retry] = []
        self._durations: collections.deque[float] = collections.deque(maxlen=32)
        self._last_ticket = 0.0
        self.draw_at: float | None = None  # when to draw the next trial ahead, if wanted

    # -- the rule --------------------------------------------------------------------------
    def room_left(self) -> int:
        """Trials that may still be handed out: the target, less the trials that count
        already, those running and those sent ahead."""
        p = self._progress()
        return p.target - p.counted - self._running() - len(self.sent)

    def drawing_ahead(self) -> bool:
        """Off when a seed asks for runs that repeat exactly (what the sampler has seen would
        depend on timing), or when the sampler cannot."""
        return self._draw_ahead and self._mirror.can_draw_ahead

    def short_trials(self) -> bool:
        """Whether recent trials ended before a successor sent later could arrive."""
        return bool(self._durations) and statistics.median(self._durations) < AHEAD_MIN

    def started(self) -> None:
        """A ticket left for a worker now (draws ahead wait a moment for it to go)."""
        self._last_ticket = time.monotonic()

    def ended(self, started: float | None) -> None:
        """A trial that started at ``started`` (monotonic) ended now."""
        if started is not None:
            self._durations.append(time.monotonic() - started)

    # -- drawing ---------------------------------------------------------------------------
    def draw_ahead(self, may_start: bool, creating: bool) -> None:
        """Draw the next trials while the current ones run, one per running trial, so that a
        worker that becomes free gets its parameters at once instead of waiting for the
        sampler (many trials at once tend to end in bursts: their successors are drawn while
        the kernel is idle). Not while the storage creates a record (records first)."""
        self.draw_at = None
        waiting = len(self.ahead) + len(self.sent)
        if (
            not may_start
            or creating
            or waiting >= max(1, self._running())
            or not self.drawing_ahead()
            or self.room_left() - len(self.ahead) <= 0
        ):
            return
        # Not at once after a ticket: the sampler would hold the GIL while the client's event
        # loop sends it.
        self.draw_at = self._last_ticket + _SEND_TIME
        if time.monotonic() >= self.draw_at:
            self.ahead.append(self._mirror.draw(self.proposals()))
            self.draw_at = time.monotonic()  # the next one, if wanted, after the inbox

    def proposals(self) -> dict[str, BaseDistribution]:
        """The parameters a new trial will probably ask for (the objective's declared space and
        literal ``suggest_*`` calls, those of the finished trials, those the running trials
        asked for, as edited in the panel), sampled when it is drawn: a worker then asks the
        controller nothing. Not in a seeded run, which keeps Optuna's order of sampling."""
        if not self.drawing_ahead():
            return {}
        mirror = self._mirror
        return {**self._declared, **mirror.distributions, **mirror.asked, **self.overrides}

    def next_for(self, worker: str | None, *, draw: bool) -> Next | None:
        """The next trial for a task on ``worker``: a pending retry, else one drawn ahead,
        else (``draw``) a new one."""
        retry = self._take_retry(worker)
        if retry is not None:
            self._mirror.enqueue(retry.params)
            drawn = self._mirror.draw(self.proposals())
        elif self.ahead or draw:
            drawn = self.drawn()
        else:
            return None
        return Next(drawn, retry, self.pack(drawn))

    def drawn(self) -> DrawnTrial:
        """The oldest trial drawn ahead (with what was learnt since), else a new one."""
        if not self.ahead:
            return self._mirror.draw(self.proposals())
        drawn = self.ahead.pop(0)
        self._mirror.propose(drawn, self.proposals())
        return drawn

    def pack(self, drawn: DrawnTrial) -> bytes:
        """The ticket of ``drawn``, pickled once for the wire."""
        return pickle.dumps(self.ticket(drawn), protocol=5)

    def ticket(self, drawn: DrawnTrial) -> TrialTicket:
        trial, fixed = drawn.trial, drawn.fixed_params
        study = self._mirror.study
        return TrialTicket(
            number=None,  # the storage's number, which the worker asks for if it needs it
            n_objectives=len(study.directions),
            datetime_start=trial.datetime_start,
            fixed_params=fixed,
            relative_params={k: v for k, v in trial.relative_params.items() if k not in fixed},
            relative_space=dict(trial.relative_search_space or {}),
            overrides=self.overrides,
            proposed=drawn.proposed,
            prunes=not isinstance(study.pruner, optuna.pruners.NopPruner),
        )

    # -- sending ahead ---------------------------------------------------------------------
    def successor(self, worker: str | None) -> Next | None:
        """The trial to send with the one a task asked for: one drawn already or, when trials
        end before a successor sent later could arrive, a new one. Such a task then starts it
        the moment its trial ends and asks again only after that: two trials per round trip
        through the scheduler instead of one."""
        if not self.drawing_ahead() or self.room_left() <= 0:
            return None
        return self.next_for(worker, draw=self.short_trials())

    def send_ahead(self, running: Iterable[tuple[str, str | None]]) -> list[tuple[str, Next]]:
        """Give each task (key, worker) that runs a trial, and has none sent ahead, its next
        one (drawn ahead, or a retry), the first to end first; returns what to send."""
        if not ((self.ahead or self.retries) and self.drawing_ahead()) or self.short_trials():
            return []
        given = []
        for key, worker in running:
            if key in self.sent:
                continue
            if self.room_left() <= 0 or not (self.ahead or self.retries):
                break
            nxt = self.next_for(worker, draw=False)
            if nxt is not None:
                self.sent[key] = nxt
                given.append((key, nxt))
        return given

    def revoke(self) -> list[tuple[str, Next]]:
        """Take back every trial sent ahead (the run stops); returns what to tell."""
        taken = [(key, nxt) for key, nxt in self.sent.items() if not nxt.revoked]
        for _, nxt in taken:
            nxt.revoked = True
        return taken

    def send(self, key: str, nxt: Next) -> None:
        """``nxt`` goes to task ``key`` ahead of its asking."""
        self.sent[key] = nxt

    def take_sent(self, key: str) -> Next | None:
        """The trial sent ahead to task ``key``, no longer held for it."""
        return self.sent.pop(key, None)

    def discard(self, nxt: Next | None) -> None:
        """A trial never started: it stays out of the storage; its retry waits for another."""
        if nxt is not None and nxt.retry is not None:
            self.retries.insert(0, nxt.retry)

    # -- retries ---------------------------------------------------------------------------
    def retry(self, previous: Retry | None, worker: str | None, t: MirroredTrial) -> int | None:
        """Run failed trial ``t`` again if retries are left; returns the attempt, or None."""
        done = previous.attempt if previous is not None else 0
        if done >= self._max_retries:
            return None
        origin = previous.origin if previous is not None else t.number
        # What the trial ran with: a worker that died never sent the values it resolved
        # itself (enqueued and relative ones), but the controller knows them.
        params = {**t.trial.relative_params, **t.fixed_params, **t.trial.params}
        self.retries.append(Retry(params, origin, done + 1, worker))
        return done + 1

    def _take_retry(self, worker: str | None) -> Retry | None:
        """A pending retry for this worker: one that failed elsewhere, when there is a choice."""
        if not self.retries:
            return None
        several = self._workers() > 1
        for i, retry in enumerate(self.retries):
            if not several or retry.avoid != worker:
                return self.retries.pop(i)
        return None
