"""The trial loop: keeps dask workers supplied with trial tasks and records what they send.

The controller runs in one thread of the kernel process and is the only writer to the study's
storage while a run lasts. Workers never open the storage; they talk to the controller through
:mod:`hpo_nb.execution.channel`, in :mod:`hpo_nb.execution.protocol`'s messages. Each worker
thread runs one dask task that takes trial after trial; while a trial runs, the controller sends
its task the next one, drawn ahead, so a worker that becomes free starts it at once and its
result travels with the note that it did.

The loop owns the run's life (start, stop, end); its parts own their state:
:class:`~hpo_nb.engine.tasks.Tasks` (the dask tasks and their trials),
:class:`~hpo_nb.engine.supply.Supply` (the next trials: drawn ahead, sent ahead, retries),
:class:`~hpo_nb.engine.inbox.Inbox` (the order of the tasks' messages),
:class:`~hpo_nb.engine.desk.Desk` (a trial's requests to the sampler and the pruner),
:class:`~hpo_nb.engine.reaper.Reaper` (trials that will not stop),
:class:`~hpo_nb.engine.bookkeeping.Bookkeeping` (progress, rows, the study's record) and
:class:`~hpo_nb.engine.link.Link` (the dask client, the channel, the objective's copy).
"""

from __future__ import annotations

import collections
import concurrent.futures
import queue
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import optuna
import sqlalchemy.exc
from distributed import Client, Future
from distributed.scheduler import KilledWorker
from optuna.distributions import BaseDistribution
from optuna.trial import TrialState

from hpo_nb._errors import one_line
from hpo_nb._settings import Settings
from hpo_nb.engine.bookkeeping import Bookkeeping
from hpo_nb.engine.desk import Desk
from hpo_nb.engine.inbox import Inbox
from hpo_nb.engine.link import Link
from hpo_nb.engine.mirror import DrawnTrial, Mirror, MirroredTrial
from hpo_nb.engine.options import RunOptions
from hpo_nb.engine.progress import Progress, RunState
from hpo_nb.engine.quiet import keep_thread_quiet
from hpo_nb.engine.reaper import Reaper
from hpo_nb.engine.records import FAIL_REASON_KEY, STOP_KEY, TRACEBACK_KEY, TRIAL_KEY, session
from hpo_nb.engine.supply import Next, Supply
from hpo_nb.engine.tasks import Task, Tasks
from hpo_nb.engine.writer import unreachable
from hpo_nb.execution.protocol import (
    Answer,
    Cancel,
    Envelope,
    Error,
    Finish,
    GiveTrial,
    NoTrial,
    Revoke,
    Start,
    TrialAhead,
    TrialMessage,
    decode,
)
from hpo_nb.execution.worker import PickledObjective

__all__ = ["FAIL_REASON_KEY", "TRACEBACK_KEY", "Controller"]

_GONE = Cancel("the run no longer wants this trial")  # to a task the run has given up


class Controller:
    """Runs one study with ``options`` until its target, a time limit or a stop; see
    :class:`hpo_nb.Run`."""

    def __init__(
        self,
        *,
        options: RunOptions,
        study: optuna.Study,
        mirror: Mirror,
        objective: PickledObjective,
        connect: Callable[[RunOptions], Client],
        config: Settings,
        trial_attrs: dict[str, Any] | None = None,
    ) -> None:
        assert options.n_trials is not None
        self.options = options
        self.study = study  # in the storage (the mirror's is in memory)
        self._mirror = mirror
        self._connect = connect
        self._config = config
        self._trial_attrs = {"session": session().session, **(trial_attrs or {})}
        self._queue: queue.SimpleQueue[tuple[Callable[..., None], tuple[Any, ...]]] = (
            queue.SimpleQueue()
        )
        self.books = Bookkeeping(mirror, config, options.min_delta, options.n_trials)
        self.tasks = Tasks()
        self.link = Link(objective, config.reply_timeout)
        loaded = objective.load()  # in the kernel: the objective itself, not a copy
        declared = {
            **loaded.literal_distributions(),
            **(loaded.space.distributions() if loaded.space is not None else {}),
        }
        overrides = options.narrow.distributions() if options.narrow is not None else {}
        self.supply = Supply(
            mirror,
            lambda: self.books.progress,
            self.tasks.running,
            self.link.workers,
            declared=declared,
            overrides=overrides,
            draw_ahead=options.seed is None,
            retries=options.retries,
        )
        self.inbox = Inbox(self.tasks, self._handle, self._unknown)
        self.reaper = Reaper(self.books.event, self.books.log.append, self._post, self.link)
        self.desk = Desk(mirror, self._reply)
        self._submitted = False  # whether the run has submitted tasks yet
        self._fail_streak: tuple[str, int] = ("", 0)  # the last failures' reason, in a row
        self._stop_reason: str | None = None
        self._end_state = RunState.STOPPED
        self._deadline: float | None = None
        self._hard_deadline: float | None = None
        self._last_stop_check = 0.0
        self.done = threading.Event()

    # -- commands and views (any thread) ------------------------------------------------------
    def stop(self, *, graceful: bool = False, reason: str = "stopped by user") -> None:
        """Ask the loop to stop; without ``graceful`` running trials are cancelled (FAIL)."""
        self._post(self._on_stop, graceful, reason)

    def narrow(self, overrides: dict[str, BaseDistribution]) -> None:
        """Later trials draw these parameters from these distributions (the code's own
        ``suggest_*`` ranges give way); trials already running keep theirs."""
        self._post(self._narrow, dict(overrides))

    @property
    def progress(self) -> Progress:
        return self.books.progress

    @property
    def rows(self) -> list[dict[str, Any]]:
        return self.books.rows

    @property
    def log(self) -> collections.deque[str]:
        return self.books.log

    def subscribe(self, observer: Callable[[Progress], None]) -> None:
        self.books.subscribe(observer)

    def history(self) -> list[dict[str, Any]]:
        return self.books.history()

    def study_attrs(self) -> dict[str, Any]:
        """The study's system attributes, read through the run's own storage."""
        return self._mirror.read_study_attrs()

    def distributions(self) -> dict[str, BaseDistribution]:
        """Each parameter of the study's finished trials, with its latest distribution."""
        return dict(self._mirror.distributions)

    def _post(self, fn: Callable[..., None], *args: Any) -> None:
        """Run ``fn(*args)`` on the loop's thread."""
        self._queue.put((fn, args))

    # -- the loop (its own thread) ------------------------------------------------------------
    def prepare(self) -> None:
        """Count the study's trials so far (in the caller's thread, before the loop starts)."""
        self.books.count_study()

    def run(self) -> None:
        """The loop: keep the workers supplied until no trial may start and none runs."""
        with keep_thread_quiet(self.books.log):
            try:
                self._start()
                self._step(0.0)  # a stop sent while starting is seen before any submission
                while True:
                    self._fill()
                    self.supply.draw_ahead(not self._no_more_trials(), self.tasks.any_creating())
                    self._send_ahead()
                    if not self.tasks and self._no_more_trials():
                        break
                    self._step(self._wait_time())
                if self._stop_reason is None:
                    self._end(RunState.COMPLETED)
                else:
                    self._end(self._end_state, self._stop_reason)
            except BaseException as e:  # the run must end in a stated state
                self._end(RunState.FAILED, one_line(e))
            finally:
                self.done.set()

    def _start(self) -> None:
        now = time.monotonic()
        if self.options.timeout is not None:
            self._deadline = now + self.options.timeout
        if self.options.max_time is not None:
            self._hard_deadline = now + self.options.max_time
        books = self.books
        if books.progress.finished >= books.progress.target:
            return
        books.update(note="connecting to the dask cluster")
        books.publish(force=True)
        self.link.open(self._connect(self.options), self._delivered)
        self._last_stop_check = time.time()  # stop requests older than this run do not count
        books.set_state(RunState.RUNNING, note="")
        books.write_record()
        books.publish(force=True)

    def _delivered(self, envelope: Envelope) -> None:
        """A task's message arrived (on the client's event loop)."""
        self._post(self.inbox.deliver, envelope)

    def _step(self, wait: float) -> None:
        """Run what was posted (waiting up to ``wait`` seconds for the first), then the chores."""
        try:
            item = self._queue.get(timeout=wait) if wait > 0 else self._queue.get_nowait()
        except queue.Empty:
            item = None
        while item is not None:
            fn, args = item
            fn(*args)
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                item = None
        self._housekeeping()

    def _wait_time(self) -> float:
        wait = self.books.publish_wait()
        for deadline in (self._deadline, self._hard_deadline, self.supply.draw_at):
            if deadline is not None:
                wait = min(wait, max(0.0, deadline - time.monotonic()))
        return wait

    def _no_more_trials(self) -> bool:
        """True when no new trial may start; records why."""
        p = self.books.progress
        if self._stop_reason is not None:
            return True
        if p.counted >= p.target:
            if not p.reason:
                self.books.update(reason=f"reached {p.target} finished trials")
            return True
        if self._deadline is not None and time.monotonic() >= self._deadline:
            self._stop_reason = f"time limit of {self.options.timeout:g} s reached"
            self.books.update(reason=self._stop_reason)
            return True
        return False

    # -- supplying tasks ----------------------------------------------------------------------
    def _fill(self) -> None:
        """Keep one task per worker thread, within the budget and the concurrency cap.

        Each task runs trials until none is left for it (see ``run_slot``), so a worker that
        becomes free asks for its next trial without waiting for dask; under a concurrency cap
        only that many tasks exist, so no more trials can ever run at once.
        """
        if self.link.client is None or self._no_more_trials():
            return
        threads, cap = self.link.slots(), self.options.concurrency
        limit = cap if cap is not None and cap < threads else threads
        p = self.books.progress
        wanted = min(limit, p.target - p.counted) - len(self.tasks)
        # The first tasks of a run bring their first trials with them. A later task (one that
        # replaces a task that ended early) asks when it starts: the worker it lands on may
        # be restarting, or may have lost the objective, and a trial must not fail for that.
        if wanted > 0:
            self._submit(wanted, with_trials=not self._submitted)
            self._submitted = True

    def _submit(self, count: int, with_trials: bool) -> None:
        """``count`` new tasks, in one graph; each with its first trial if ``with_trials``: no
        round trip when it starts."""
        name = self.books.progress.study
        tasks = [Task(key=f"hpo-{name}-{uuid.uuid4().hex[:12]}") for _ in range(count)]
        tickets = [self._give_first(t) if with_trials else None for t in tasks]
        for task, future in zip(
            tasks, self.link.submit([t.key for t in tasks], tickets), strict=True
        ):
            task.future = future
            self.tasks.add(task)
            future.add_done_callback(lambda f: self._post(self._on_future_done, f))

    def _send_ahead(self) -> None:
        """Send each task that runs a trial its next one (drawn ahead, or a retry), so that it
        starts it the moment the current one ends; once the run stops, take back those not
        started yet."""
        if self._stop_reason is not None:
            for key, nxt in self.supply.revoke():
                task = self.tasks.get(key)
                if task is not None and task.attempt is not None:
                    self._tell(task, Revoke(nxt.id))
            return
        running = sorted(
            (t for t in self.tasks if t.started is not None and t.attempt is not None),
            key=lambda t: t.started or 0.0,
        )
        for key, nxt in self.supply.send_ahead((t.key, t.worker) for t in running):
            task = self.tasks.get(key)
            assert task is not None
            self._tell(task, TrialAhead(nxt.ticket, nxt.id))

    def _tell(self, task: Task, answer: TrialAhead | Revoke) -> None:
        assert task.attempt is not None
        self.link.tell(task.attempt, answer)

    def _reply(self, envelope: Envelope, answer: Answer) -> None:
        self.link.reply(envelope, answer)

    # -- giving trials ------------------------------------------------------------------------
    def _give_first(self, task: Task) -> bytes:
        """The ticket of the trial a new task brings with it (where it runs is not known yet:
        see _on_start)."""
        drawn = self.supply.drawn()
        self._create(task, drawn, self._trial_attrs)
        return self.supply.pack(drawn)

    def _start_trial(self, task: Task, request: Envelope) -> None:
        """A task asks for a trial (it started, or ended its last one): give it one (the one
        sent ahead, if it asked before that arrived), or tell it there is none."""
        sent = self.supply.take_sent(task.key)
        if sent is not None and (sent.revoked or self._stop_reason is not None):
            self.supply.discard(sent)
            sent = None
        if sent is None and (self._no_more_trials() or self.supply.room_left() <= 0):
            self._reply(request, NoTrial())
            return
        sent = sent or self.supply.next_for(task.worker, draw=True)
        assert sent is not None
        self._begin(task, sent)
        successor = None if self._stop_reason else self.supply.successor(task.worker)
        self._reply(request, GiveTrial(sent.ticket, sent.id))
        if successor is not None:  # in the same event
            self.supply.send(task.key, successor)
            self._reply(request, TrialAhead(successor.ticket, successor.id))

    def _start_next(self, task: Task, trial_id: int) -> None:
        """A task started the trial sent ahead to it (even one taken back too late: it runs
        then, and a graceful stop waits for it)."""
        sent = self.supply.take_sent(task.key)
        if sent is not None and sent.id == trial_id:
            self._begin(task, sent)

    def _begin(self, task: Task, sent: Next) -> None:
        """``task`` has its trial (its ticket left): the storage creates the record, and the
        trial's clock (--trial-timeout) starts."""
        attrs = {**self._trial_attrs, "worker": task.worker, "gpu": task.gpu}
        task.retry = sent.retry
        if sent.retry is not None:
            attrs.update(retry_of=sent.retry.origin, retry=sent.retry.attempt)
        self._create(task, sent.drawn, attrs)
        self._started(task)

    def _started(self, task: Task) -> None:
        task.started = time.monotonic()
        self.supply.started()
        self.books.update(running=self.tasks.started())

    def _create(self, task: Task, drawn: DrawnTrial, attrs: dict[str, Any]) -> None:
        """Have the storage create the record of ``task``'s trial. A trial drawn ahead goes out
        at once, without waiting for the sampler or the storage: the writer thread creates its
        record meanwhile, and the task's next messages wait for it (see Inbox)."""
        created = self._mirror.create(drawn, {TRIAL_KEY: attrs})
        self.tasks.give(task, created)
        key = task.key
        created.add_done_callback(lambda f: self._post(self._on_created, key, f))
        self.books.update(sampler=self._sampler_text())

    def _on_created(self, key: str, created: concurrent.futures.Future[MirroredTrial]) -> None:
        task = self.tasks.get(key)
        if task is None or created.exception() is not None:
            return  # the task is gone, or the storage failed (the mirror's tick raises)
        if task.created is created:  # else its trial ended meanwhile
            self.tasks.settle(task)
        self.inbox.created(key)

    def _sampler_text(self) -> str:
        sampler = self._mirror.study.sampler
        choice = getattr(sampler, "choice", None)
        if choice is not None:
            return f"auto: {choice} ({getattr(sampler, 'reason', '')})"
        return type(sampler).__name__

    # -- messages from tasks ------------------------------------------------------------------
    def _handle(self, task: Task, envelope: Envelope) -> None:
        """One message of ``task``, in order (see Inbox)."""
        body = envelope.body
        if isinstance(body, Start):
            self._on_start(task, envelope, body)
            return
        trial = self.tasks.settle(task)  # its record exists before anything is written to it
        if trial is None:  # an idle task: its trial ended here (or it had none)
            if isinstance(body, Finish) and not envelope.wants_answer:
                self._drop(task.key)
            elif isinstance(body, Finish):
                self._reply(envelope, NoTrial())
            elif envelope.wants_answer:  # a trial this run gave up (see _on_start)
                self._reply(envelope, _GONE)
            return
        assert isinstance(body, TrialMessage)
        try:
            self.desk.learn(trial, body)
            if isinstance(body, Finish):
                self._on_finish(task, envelope)
            else:
                self.desk.answer(trial, envelope)
        except sqlalchemy.exc.SQLAlchemyError:
            raise
        except Exception as e:  # a bad request from the objective fails its trial, not the run
            if isinstance(body, Finish) and task.key in self.tasks and task.trial is not None:
                reason = f"could not record the result: {one_line(e)}"
                self._fail(task, reason, keep=body.next is not None)
            if envelope.wants_answer:
                self._reply(envelope, Error(one_line(e)))
                return
        if not isinstance(body, Finish) or task.key not in self.tasks:
            return
        if body.next is not None:
            self._start_next(task, body.next)  # the task started the trial sent ahead
        elif envelope.wants_answer:
            self._start_trial(task, envelope)  # the task asks for its next trial

    def _on_finish(self, task: Task, envelope: Envelope) -> None:
        body = envelope.body
        assert isinstance(body, Finish)
        # keep: the task wants another trial, or has started the one sent ahead
        keep = envelope.wants_answer or body.next is not None
        if body.state == "complete":
            values = list(body.values or ())
            self._record(task, TrialState.COMPLETE, values=values, keep=keep)
        elif body.state == "pruned":
            self._record(task, TrialState.PRUNED, keep=keep)
        else:
            reason = body.reason or "the trial failed"
            self._fail(task, reason, body.traceback, keep=keep)

    def _on_start(self, task: Task, envelope: Envelope, body: Start) -> None:
        """A task started on a worker, with or without its first trial."""
        if task.worker is not None and not task.idle:  # dask ran it again: its worker left
            self._fail(task, "its worker left during the trial (retired or lost)", keep=True)
        self.supply.discard(self.supply.take_sent(task.key))  # sent to the execution that left
        task.worker, task.gpu, task.pid = body.worker, body.gpu, body.pid
        task.attempt = envelope.attempt
        if envelope.wants_answer:
            self._start_trial(task, envelope)
        elif not task.idle:  # its first trial came with it: now the kernel knows where it runs
            self._started(task)
            where = {TRIAL_KEY: {**self._trial_attrs, "worker": task.worker, "gpu": task.gpu}}
            created = task.created
            if created is not None:  # not waiting for a storage that may not answer
                created.add_done_callback(lambda f: self._post(self._annotate, f, where))
            elif task.trial is not None:
                self._mirror.annotate(task.trial, where)

    def _annotate(self, created: concurrent.futures.Future[MirroredTrial], attrs: dict) -> None:
        if created.exception() is None:
            self._mirror.annotate(created.result(), attrs)

    def _unknown(self, envelope: Envelope) -> None:
        """A message of a task this run no longer has."""
        if isinstance(envelope.body, Finish):  # a cancelled trial left its worker by itself
            self.reaper.ended(envelope.attempt)
        if envelope.wants_answer:  # tell it to stop
            self._reply(envelope, _GONE)

    def _on_future_done(self, future: Future) -> None:
        task = self.tasks.get(str(future.key))
        if task is None or task.future is not future:
            return
        if future.status == "finished":
            self.inbox.deliver(decode(future.result()))
        elif task.idle:
            self._drop(task.key)
        elif future.status == "error":
            error = future.exception()
            if isinstance(error, KilledWorker):
                reason = "its worker process died during the trial (killed, or out of memory)"
            else:
                reason = f"worker failed: {one_line(error)}"
            self._fail(task, reason)
        else:
            self._fail(task, "cancelled by the dask scheduler")

    # -- finishing trials ---------------------------------------------------------------------
    def _fail(
        self,
        task: Task,
        reason: str,
        traceback: str = "",
        cancelled: bool = False,
        keep: bool = False,
    ) -> None:
        attrs = {FAIL_REASON_KEY: reason}
        if traceback:
            attrs[TRACEBACK_KEY] = traceback
        self._record(task, TrialState.FAIL, attrs=attrs, cancelled=cancelled, keep=keep)

    def _record(
        self,
        task: Task,
        state: TrialState,
        values: list[float] | None = None,
        attrs: dict[str, str] | None = None,
        cancelled: bool = False,
        keep: bool = False,
    ) -> None:
        """Store the trial's end; its task waits for its next trial (``keep``) or is
        forgotten."""
        taken = self.tasks.take_back(task)
        if taken is None:  # its record was never created: the storage gave up
            self._drop(task.key)
            return
        trial, retry, started = taken
        self.supply.ended(started)
        self.inbox.caught_up(task.key)
        if not keep:
            self._drop(task.key)
        self.books.record(task, trial, state, values, attrs, cancelled, self.tasks.started())
        # A failure runs again, a timed-out trial's too; trials a stop cancels do not.
        if state == TrialState.FAIL and self._stop_reason is None:
            attempt = self.supply.retry(retry, task.worker, trial)
            if attempt is not None:
                self.books.event(
                    f"trial {trial.number} will run again (retry {attempt} of "
                    f"{self.options.retries})"
                )
                self.books.update(retried=self.books.progress.retried + 1)
        failed = state == TrialState.FAIL
        self._count_failures((attrs or {}).get(FAIL_REASON_KEY) if failed else None)
        self._check_early_stop()

    def _drop(self, key: str) -> None:
        task = self.tasks.remove(key)
        self.supply.discard(self.supply.take_sent(key))
        if task.future is not None:
            task.future.release()
        self.inbox.forget(key)

    def _count_failures(self, reason: str | None) -> None:
        """End the run once ``stop_after_failures`` trials in a row fail for the same reason
        (``reason`` None: a trial that did not fail)."""
        last, count = self._fail_streak
        count = count + 1 if reason is not None and reason == last else int(reason is not None)
        self._fail_streak = (reason or "", count)
        limit = self.options.stop_after_failures
        if limit and count >= limit and self._stop_reason is None:
            self._on_stop(
                True, f"{count} trials in a row failed with: {reason}", end=RunState.FAILED
            )

    def _check_early_stop(self) -> None:
        if self._stop_reason is not None:
            return
        patience = self.options.patience
        if patience is not None and self.books.since_improvement >= patience:
            p = self.books.progress
            self._on_stop(
                graceful=True,
                reason=f"converged: no improvement of at least {self.options.min_delta:g} in "
                f"{patience} finished trials (best {p.best_value:.6g}, trial {p.best_number})",
                end=RunState.CONVERGED,
            )
        elif self._mirror.sampler_done:
            self._on_stop(
                graceful=True,
                reason="the sampler has tried every point of its grid",
                end=RunState.COMPLETED,
            )

    # -- stopping -----------------------------------------------------------------------------
    def _narrow(self, overrides: dict[str, BaseDistribution]) -> None:
        self.supply.overrides = {**self.supply.overrides, **overrides}
        self.books.event("later trials use the edited search space: " + ", ".join(overrides))

    def _on_stop(self, graceful: bool, reason: str, end: RunState = RunState.STOPPED) -> None:
        if self._stop_reason is None:
            self._stop_reason = reason
            self._end_state = end
            self.books.update(reason=reason)
            self.books.event(f"stopping: {reason}")
        self._cancel(
            [t for t in self.tasks if t.idle or not graceful],
            reason=f"cancelled: {reason}",
            grace=self._config.kill_grace,
        )
        if self.tasks and self.books.progress.state == RunState.RUNNING:
            self.books.set_state(RunState.STOPPING)

    def _cancel(self, doomed: list[Task], *, reason: str, grace: float = 0.0) -> None:
        """Cancel tasks: a queued one (no trial yet) is dropped; a running trial is FAIL with
        ``reason`` at once, and its worker process is restarted if the trial has not stopped
        by itself within ``grace`` seconds (a cancelled dask task keeps running)."""
        self.link.cancel_tasks([task.future for task in doomed if task.future is not None])
        for task in doomed:
            if task.idle:
                self._drop(task.key)
                continue
            attempts = self.inbox.attempts(task.key)
            self.link.cancel_attempts(attempts, reason)
            self.reaper.doom(task, attempts, grace)
            self._fail(task, reason, cancelled=True)

    def _end(self, state: RunState, reason: str = "") -> None:
        """Leave no trial RUNNING, release dask resources and publish the final state."""
        books = self.books
        try:
            if self.tasks:
                self._cancel(
                    list(self.tasks),
                    reason=f"cancelled: {reason or 'run ended'}",
                    grace=self._config.kill_grace,
                )
            self._drain_reaper()
            self._mirror.flush()  # every write has reached the storage
        except Exception as e:  # the storage failed; trials left RUNNING expire as stale
            state, reason = RunState.FAILED, reason or one_line(e)
        finally:
            self.link.close()
        if state == RunState.FAILED:
            books.update(reason=reason)
        elif books.progress.state == RunState.STARTING:
            books.set_state(RunState.RUNNING)
        books.set_state(state, ended_at=time.time(), note="")
        try:
            books.write_record()
            self._mirror.close()
        except Exception as e:  # a failed storage cannot take the record
            books.log.append(f"warning: could not write the study's record: {one_line(e)}")
        if self._mirror.unwritten:
            books.event(
                f"{self._mirror.unwritten} writes wait in memory for the storage: they are "
                "written once it is back (keep this kernel running)"
            )
        books.publish(force=True)

    def _drain_reaper(self) -> None:
        """Before the run ends: let cancelled trials stop by themselves, else end them."""
        while self.reaper:
            deadline = self.reaper.next_deadline()
            wait = (deadline or 0.0) - time.monotonic()
            if wait <= 0:
                self.reaper.reap()
                break
            self._step(min(wait, 0.2))

    # -- chores -------------------------------------------------------------------------------
    def _housekeeping(self) -> None:
        for note in self._mirror.notes():
            self.books.event(note)
        self._mirror.tick()
        if self._hard_deadline is not None and time.monotonic() >= self._hard_deadline:
            self._hard_deadline = None
            self._on_stop(False, f"max time of {self.options.max_time:g} s reached")
        if self.options.trial_timeout is not None:
            self._enforce_trial_timeout(self.options.trial_timeout)
        self.reaper.reap()
        books, client = self.books, self.link.client
        if client is not None:
            if books.monitor(client, self.tasks):
                self._check_objective()
            if time.time() - self._last_stop_check > 1.0:
                self._check_stop_request()
            books.write_record(force=False)
        self.inbox.give_up_waiting()
        books.heartbeat(self.tasks)
        books.publish()

    def _enforce_trial_timeout(self, limit: float) -> None:
        for task in self.reaper.overdue(self.tasks, limit):
            assert task.trial is not None
            self.books.event(f"trial {task.trial.number} timed out after {limit:g} s")
            reason = f"timeout after {limit:g} s"
            self._cancel([task], reason=reason, grace=self._config.timeout_grace)

    def _check_objective(self) -> None:
        """Workers that were restarted or lost may take the last copy of the objective with
        them; then it is sent again, and the queued tasks that waited for the old one are
        replaced."""
        if self.link.objective_lost():
            self.books.event("the objective's data was lost with a worker: sending it again")
            self._cancel([t for t in self.tasks if t.idle], reason="")

    def _check_stop_request(self) -> None:
        """Obey a stop that ``%hpo_stop`` wrote into the storage (from any kernel)."""
        try:
            request = self._mirror.read_study_attrs().get(STOP_KEY)
        except Exception as e:  # the writer retries an unreachable storage; so does this
            if not unreachable(e):
                raise
            return
        checked, self._last_stop_check = self._last_stop_check, time.time()
        if isinstance(request, dict) and float(request.get("time", 0)) >= checked - 1.0:
            now = bool(request.get("now"))
            self._on_stop(not now, f"stopped by %hpo_stop from {request['by']}")
