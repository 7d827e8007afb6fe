"""The trial loop: keeps dask workers supplied with trial tasks and records what they send.

The controller runs in one thread of the kernel process and is the only writer to the study's
storage while a run lasts. Workers never open the storage; they talk to the controller through
:mod:`hpo_nb.execution.channel`. Each worker thread runs one dask task that takes trial after
trial; while a trial runs, the controller sends its task the next one, drawn ahead, so a worker
that becomes free starts it at once and its result travels with the note that it did.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import dataclasses
import logging
import pickle
import queue
import statistics
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable
from typing import Any

import optuna
import sqlalchemy.exc
from distributed import Client, Future
from distributed.scheduler import KilledWorker
from optuna.distributions import BaseDistribution, json_to_distribution
from optuna.trial import TrialState

from hpo_nb._errors import HpoError
from hpo_nb._settings import Settings
from hpo_nb.engine.mirror import DrawnTrial, Mirror, MirroredTrial
from hpo_nb.engine.progress import Progress, RunState, check_transition
from hpo_nb.engine.records import (
    FAIL_REASON_KEY,
    RECORD_KEY,
    STOP_KEY,
    TRACEBACK_KEY,
    TRIAL_KEY,
    now_iso,
    session,
)
from hpo_nb.engine.rows import trial_row
from hpo_nb.execution.channel import ControllerChannel, new_topic
from hpo_nb.execution.gpu import memory_released
from hpo_nb.execution.monitor import worker_stats
from hpo_nb.execution.worker import PickledObjective, TrialTicket, run_slot
from hpo_nb.search.algorithms import explain_prune

__all__ = ["FAIL_REASON_KEY", "TRACEBACK_KEY", "Controller", "Limits"]
_FINISH_GRACE = 5.0  # seconds to wait for a finished task's earlier messages
_CAPACITY_REFRESH = 2.0


class _KeepThreadsQuiet(logging.Filter):
    """Log lines from a run's threads (Optuna's warnings, say) would land in whatever notebook
    cell runs at that moment; each run keeps its own instead (``Run.log``)."""

    runs: dict[int, Controller] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        controller = self.runs.get(threading.get_ident())
        if controller is None:
            return True
        controller.log.append(f"{record.levelname.lower()}: {record.getMessage()}")
        return False


_QUIET = _KeepThreadsQuiet()


def _quiet_optuna() -> None:
    for handler in logging.getLogger("optuna").handlers:
        if _QUIET not in handler.filters:
            handler.addFilter(_QUIET)


@dataclasses.dataclass(frozen=True)
class Limits:
    """When a run ends before its target: time limits and the patience rule."""

    timeout: float | None = None  # start no new trial after this many seconds
    max_time: float | None = None  # end the run (cancelling running trials) at this time
    patience: int | None = None  # stop after this many finished trials without improvement
    min_delta: float = 0.0  # the least change that counts as an improvement
    trial_timeout: float | None = None  # kill a trial's process after this many seconds
    retries: int = 0  # run a failed trial's parameters again, up to this many times
    concurrency: int | None = None  # at most this many trials at once
    # Draw the next trial while others run (see _draw_ahead); off when a seed asks for runs
    # that repeat exactly, since what the sampler has seen then depends on timing.
    draw_ahead: bool = True


@dataclasses.dataclass
class _Task:
    """A submitted dask task; it holds a trial once it has started and asked for one."""

    key: str
    future: Future | None = None  # set once submitted
    trial: MirroredTrial | None = None
    next_seq: dict[str, int] = dataclasses.field(default_factory=dict)
    parked: dict[str, dict[int, dict[str, Any]]] = dataclasses.field(default_factory=dict)
    waiting_since: float | None = None
    worker: str | None = None  # the worker's address, from the task's first message
    gpu: str | None = None  # the UUID of the worker's GPU, if it has one
    pid: int | None = None  # the worker's process
    started: float | None = None  # when it got its trial (monotonic)
    created: concurrent.futures.Future[MirroredTrial] | None = (
        None  # its trial, while the storage creates it
    )
    retry: _Retry | None = None  # the failed trial this one runs again
    attempt: str | None = None  # the execution of the task (see _channel) that runs trials
    # Its messages that came while the storage was creating its trial's record, in order:
    # handled once the record exists (_on_created), so the loop never waits for the writer.
    early: list[dict[str, Any]] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class _Next:
    """A trial ready to hand out: drawn, and its ticket made; not yet in the storage."""

    drawn: DrawnTrial
    retry: _Retry | None
    ticket: bytes
    revoked: bool = False  # sent ahead, then taken back (the run is stopping)

    @property
    def id(self) -> int:
        return self.drawn.trial.number  # unique in the run (the in-memory study's number)


@dataclasses.dataclass(frozen=True)
class _Retry:
    """A failed trial's parameters, to run again (preferably on another worker)."""

    params: dict[str, Any]
    origin: int  # the number of the first trial with these parameters
    attempt: int  # 1 for the first retry
    avoid: str | None  # the worker it failed on


_SEND_TIME = 0.005  # seconds left to the event loop to send a ticket
# Trials sent ahead only when the recent ones lasted longer than this (median, seconds): a
# shorter trial ends before its successor could arrive, and asks for it anyway (the answer
# then brings its successor: see _successor).
_AHEAD_MIN = 0.1
_FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


class Controller:
    """Runs one study until its target, a time limit or a stop; see :class:`hpo_nb.Run`."""

    def __init__(
        self,
        *,
        study: optuna.Study,
        mirror: Mirror,
        objective: PickledObjective,
        target: int,
        connect: Callable[[], Client],
        limits: Limits,
        config: Settings,
        trial_attrs: dict[str, Any] | None = None,
        overrides: dict[str, BaseDistribution] | None = None,
    ) -> None:
        self.study = study
        self._overrides = dict(overrides or {})
        self.rows: list[dict[str, Any]] = []  # this run's finished trials, appended (see _rows)
        self._mirror = mirror
        self._objective = objective
        loaded = objective.load()  # in the kernel: the objective itself, not a copy
        self._declared = {
            **loaded.literal_distributions(),
            **(loaded.space.distributions() if loaded.space is not None else {}),
        }
        self._connect = connect
        self._limits = limits
        self._config = config
        self._trial_attrs = {TRIAL_KEY: {"session": session().session, **(trial_attrs or {})}}
        self._inbox: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()
        self._tasks: dict[str, _Task] = {}
        self._submitted = False  # whether the run has submitted tasks yet
        self._busy: set[str] = set()  # the tasks that hold a trial (or its creation)
        self._creating: set[str] = set()  # the tasks whose trial the storage is creating
        self._observers: list[Callable[[Progress], None]] = []
        self._stop_reason: str | None = None
        self._end_state = RunState.STOPPED
        self._deadline: float | None = None
        self._hard_deadline: float | None = None
        self._since_improvement = 0
        self._last_record = 0.0
        self._last_stop_check = 0.0
        self._last_monitor = 0.0
        self._retries: list[_Retry] = []
        self._ahead: list[DrawnTrial] = []  # trials drawn before a worker asks, oldest first
        self._sent: dict[str, _Next] = {}  # task key -> its next trial, sent ahead
        self._durations: collections.deque[float] = collections.deque(maxlen=32)  # recent trials
        self._last_ticket = 0.0
        self._draw_at: float | None = None  # when to draw ahead (see _draw_ahead)
        self._doomed: dict[str, tuple[float, _Task]] = {}  # attempt -> (kill time, its task)
        self._resources: dict[str, float] | None = None
        self._client: Client | None = None
        self._channel: ControllerChannel | None = None
        self._objective_future: Future | None = None
        self._capacity = (0, 0.0)
        self._last_heartbeat = 0.0
        self._last_publish = 0.0
        self._dirty = False
        self.done = threading.Event()
        self.log: collections.deque[str] = collections.deque(maxlen=200)
        directions = tuple(d.name.lower() for d in study.directions)
        self.progress = Progress(study=study.study_name, target=target, directions=directions)

    # -- commands (any thread) ----------------------------------------------------------------
    def stop(self, *, graceful: bool = False, reason: str = "stopped by user") -> None:
        """Ask the loop to stop; without ``graceful`` running trials are cancelled (FAIL)."""
        self._inbox.put(("stop", graceful, reason))

    def narrow(self, overrides: dict[str, BaseDistribution]) -> None:
        """Later trials draw these parameters from these distributions (the code's own
        ``suggest_*`` ranges give way); trials already running keep theirs."""
        self._inbox.put(("narrow", dict(overrides)))

    def history(self) -> list[dict[str, Any]]:
        """Rows of the study's finished trials that this run did not finish (from memory)."""
        mine = {r["n"] for r in self.rows}
        trials = self._mirror.study.get_trials(deepcopy=False, states=_FINISHED)
        rows = (trial_row(t, self._mirror.storage_number(t.number)) for t in trials)
        return [r for r in rows if r["n"] not in mine]

    def study_attrs(self) -> dict[str, Any]:
        """The study's system attributes, read through the run's own storage."""
        return self._mirror.read_study_attrs()

    def distributions(self) -> dict[str, BaseDistribution]:
        """Each parameter of the study's finished trials, with its latest distribution."""
        return dict(self._mirror.distributions)

    def subscribe(self, observer: Callable[[Progress], None]) -> None:
        """Call ``observer(progress)`` now and on every (throttled) update."""
        self._observers = [*self._observers, observer]
        observer(self.progress)

    # -- the loop (its own thread) ------------------------------------------------------------
    def prepare(self) -> None:
        """Count the study's trials so far (in the caller's thread, before the loop starts)."""
        trials = self._mirror.study.get_trials(deepcopy=False)
        counts = dict.fromkeys(TrialState, 0)
        for t in trials:
            counts[t.state] += 1
        self._update(
            complete=counts[TrialState.COMPLETE],
            pruned=counts[TrialState.PRUNED],
            failed=counts[TrialState.FAIL],
            **self._best_of(trials),
        )
        finished = self.progress.finished
        self._update(finished_before=finished)
        if finished >= self.progress.target:
            self._update(
                reason=f"the study already has {finished} finished trials "
                f"(target {self.progress.target})"
            )

    def run(self) -> None:
        _quiet_optuna()
        _KeepThreadsQuiet.runs[threading.get_ident()] = self
        try:
            self._start()
            self._step(0.0)  # a stop sent while starting is seen before any task is submitted
            while True:
                self._fill()
                self._draw_ahead()
                self._send_ahead()
                if not self._tasks and self._no_more_trials():
                    break
                self._step(self._wait_time())
            self._end(self._end_state if self._stop_reason else RunState.COMPLETED)
        except BaseException as e:  # the run must end in a stated state
            self._end(RunState.FAILED, _one_line(e))
        finally:
            _KeepThreadsQuiet.runs.pop(threading.get_ident(), None)
            self.done.set()

    def _start(self) -> None:
        now = time.monotonic()
        if self._limits.timeout is not None:
            self._deadline = now + self._limits.timeout
        if self._limits.max_time is not None:
            self._hard_deadline = now + self._limits.max_time
        if self.progress.finished >= self.progress.target:
            return
        self._update(note="connecting to the dask cluster")
        self._publish(force=True)
        self._client = self._connect()
        self._channel = ControllerChannel(
            self._client, new_topic(), lambda message: self._inbox.put(("message", message))
        )
        self._objective_future = self._client.scatter(self._objective, broadcast=True, hash=False)
        workers = self._client.scheduler_info().get("workers", {}).values()
        if any("GPU" in (w.get("resources") or {}) for w in workers):
            self._resources = {"GPU": 1}  # one trial per GPU
        self._last_stop_check = time.time()  # stop requests older than this run do not count
        self._set_state(RunState.RUNNING, note="")
        self._write_record()
        self._publish(force=True)

    def _step(self, wait: float) -> None:
        try:
            item = self._inbox.get(timeout=wait) if wait > 0 else self._inbox.get_nowait()
        except queue.Empty:
            item = None
        while item is not None:
            self._dispatch(item)
            try:
                item = self._inbox.get_nowait()
            except queue.Empty:
                item = None
        self._housekeeping()

    def _dispatch(self, item: tuple[Any, ...]) -> None:
        kind = item[0]
        if kind == "message":
            self._on_message(item[1])
        elif kind == "done":
            self._on_future_done(item[1])
        elif kind == "stop":
            self._on_stop(graceful=item[1], reason=item[2])
        elif kind == "created":
            self._on_created(item[1], item[2])
        elif kind == "retire":
            self._retire(item[1], item[2])
        elif kind == "narrow":
            self._overrides = {**self._overrides, **item[1]}
            self._event("later trials use the edited search space: " + ", ".join(item[1]))

    # -- supplying tasks ----------------------------------------------------------------------
    def _running(self) -> int:
        """Trials handed out and not finished (the budget counts them)."""
        return len(self._busy)

    def _started_trials(self) -> int:
        """Trials running on a worker (what the user sees as running)."""
        return sum(1 for key in self._busy if self._tasks[key].started is not None)

    def _no_more_trials(self) -> bool:
        """True when no new trial may start; records why."""
        p = self.progress
        if self._stop_reason is not None:
            return True
        if p.counted >= p.target:
            if not p.reason:
                self._update(reason=f"reached {p.target} finished trials")
            return True
        if self._deadline is not None and time.monotonic() >= self._deadline:
            self._stop_reason = f"time limit of {self._limits.timeout:g} s reached"
            self._update(reason=self._stop_reason)
            return True
        return False

    def _fill(self) -> None:
        """Keep one task per worker thread, within the budget and the concurrency cap.

        Each task runs trials until none is left for it (see ``run_slot``), so a worker that
        becomes free asks for its next trial without waiting for dask; under a concurrency cap
        only that many tasks exist, so no more trials can ever run at once.
        """
        if self._client is None or self._no_more_trials():
            return
        budget = self.progress.target - self.progress.counted - self._running()
        threads, cap = self._slots(), self._limits.concurrency
        limit = cap if cap is not None and cap < threads else threads
        wanted = min(limit, budget + self._running()) - len(self._tasks)
        # The first tasks of a run bring their first trials with them. A later task (one that
        # replaces a task that ended early) asks when it starts: the worker it lands on may
        # be restarting, or may have lost the objective, and a trial must not fail for that.
        if wanted > 0:
            self._submit(wanted, with_trials=not self._submitted)
            self._submitted = True

    def _draw_ahead(self) -> None:
        """Draw the next trials while the current ones run, one per running trial, so that a
        worker that becomes free gets its parameters at once instead of waiting for the
        sampler (many trials at once tend to end in bursts: their successors are drawn while
        the kernel is idle)."""
        p, self._draw_at = self.progress, None
        ahead = len(self._ahead) + len(self._sent)
        if (
            ahead >= max(1, self._running())
            or self._creating  # records first
            or self._client is None
            or not self._drawing_ahead()
            or self._no_more_trials()
            or p.counted + self._running() + ahead >= p.target
        ):
            return
        # Not at once after a ticket: the sampler would hold the GIL while the client's event
        # loop sends it.
        self._draw_at = self._last_ticket + _SEND_TIME
        if time.monotonic() >= self._draw_at:
            self._ahead.append(self._mirror.draw(self._proposals()))
            self._draw_at = time.monotonic()  # the next one, if wanted, after the inbox

    def _send_ahead(self) -> None:
        """Send each task that runs a trial its next one (drawn ahead, or a retry), so that it
        starts it the moment the current one ends; once the run stops, take back those not
        started yet."""
        if self._stop_reason is not None:
            for key, sent in self._sent.items():
                task = self._tasks.get(key)
                if not sent.revoked and task is not None and task.attempt is not None:
                    sent.revoked = True
                    self._tell(task, {"revoke": sent.id})
            return
        if not ((self._ahead or self._retries) and self._drawing_ahead()):
            return
        if self._durations and statistics.median(self._durations) < _AHEAD_MIN:
            return
        p = self.progress
        running = [
            task
            for key, task in self._tasks.items()
            if key not in self._sent and task.started is not None and task.attempt is not None
        ]
        for task in sorted(running, key=lambda t: t.started or 0.0):  # the first to end first
            if p.counted + self._running() + len(self._sent) >= p.target:
                return
            if not self._ahead and not self._retries:
                return
            given = self._next_for(task, draw=False)
            if given is not None:
                self._sent[task.key] = given
                self._tell(task, {"ahead": True, "ticket": given.ticket, "id": given.id})

    def _tell(self, task: _Task, payload: dict[str, Any]) -> None:
        assert self._channel is not None and task.attempt is not None
        self._channel.tell(task.attempt, payload)  # no one waits for it: no pause to send it

    def _drawing_ahead(self) -> bool:
        return self._limits.draw_ahead and self._mirror.can_draw_ahead

    def _proposals(self) -> dict[str, BaseDistribution]:
        """The parameters a new trial will probably ask for (the objective's declared space and
        literal ``suggest_*`` calls, those of the finished trials, those the running trials
        asked for, as edited in the panel), sampled when it is drawn: a worker then asks the
        controller nothing. Not in a seeded run, which keeps Optuna's order of sampling."""
        if not self._drawing_ahead():
            return {}
        mirror = self._mirror
        return {**self._declared, **mirror.distributions, **mirror.asked, **self._overrides}

    def _slots(self) -> int:
        slots, checked = self._capacity
        now = time.monotonic()
        if now - checked > _CAPACITY_REFRESH:
            assert self._client is not None
            slots = sum(self._client.nthreads().values())
            self._capacity = (slots, now)
        return slots

    def _submit(self, count: int, with_trials: bool) -> None:
        """``count`` new tasks, in one graph; each with its first trial if ``with_trials``: no
        round trip when it starts."""
        assert self._client is not None and self._channel is not None
        tasks = [
            _Task(key=f"hpo-{self.progress.study}-{uuid.uuid4().hex[:12]}") for _ in range(count)
        ]
        tickets = [self._give_first(t) if with_trials else None for t in tasks]
        futures = self._client.map(
            run_slot,
            [self._objective_future] * count,
            [self._channel.topic] * count,
            [self._config.reply_timeout] * count,
            tickets,
            key=[t.key for t in tasks],
            pure=False,
            retries=0,
            resources=self._resources,
        )
        for task, future in zip(tasks, futures, strict=True):
            task.future = future
            self._tasks[task.key] = task
            future.add_done_callback(lambda f: self._inbox.put(("done", f)))

    def _start_trial(self, task: _Task, message: dict[str, Any]) -> None:
        """A task asks for a trial (it started, or ended its last one): give it one (the one
        sent ahead, if it asked before that arrived), or tell it there is none."""
        sent = self._sent.pop(task.key, None)
        if sent is not None and (sent.revoked or self._stop_reason is not None):
            self._discard(sent)
            sent = None
        p = self.progress
        if sent is None and (
            self._no_more_trials() or p.counted + self._running() + len(self._sent) >= p.target
        ):
            self._reply(message, {"none": True})
            return
        sent = sent or self._next_for(task, draw=True)
        assert sent is not None
        self._begin(task, sent)
        successor = self._successor(task)
        self._reply(message, {"ticket": sent.ticket, "id": sent.id})
        if successor is not None:  # in the same event
            self._sent[task.key] = successor
            self._reply(message, {"ahead": True, "ticket": successor.ticket, "id": successor.id})

    def _successor(self, task: _Task) -> _Next | None:
        """The trial to send ahead with the one a task asked for: one drawn already or, when
        trials end before a successor sent later could arrive (see _AHEAD_MIN), a new one. Such
        a task then starts it the moment its trial ends and asks again only after that: two
        trials per round trip through the scheduler instead of one."""
        if self._stop_reason is not None or not self._drawing_ahead():
            return None
        p = self.progress
        if p.counted + self._running() + len(self._sent) >= p.target:
            return None
        short = bool(self._durations) and statistics.median(self._durations) < _AHEAD_MIN
        return self._next_for(task, draw=short)

    def _start_next(self, task: _Task, trial_id: int) -> None:
        """A task started the trial sent ahead to it (even one taken back too late: it runs
        then, and a graceful stop waits for it)."""
        sent = self._sent.pop(task.key, None)
        if sent is not None and sent.id == trial_id:
            self._begin(task, sent)

    def _next_for(self, task: _Task, *, draw: bool) -> _Next | None:
        """The next trial for ``task``: a pending retry, else one drawn ahead, else (``draw``)
        a new one."""
        retry = self._take_retry(task.worker)
        if retry is not None:
            self._mirror.enqueue(retry.params)
            drawn = self._mirror.draw(self._proposals())
        elif self._ahead or draw:
            drawn = self._drawn()
        else:
            return None
        return _Next(drawn, retry, pickle.dumps(self._ticket(drawn), protocol=5))

    def _drawn(self) -> DrawnTrial:
        """The oldest trial drawn ahead (with what was learnt since), else a new one."""
        if not self._ahead:
            return self._mirror.draw(self._proposals())
        drawn = self._ahead.pop(0)
        self._mirror.propose(drawn, self._proposals())
        return drawn

    def _discard(self, sent: _Next) -> None:
        """A trial never started: it stays out of the storage; its retry waits for another."""
        if sent.retry is not None:
            self._retries.insert(0, sent.retry)

    def _begin(self, task: _Task, sent: _Next) -> None:
        """``task`` has its trial (its ticket left): the storage creates the record, and the
        trial's clock (--trial-timeout) starts."""
        ran_on = {"worker": task.worker, "gpu": task.gpu}
        attrs = {TRIAL_KEY: {**self._trial_attrs[TRIAL_KEY], **ran_on}}
        task.retry = sent.retry
        if sent.retry is not None:
            attrs[TRIAL_KEY].update(retry_of=sent.retry.origin, retry=sent.retry.attempt)
        self._create(task, sent.drawn, attrs)
        self._last_ticket = task.started = time.monotonic()
        self._update(running=self._started_trials())

    def _give_first(self, task: _Task) -> bytes:
        """The ticket of the trial a new task brings with it (where it runs is not known yet:
        see _started)."""
        drawn = self._drawn()
        self._create(task, drawn, self._trial_attrs)
        return pickle.dumps(self._ticket(drawn), protocol=5)

    def _create(self, task: _Task, drawn: DrawnTrial, attrs: dict[str, Any]) -> None:
        """Have the storage create the record of ``task``'s trial."""
        # A trial drawn ahead (while others ran) goes out at once, without waiting for the
        # sampler or the storage: the writer thread creates its record meanwhile (before the
        # writes already queued), and the task's next message waits for it (_process).
        created = task.created = self._mirror.create(drawn, attrs)
        key = task.key
        self._busy.add(key)
        self._creating.add(key)
        created.add_done_callback(lambda f: self._inbox.put(("created", key, f)))
        self._update(sampler=self._sampler_text())

    def _started(self, task: _Task, message: dict[str, Any]) -> None:
        """A task started on a worker, with or without its first trial."""
        if task.worker is not None and not _idle(task):  # dask ran it again: its worker left
            reason = "its worker left during the trial (retired or lost)"
            self._fail(task.key, reason, keep=True)
        if task.key in self._sent:  # sent to the execution that left
            self._discard(self._sent.pop(task.key))
        task.worker, task.gpu, task.pid = message["worker"], message["gpu"], message["pid"]
        task.attempt = message["attempt"]
        if "reply_to" in message:
            self._start_trial(task, message)
        elif _idle(task):  # it has run a trial already (above): nothing for it to do now
            pass
        else:  # its first trial came with it: now the kernel knows where the trial runs
            self._last_ticket = task.started = time.monotonic()
            self._update(running=self._started_trials())
            self._settle(task)
            assert task.trial is not None
            ran_on = {"worker": task.worker, "gpu": task.gpu}
            self._mirror.annotate(
                task.trial, {TRIAL_KEY: {**self._trial_attrs[TRIAL_KEY], **ran_on}}
            )

    def _ticket(self, drawn: DrawnTrial) -> TrialTicket:
        trial, fixed = drawn.trial, drawn.fixed_params
        return TrialTicket(
            number=None,  # the storage's number, which the worker asks for if it needs it
            n_objectives=len(self.progress.directions),
            datetime_start=trial.datetime_start,
            fixed_params=fixed,
            relative_params={k: v for k, v in trial.relative_params.items() if k not in fixed},
            relative_space=dict(trial.relative_search_space or {}),
            overrides=self._overrides,
            proposed=drawn.proposed,
            prunes=not isinstance(self._mirror.study.pruner, optuna.pruners.NopPruner),
        )

    def _on_created(self, key: str, created: concurrent.futures.Future[MirroredTrial]) -> None:
        task = self._tasks.get(key)
        if task is None or created.exception() is not None:
            return  # the task is gone (see _drop), or the storage failed (tick raises)
        if task.created is created:  # else its trial ended meanwhile (see _settle)
            self._settle(task)
        early, task.early = task.early, []
        for message in early:  # in order; one that starts another trial may wait again
            self._on_message(message)

    def _settle(self, task: _Task) -> None:
        """Wait for the trial a task is being given, if any (to end it, or to hand it out)."""
        if task.created is not None:
            created, task.created = task.created, None
            self._creating.discard(task.key)
            task.trial = created.result()

    def _take_retry(self, worker: str | None) -> _Retry | None:
        """A pending retry for this worker: one that failed elsewhere, when there is a choice."""
        if not self._retries:
            return None
        several = self._client is not None and len(self._client.nthreads()) > 1
        for i, retry in enumerate(self._retries):
            if not several or retry.avoid != worker:
                return self._retries.pop(i)
        return None

    def _sampler_text(self) -> str:
        sampler = self._mirror.study.sampler
        choice = getattr(sampler, "choice", None)
        if choice is not None:
            return f"auto: {choice} ({getattr(sampler, 'reason', '')})"
        return type(sampler).__name__

    # -- messages from tasks ------------------------------------------------------------------
    def _on_message(self, message: dict[str, Any]) -> None:
        task = self._tasks.get(message["key"])
        if task is not None and (task.early or _creating(task)):
            task.early.append(message)  # after its record exists, and after those before it
            return
        if task is None:
            if message["op"] == "finish":  # a cancelled trial left its worker by itself
                self._doomed.pop(message["attempt"], None)
            if "reply_to" in message:  # a task this run gave up: tell it to stop
                self._reply(message, {"cancel": "the run no longer wants this trial"})
            return
        attempt, seq = message["attempt"], message["seq"]
        expected = task.next_seq.get(attempt, 1)
        if seq < expected:
            return  # a duplicate (the finish message arrives twice)
        if seq > expected:
            task.parked.setdefault(attempt, {})[seq] = message
            if message["op"] == "finish" and task.waiting_since is None:
                task.waiting_since = time.monotonic()
            return
        self._process(task, message)
        parked = task.parked.get(attempt, {})
        while message["key"] in self._tasks and task.next_seq[attempt] in parked:
            self._process(task, parked.pop(task.next_seq[attempt]))

    def _process(self, task: _Task, message: dict[str, Any]) -> None:
        task.next_seq[message["attempt"]] = message["seq"] + 1
        op = message["op"]
        if op == "start":
            self._started(task, message)
            return
        self._settle(task)  # its record exists before anything is written to it
        t, mirror = task.trial, self._mirror
        if t is None:  # an idle task: its trial ended here (or it had none)
            if op == "finish" and "reply_to" not in message:
                self._drop(message["key"])
            elif op == "finish":
                self._reply(message, {"none": True})
            elif "reply_to" in message:  # a trial this run gave up (see _started)
                self._reply(message, {"cancel": "the run no longer wants this trial"})
            return
        try:
            for name, dist_json in message.get("params", ()):
                mirror.suggest(t, name, json_to_distribution(dist_json))
            for step, value in message.get("reports", ()):  # the worker dropped repeated steps
                mirror.report(t, value, step)
            for kind, key, value in message.get("attrs", ()):
                if kind == "user":
                    mirror.set_user_attr(t, key, value)
                else:
                    mirror.set_constraint(t, key, value)
            if op == "suggest":
                distribution = json_to_distribution(message["dist"])
                value = mirror.suggest(t, message["name"], distribution)
                self._reply(message, {"value": distribution.to_internal_repr(value)})
            elif op == "number":
                self._reply(message, {"number": t.number})
            elif op == "should_prune":
                self._reply(message, {"prune": mirror.should_prune(t)})
            elif op == "finish":
                self._finish(message["key"], message)
        except sqlalchemy.exc.SQLAlchemyError:
            raise
        except Exception as e:  # a bad request from the objective fails its trial, not the run
            if op == "finish" and message["key"] in self._tasks and task.trial is not None:
                reason = f"could not record the result: {_one_line(e)}"
                self._fail(message["key"], reason, keep="next" in message)
            if "reply_to" in message:
                self._reply(message, {"error": _one_line(e)})
                return
        if op != "finish" or message["key"] not in self._tasks:
            return
        if "next" in message:
            self._start_next(task, message["next"])  # the task started the trial sent ahead
        elif "reply_to" in message:
            self._start_trial(task, message)  # the task asks for its next trial

    def _reply(self, message: dict[str, Any], payload: dict[str, Any]) -> None:
        assert self._channel is not None
        self._channel.reply(message, payload)

    def _on_future_done(self, future: Future) -> None:
        key = str(future.key)
        task = self._tasks.get(key)
        if task is None or task.future is not future:
            return
        if future.status == "finished":
            self._on_message(future.result())
        elif _idle(task):
            self._drop(key)
        elif future.status == "error":
            error = future.exception()
            if isinstance(error, KilledWorker):
                self._fail(
                    key, "its worker process died during the trial (killed, or out of memory)"
                )
            else:
                self._fail(key, f"worker failed: {_one_line(error)}")
        else:
            self._fail(key, "cancelled by the dask scheduler")

    # -- finishing trials ---------------------------------------------------------------------
    def _finish(self, key: str, message: dict[str, Any]) -> None:
        # keep: the task wants another trial, or has started the one sent ahead
        state, keep = message["state"], "reply_to" in message or "next" in message
        if state == "complete":
            self._record(key, TrialState.COMPLETE, values=message["values"], keep=keep)
        elif state == "pruned":
            self._record(key, TrialState.PRUNED, keep=keep)
        else:
            reason = message.get("reason") or "the trial failed"
            self._fail(key, reason, message.get("traceback", ""), keep=keep)

    def _fail(
        self,
        key: str,
        reason: str,
        traceback: str = "",
        cancelled: bool = False,
        keep: bool = False,
    ) -> None:
        attrs = {FAIL_REASON_KEY: reason}
        if traceback:
            attrs[TRACEBACK_KEY] = traceback
        self._record(key, TrialState.FAIL, attrs=attrs, cancelled=cancelled, keep=keep)

    def _record(
        self,
        key: str,
        state: TrialState,
        values: list[float] | None = None,
        attrs: dict[str, str] | None = None,
        cancelled: bool = False,
        keep: bool = False,
    ) -> None:
        """Store the trial's end; its task waits for its next trial (``keep``) or is
        forgotten."""
        task = self._tasks[key]
        self._settle(task)
        t = task.trial
        assert t is not None
        frozen = self._mirror.finish(t, state, values, attrs)
        if task.started is not None:
            self._durations.append(time.monotonic() - task.started)
        retry, task.trial, task.started, task.retry = task.retry, None, None, None
        task.waiting_since = None
        self._busy.discard(key)
        if not keep:
            self._drop(key)
        reason = (attrs or {}).get(FAIL_REASON_KEY, "")
        row = trial_row(frozen, t.number)
        self.rows.append({**row, "w": task.worker, "g": task.gpu, "r": reason})
        if state == TrialState.PRUNED:
            pruner = self._mirror.study.pruner
            self._event(explain_prune(pruner, self._mirror.study, frozen, t.number))
        elif state == TrialState.FAIL and not cancelled:
            self._event(f"trial {t.number} failed: {reason}")
        if state == TrialState.FAIL and not cancelled:
            self._schedule_retry(retry, task.worker, t)
        p = self.progress
        changes: dict[str, Any] = {"running": self._started_trials()}
        self._since_improvement += 1
        if state == TrialState.COMPLETE:
            changes["complete"] = p.complete + 1
            if values is not None and len(values) == 1 and self._is_better(values[0]):
                if self._improves(values[0]):
                    self._since_improvement = 0
                changes.update(
                    best_value=values[0], best_params=t.trial.params, best_number=t.number
                )
        elif state == TrialState.PRUNED:
            changes["pruned"] = p.pruned + 1
        else:
            changes["failed"] = p.failed + 1
            changes["last_failure"] = f"trial {t.number}: {reason}"
        self._update(**changes)
        self._check_early_stop()

    def _schedule_retry(self, retry: _Retry | None, worker: str | None, t: MirroredTrial) -> None:
        done = retry.attempt if retry is not None else 0
        if done >= self._limits.retries or self._stop_reason is not None:
            return
        origin = retry.origin if retry is not None else t.number
        # What the trial ran with: a worker that died never sent the values it resolved
        # itself (enqueued and relative ones), but the controller knows them.
        params = {**t.trial.relative_params, **t.fixed_params, **t.trial.params}
        self._retries.append(_Retry(params, origin, done + 1, worker))
        self._event(f"trial {t.number} will run again (retry {done + 1} of {self._limits.retries})")
        self._update(retried=self.progress.retried + 1)

    def _event(self, text: str) -> None:
        """A notable moment of the run, for the widget and %hpo_status."""
        stamp = time.strftime("%H:%M:%S")
        p = self.progress
        self._update(events=(*p.events[-19:], f"{stamp} {text}"), events_total=p.events_total + 1)

    def _improves(self, value: float) -> bool:
        """Better than the best by at least ``min_delta`` (the first value always is)."""
        best = self.progress.best_value
        if best is None:
            return True
        delta = self._limits.min_delta
        return (
            value < best - delta
            if self.progress.directions[0] == "minimize"
            else (value > best + delta)
        )

    def _check_early_stop(self) -> None:
        if self._stop_reason is not None:
            return
        patience = self._limits.patience
        if patience is not None and self._since_improvement >= patience:
            best = self.progress.best_value
            self._on_stop(
                graceful=True,
                reason=f"converged: no improvement of at least {self._limits.min_delta:g} in "
                f"{patience} finished trials (best {best:.6g}, trial {self.progress.best_number})",
                end=RunState.CONVERGED,
            )
        elif self._mirror.sampler_done:
            self._on_stop(
                graceful=True,
                reason="the sampler has tried every point of its grid",
                end=RunState.COMPLETED,
            )

    def _drop(self, key: str) -> None:
        task = self._tasks.pop(key)
        self._busy.discard(key)
        self._creating.discard(key)
        if key in self._sent:
            self._discard(self._sent.pop(key))
        if task.future is not None:
            task.future.release()
        for message in task.early:  # as for any task gone: a waiting request hears so
            self._on_message(message)

    def _is_better(self, value: float) -> bool:
        best = self.progress.best_value
        if best is None:
            return True
        return value > best if self.progress.directions[0] == "maximize" else value < best

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

    # -- stopping -----------------------------------------------------------------------------
    def _on_stop(self, *, graceful: bool, reason: str, end: RunState = RunState.STOPPED) -> None:
        if self._stop_reason is None:
            self._stop_reason = reason
            self._end_state = end
            self._update(reason=reason)
            self._event(f"stopping: {reason}")
        self._cancel(
            idle_only=graceful, reason=f"cancelled: {reason}", grace=self._config.kill_grace
        )
        if self._tasks and self.progress.state == RunState.RUNNING:
            self._set_state(RunState.STOPPING)

    def _cancel(
        self, *, idle_only: bool, reason: str, keys: list[str] | None = None, grace: float = 0.0
    ) -> None:
        """Cancel queued tasks (no trial yet) and, unless ``idle_only``, running trials: each is
        FAIL with ``reason`` at once, and its worker process is restarted if the trial has not
        stopped by itself within ``grace`` seconds (a cancelled dask task keeps running)."""
        doomed = [
            (key, task)
            for key, task in self._tasks.items()
            if (keys is None or key in keys) and (_idle(task) or not idle_only)
        ]
        if doomed and self._client is not None:
            self._client.cancel([task.future for _, task in doomed if task.future is not None])
        for key, task in doomed:
            if _idle(task):
                self._drop(key)
                continue
            if self._channel is not None:
                self._channel.cancel(list(task.next_seq), reason)
            if task.worker is not None:
                for attempt in task.next_seq:
                    self._doomed[attempt] = (time.monotonic() + grace, task)
            self._fail(key, reason, cancelled=True)

    def _reap(self) -> None:
        """Restart the workers of cancelled trials that are still running past their grace."""
        now = time.monotonic()
        for attempt, (deadline, task) in list(self._doomed.items()):
            if now >= deadline:
                del self._doomed[attempt]
                self._restart(task)

    def _restart(self, task: _Task) -> None:
        """End a worker's process (its nanny starts a fresh one), without blocking the loop; on
        a GPU, check that the process's memory came back, else take that GPU out of rotation."""
        client, worker = self._client, task.worker
        if client is None or worker is None:
            return
        name = (client.scheduler_info().get("workers", {}).get(worker) or {}).get("name", worker)
        self._event(f"restarting worker {name} to end a trial that would not stop")

        def restart() -> None:
            try:
                status = client.restart_workers([worker], timeout=60, raise_for_error=False)
                if status.get(worker) not in ("OK", None):
                    self.log.append(f"warning: worker {worker} restart: {status.get(worker)}")
            except Exception as e:  # e.g. a worker without a nanny cannot be restarted
                self.log.append(f"warning: could not restart worker {worker}: {_one_line(e)}")
            gpu, pid = task.gpu, task.pid
            # NVML here sees this machine's GPUs only: check the workers that run here.
            local = urllib.parse.urlparse(worker).hostname in ("127.0.0.1", "localhost")
            leaked = False
            if local and gpu is not None and pid is not None:
                try:
                    leaked = not memory_released(gpu, pid)
                except Exception as e:
                    self.log.append(f"warning: could not check GPU {gpu}: {_one_line(e)}")
            if leaked:
                self._inbox.put(("retire", name, gpu))

        threading.Thread(target=restart, name="hpo_nb-restart", daemon=True).start()

    def _retire(self, name: str, gpu: str) -> None:
        """A GPU whose memory did not come back gets no more trials."""
        self._event(f"GPU {gpu} taken out of rotation: the killed trial's memory did not come back")
        if self._client is not None:
            with contextlib.suppress(Exception):
                self._client.retire_workers(names=[name], close_workers=True)

    def _drain_doomed(self) -> None:
        """Before the run ends: let cancelled trials stop by themselves, else end them."""
        while self._doomed:
            wait = min(deadline for deadline, _ in self._doomed.values()) - time.monotonic()
            if wait <= 0:
                self._reap()
                break
            self._step(min(wait, 0.2))

    def _end(self, state: RunState, reason: str = "") -> None:
        """Leave no trial RUNNING, release dask resources and publish the final state."""
        try:
            if self._tasks:
                self._cancel(
                    idle_only=False,
                    reason=f"cancelled: {reason or 'run ended'}",
                    grace=self._config.kill_grace,
                )
            self._drain_doomed()
            self._mirror.flush()  # every write has reached the storage
        except Exception as e:  # the storage failed; trials left RUNNING expire as stale
            state, reason = RunState.FAILED, reason or _one_line(e)
        finally:
            if self._channel is not None:
                self._channel.close()
            if self._objective_future is not None:
                with contextlib.suppress(Exception):
                    self._objective_future.release()
        if state == RunState.FAILED:
            self._update(reason=reason)
        elif self.progress.state == RunState.STARTING:
            self._set_state(RunState.RUNNING)
        self._set_state(state, ended_at=time.time(), note="")
        with contextlib.suppress(Exception):  # a failed storage cannot take the record
            self._write_record()
            self._mirror.close()
        self._publish(force=True)

    # -- bookkeeping --------------------------------------------------------------------------
    def _housekeeping(self) -> None:
        self._mirror.tick()
        now = time.monotonic()
        if self._hard_deadline is not None and now >= self._hard_deadline:
            self._hard_deadline = None
            self._on_stop(graceful=False, reason=f"max time of {self._limits.max_time:g} s reached")
        if self._limits.trial_timeout is not None:
            self._enforce_trial_timeout(now)
        if self._doomed:
            self._reap()
        if self._client is not None and now - self._last_monitor > 1.0:
            self._monitor(now)
            self._check_objective()
        if self._client is not None and time.time() - self._last_stop_check > 1.0:
            self._check_stop_request()
        if self._client is not None and now - self._last_record > self._config.record_interval:
            self._write_record()
        for key, task in list(self._tasks.items()):
            if task.waiting_since is not None and now - task.waiting_since > _FINISH_GRACE:
                for parked in task.parked.values():  # give up on lost messages
                    for seq in sorted(parked):
                        if key in self._tasks:
                            self._process(task, parked.pop(seq))
        if now - self._last_heartbeat > self._config.heartbeat_interval / 2:
            for task in self._tasks.values():
                if task.trial is not None:
                    self._mirror.heartbeat(task.trial)
            self._last_heartbeat = now
        if self._dirty:
            self._publish()

    def _check_objective(self) -> None:
        """Workers that were restarted or lost may take the last copy of the objective with
        them; then send it again, and replace the queued tasks that waited for the old one."""
        future = self._objective_future
        if future is None or future.status in ("finished", "pending"):
            return
        assert self._client is not None
        self._event("the objective's data was lost with a worker: sending it again")
        self._objective_future = self._client.scatter(self._objective, broadcast=True, hash=False)
        idle = [key for key, task in self._tasks.items() if _idle(task)]
        self._cancel(idle_only=True, reason="", keys=idle)
        future.release()

    def _enforce_trial_timeout(self, now: float) -> None:
        limit = self._limits.trial_timeout
        assert limit is not None
        late = [
            key
            for key, task in self._tasks.items()
            if task.started is not None and now - task.started > limit
        ]
        for key in late:
            number = self._tasks[key].trial.number  # type: ignore[union-attr]
            self._event(f"trial {number} timed out after {limit:g} s")
            self._cancel(
                idle_only=False,
                reason=f"timeout after {limit:g} s",
                keys=[key],
                grace=self._config.timeout_grace,
            )

    def _monitor(self, now: float) -> None:
        """Each worker's CPU, memory and GPU figures (from dask's heartbeats), and its trial."""
        self._last_monitor = now
        assert self._client is not None
        trials = {
            task.worker: task.trial.number
            for task in self._tasks.values()
            if task.worker is not None and task.trial is not None
        }
        workers = self._client.scheduler_info().get("workers", {})
        self._update(
            resources=tuple(
                worker_stats(address, info, trials.get(address))
                for address, info in sorted(workers.items())
            )
        )

    def _check_stop_request(self) -> None:
        """Obey a stop that ``%hpo_stop`` wrote into the storage (from any kernel)."""
        request = self._mirror.read_study_attrs().get(STOP_KEY)
        checked, self._last_stop_check = self._last_stop_check, time.time()
        if isinstance(request, dict) and float(request.get("time", 0)) >= checked - 1.0:
            now = bool(request.get("now"))
            self._on_stop(graceful=not now, reason=f"stopped by %hpo_stop from {request['by']}")

    def _write_record(self) -> None:
        """The study's state in the storage, for %hpo_list and other kernels."""
        self._last_record = time.monotonic()
        p = self.progress
        self._mirror.set_study_attr(
            RECORD_KEY,
            {
                "state": p.state.value,
                "reason": p.reason,
                "owner": session().to_json(),
                "heartbeat": time.time(),
                "updated": now_iso(),
                "counts": {
                    "complete": p.complete,
                    "pruned": p.pruned,
                    "failed": p.failed,
                    "running": p.running,
                },
                "target": p.target,
                "best_value": p.best_value,
                "best_number": p.best_number,
                "sampler": p.sampler,
            },
        )

    def _wait_time(self) -> float:
        wait = 1.0
        if self._dirty:
            wait = max(0.0, self._config.widget_interval - (time.monotonic() - self._last_publish))
        for deadline in (self._deadline, self._hard_deadline, self._draw_at):
            if deadline is not None:
                wait = min(wait, max(0.0, deadline - time.monotonic()))
        return wait

    def _set_state(self, state: RunState, **changes: Any) -> None:
        check_transition(self.progress.state, state)
        self._update(state=state, **changes)

    def _update(self, **changes: Any) -> None:
        self.progress = dataclasses.replace(self.progress, **changes)
        self._dirty = True

    def _publish(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_publish < self._config.widget_interval:
            return
        self._last_publish = now
        self._dirty = False
        progress = self.progress
        for observer in self._observers:
            with contextlib.suppress(Exception):  # a broken view must not stop the study
                observer(progress)


def _creating(task: _Task) -> bool:
    """Whether the storage is still creating the record of the task's trial."""
    return task.created is not None and not task.created.done()


def _idle(task: _Task) -> bool:
    """A task that has no trial (queued, or told there is none), nor one being created."""
    return task.trial is None and task.created is None


def _one_line(error: BaseException | None) -> str:
    if error is None:
        return "unknown error"
    if isinstance(error, HpoError):
        return str(error)
    text = str(error).strip()
    first = text.splitlines()[0] if text else ""
    return f"{type(error).__name__}: {first}" if first else type(error).__name__
