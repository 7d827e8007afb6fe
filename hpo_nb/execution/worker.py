"""What runs on a dask worker: trials of a user's objective, one after another, talking to the
controller.

This module imports no IPython or widget code, and never opens the study's storage.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import datetime
import json
import math
import os
import pickle
import threading
import time
import traceback
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

import cloudpickle
import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalChoiceType,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
    check_distribution_compatibility,
    distribution_to_json,
)
from optuna.trial import BaseTrial

from hpo_nb import _optuna
from hpo_nb._errors import one_line
from hpo_nb.execution.channel import ReplyTimeout, TaskCancelled, WorkerChannel
from hpo_nb.execution.gpu import this_process_gpu
from hpo_nb.execution.protocol import (
    Answer,
    Cancel,
    Error,
    Finish,
    GiveTrial,
    Number,
    NumberAnswer,
    Prune,
    PruneAnswer,
    Report,
    Start,
    Suggest,
    TrialAhead,
    TrialMessage,
    ValueAnswer,
    encode,
)
from hpo_nb.search.objective import Objective

A = TypeVar("A", bound=Answer)

__all__ = ["PickledObjective", "TrialTicket", "WorkerTrial", "run_slot"]

_TRACEBACK_LIMIT = 8000
# A value reported, or an attribute set, less than this many seconds after the trial's last
# message is held back: it travels with the next message, or alone once it has waited this
# long. A hundred trials each reporting many times a second would otherwise flood the
# scheduler (and the kernel that hosts it) with tiny messages.
_HOLD = 1.0


class _Flusher:
    """One thread per worker process that sends what a trial held back, once it is due."""

    def __init__(self) -> None:
        self._wake = threading.Condition()
        self._due: dict[WorkerTrial, float] = {}
        self._thread: threading.Thread | None = None

    def schedule(self, trial: WorkerTrial, at: float) -> None:
        with self._wake:
            if trial not in self._due:
                self._due[trial] = at
                self._wake.notify()
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="hpo_nb-flush", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._due:
                    self._wake.wait()
                trial, at = min(self._due.items(), key=lambda item: item[1])
                wait = at - time.monotonic()
                if wait > 0:
                    self._wake.wait(wait)
                    continue
                del self._due[trial]
            trial.flush()


_FLUSHER = _Flusher()


class PickledObjective:
    """An objective pickled once in the kernel and unpickled once per worker process."""

    def __init__(self, objective: Objective) -> None:
        self.name = objective.name
        self.payload = cloudpickle.dumps(objective)
        self._objective: Objective | None = objective

    def __getstate__(self) -> dict[str, Any]:
        return {"name": self.name, "payload": self.payload}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._objective = None

    def load(self) -> Objective:
        if self._objective is None:
            self._objective = cloudpickle.loads(self.payload)
            self._objective.register_source()
        return self._objective


@dataclasses.dataclass(frozen=True)
class TrialTicket:
    """Everything a task needs to run one trial (the controller's answer to ``start``)."""

    number: int | None  # None: not known yet (the storage is creating the trial)
    n_objectives: int
    datetime_start: datetime.datetime | None
    fixed_params: dict[str, Any]
    relative_params: dict[str, Any]
    relative_space: dict[str, BaseDistribution]
    overrides: dict[str, BaseDistribution] = dataclasses.field(default_factory=dict)
    # Sampled ahead by the controller: used when asked for with exactly that distribution.
    proposed: dict[str, tuple[BaseDistribution, Any]] = dataclasses.field(default_factory=dict)
    prunes: bool = True  # False: the run's pruner never prunes (``none``), nothing to ask


class WorkerTrial(BaseTrial):
    """The ``trial`` an objective receives on a worker; mirrors :class:`optuna.trial.Trial`.

    Values Optuna would resolve without the sampler (fixed, single-valued, relative) are resolved
    here; any other suggestion asks the controller, which owns the sampler and the storage.
    """

    def __init__(self, ticket: TrialTicket, channel: WorkerChannel) -> None:
        self._ticket = ticket
        self._channel = channel
        self._number = ticket.number
        self._params: dict[str, Any] = {}
        self._distributions: dict[str, BaseDistribution] = {}
        self._user_attrs: dict[str, Any] = {}
        self._constraints: dict[str, float] = {}
        self._intermediate: dict[int, float] = {}
        # What the controller has not been told yet: parameters resolved here, and what was
        # held back (see _HOLD); every message carries it. The lock keeps the flush thread's
        # messages and the objective's in the order of their contents.
        self._unsent_params: list[tuple[str, str]] = []  # (name, distribution as JSON)
        self._unsent_reports: list[tuple[int, float]] = []  # (step, value)
        self._unsent_attrs: list[tuple[str, str, Any]] = []  # ("user" | "constraint", key, value)
        self._lock = threading.Lock()
        self._last_sent = -math.inf
        self._closed = False

    # -- suggestions -------------------------------------------------------------------------
    def suggest_float(
        self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False
    ) -> float:
        return self._suggest(name, FloatDistribution(low, high, log=log, step=step))

    def suggest_int(
        self, name: str, low: int, high: int, *, step: int = 1, log: bool = False
    ) -> int:
        return int(self._suggest(name, IntDistribution(low, high, log=log, step=step)))

    def suggest_categorical(  # type: ignore[override]
        self, name: str, choices: Sequence[CategoricalChoiceType]
    ) -> CategoricalChoiceType:
        return self._suggest(name, CategoricalDistribution(choices=choices))

    def suggest_uniform(self, name: str, low: float, high: float) -> float:
        return self.suggest_float(name, low, high)

    def suggest_loguniform(self, name: str, low: float, high: float) -> float:
        return self.suggest_float(name, low, high, log=True)

    def suggest_discrete_uniform(self, name: str, low: float, high: float, q: float) -> float:
        return self.suggest_float(name, low, high, step=q)

    def _suggest(self, name: str, distribution: BaseDistribution) -> Any:
        distribution = self._ticket.overrides.get(name, distribution)  # edited in the panel
        if name in self._distributions:
            check_distribution_compatibility(self._distributions[name], distribution)
            return self._params[name]
        found, value = self._resolve_locally(name, distribution)
        dist_json = distribution_to_json(distribution)
        if found:
            with self._lock:  # the flush thread may be taking the list
                self._unsent_params.append((name, dist_json))
            # The storage learns a trial's parameters soon (a run resumed after its kernel
            # died retries the trial with them), not only with the trial's next message.
            self._send_or_hold()
        else:
            reply = self._request(Suggest(name=name, dist=dist_json), ValueAnswer)
            value = distribution.to_external_repr(reply.value)
        self._params[name] = value
        self._distributions[name] = distribution
        return value

    def _resolve_locally(self, name: str, distribution: BaseDistribution) -> tuple[bool, Any]:
        """Optuna's own order: fixed (enqueued) value, single choice, relative sample, then
        the independent sample drawn ahead."""
        ticket = self._ticket
        if name in ticket.fixed_params:
            return True, ticket.fixed_params[name]
        if distribution.single():
            return True, _optuna.single_value(distribution)
        if name in ticket.relative_params:
            check_distribution_compatibility(ticket.relative_space[name], distribution)
            value = ticket.relative_params[name]
            if _optuna.contains(distribution, distribution.to_internal_repr(value)):
                return True, value
        proposal = ticket.proposed.get(name)
        if proposal is not None and proposal[0] == distribution:
            return True, proposal[1]
        return False, None

    # -- reports and pruning -----------------------------------------------------------------
    def report(self, value: float, step: int) -> None:
        if self._ticket.n_objectives > 1:
            raise NotImplementedError(
                "Trial.report is not supported for multi-objective optimization."
            )
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise TypeError(
                f"The `value` argument is of type '{type(value)}' but supposed to be a float."
            ) from None
        try:
            step = int(step)
        except (TypeError, ValueError):
            raise TypeError(
                f"The `step` argument is of type '{type(step)}' but supposed to be an int."
            ) from None
        if step < 0:
            raise ValueError(f"`{step=}` must be non-negative.")
        if step in self._intermediate:
            warnings.warn(
                f"The reported value is ignored because this `{step=}` is already reported.",
                stacklevel=2,
            )
            return
        self._intermediate[step] = value
        with self._lock:
            self._unsent_reports.append((step, value))
        self._send_or_hold()

    def should_prune(self) -> bool:
        if self._ticket.n_objectives > 1:
            raise NotImplementedError(
                "Trial.should_prune is not supported for multi-objective optimization."
            )
        if not self._ticket.prunes:
            if self._channel.cancelled():  # what a request would have found out
                raise TaskCancelled("the run no longer wants this trial")
            return False
        return self._request(Prune(), PruneAnswer).prune

    # -- attributes --------------------------------------------------------------------------
    def set_user_attr(self, key: str, value: Any) -> None:
        try:
            value = json.loads(json.dumps(value))
        except (TypeError, ValueError) as e:
            raise TypeError(f"user attribute {key!r} must be JSON serializable: {e}") from None
        self._user_attrs[key] = value
        with self._lock:
            self._unsent_attrs.append(("user", key, value))
        self._send_or_hold()

    def set_constraint(self, key: str, value: float) -> None:
        value = float(value)
        if math.isnan(value):
            raise ValueError(f"Attempted to set a constraint for {key!r}, but NaN is not allowed.")
        if key in self._constraints:
            warnings.warn(f"The constraint value for {key!r} is already set.", stacklevel=2)
            return
        self._constraints[key] = value
        with self._lock:
            self._unsent_attrs.append(("constraint", key, value))
        self._send_or_hold()

    @property
    def params(self) -> dict[str, Any]:
        return copy.deepcopy(self._params)

    @property
    def distributions(self) -> dict[str, BaseDistribution]:
        return copy.deepcopy(self._distributions)

    @property
    def user_attrs(self) -> dict[str, Any]:
        return copy.deepcopy(self._user_attrs)

    @property
    def constraints(self) -> dict[str, float]:
        return dict(self._constraints)

    @property
    def datetime_start(self) -> datetime.datetime | None:
        return self._ticket.datetime_start

    @property
    def number(self) -> int:
        if self._number is None:  # asked once, only by objectives that use it
            self._number = self._request(Number(), NumberAnswer).number
        return self._number

    @property
    def study(self) -> Any:
        raise AttributeError(
            "trial.study is not available on a dask worker: the study lives in the kernel"
        )

    # -- transport ---------------------------------------------------------------------------
    def _send_or_hold(self) -> None:
        """Send what waits now, unless the trial's last message left less than ``_HOLD``
        seconds ago: then the next message takes it, or the flush thread once it is due."""
        now = time.monotonic()
        if now - self._last_sent >= _HOLD:
            with self._lock:
                self._send_locked(Report, now)
        elif self._channel.cancelled():  # what sending would have found out
            raise TaskCancelled("the run no longer wants this trial")
        else:
            _FLUSHER.schedule(self, self._last_sent + _HOLD)

    def flush(self) -> None:
        """Send what was held back, if anything still waits (on the flush thread)."""
        with self._lock:
            if self._closed or not (
                self._unsent_params or self._unsent_reports or self._unsent_attrs
            ):
                return
            with contextlib.suppress(TaskCancelled):  # the objective's thread finds out itself
                self._send_locked(Report, time.monotonic())

    def _send_locked(self, kind: type[Report], now: float) -> None:
        self._last_sent = now
        self._channel.send(kind(**self._take_unsent()))

    def _request(self, body: TrialMessage, expected: type[A]) -> A:
        """Send ``body`` with what waits, and return the controller's answer to it."""
        with self._lock:
            self._last_sent = time.monotonic()
            unsent = self._take_unsent()
            sent = self._channel.send(dataclasses.replace(body, **unsent), wants_answer=True)
        reply = self._channel.wait(sent)
        if isinstance(reply, Cancel):
            raise TaskCancelled(reply.reason)
        if isinstance(reply, Error):
            raise RuntimeError(reply.message)
        if not isinstance(reply, expected):
            raise RuntimeError(f"the controller answered {reply!r} to {body.op}")
        return reply

    def _take_unsent(self) -> dict[str, Any]:
        params, self._unsent_params = self._unsent_params, []
        reports, self._unsent_reports = self._unsent_reports, []
        attrs, self._unsent_attrs = self._unsent_attrs, []
        return {"params": tuple(params), "reports": tuple(reports), "attrs": tuple(attrs)}

    def close(self) -> dict[str, Any]:
        """End the trial: what the controller has not been told yet, for its last message
        (parameters resolved here, reported values, attributes); nothing is sent after it."""
        with self._lock:
            self._closed = True
            return self._take_unsent()


def outcome_of(value: Any, n_objectives: int) -> dict[str, Any]:
    """Classify an objective's return value: ``complete`` with float values, or ``fail``."""
    if value is None:
        return _fail("objective returned None; end the cell with the value to optimize")
    if isinstance(value, (str, bytes)):
        shown = " ".join(repr(value).split())
        return _fail(f"objective returned a {type(value).__name__} ({shown:.40}), not a number")
    raw = [value]
    if not isinstance(value, (int, float, Mapping)):
        with contextlib.suppress(TypeError):  # a scalar (numpy, torch, ...) stays as it is
            raw = list(value)  # a list, tuple, array or tensor of values
    if len(raw) != n_objectives:
        return _fail(
            f"objective returned {len(raw)} value(s) but the study has {n_objectives} objective(s)"
        )
    values = []
    for v in raw:
        try:
            f = float(v)
        except (TypeError, ValueError):
            shown = " ".join(repr(v).split())  # an array's repr spans lines
            return _fail(f"objective returned {type(v).__name__} {shown:.40}, not a number")
        if math.isnan(f):
            return _fail("objective returned NaN")
        values.append(f)
    return {"state": "complete", "values": tuple(values)}


def _fail(reason: str, tb: str = "") -> dict[str, Any]:
    return {"state": "fail", "reason": reason, "traceback": tb}


def run_slot(
    objective: PickledObjective, topic: str, reply_timeout: float, ticket: bytes | None = None
) -> dict[str, Any]:
    """A dask task that runs trials one after another.

    The first trial may come with the task (``ticket``). While a trial runs, the controller
    sends the task its next one (drawn ahead): the task starts it the moment the current one
    ends, and tells the controller so with the outcome, so a worker that becomes free waits
    for no round trip and no new dask task. Without one, the outcome travels with the
    request for the next trial (whose answer may bring the one after it). The task ends when
    the controller has no trial left for it; its result is its last message.
    """
    channel = WorkerChannel(topic, reply_timeout)
    trial: WorkerTrial | None = None
    start = Start(worker=channel.worker, gpu=this_process_gpu(), pid=os.getpid())
    try:
        channel.listen()  # before the controller learns of this task and may send it trials
        reply: Answer | None
        if ticket is None:
            reply = channel.request(start)
        else:
            channel.send(start)
            channel.flush()  # the controller times the trial from this message
            reply = GiveTrial(ticket, -1)
        while isinstance(reply, (GiveTrial, TrialAhead)):
            given: TrialTicket = pickle.loads(reply.ticket)
            trial = WorkerTrial(given, channel)
            outcome: dict[str, Any] = _run(objective, trial, given)
            outcome.update(trial.close())
            trial = None  # from here on its outcome is the controller's
            reply = channel.take_ahead()
            if reply is None:
                reply = channel.request(Finish(**outcome))
            else:  # started at once; the controller learns of it with the outcome
                channel.send(Finish(**outcome, next=reply.id))
                channel.flush()
        last = Finish(state="idle")
    except TaskCancelled as e:
        unsent: dict[str, Any] = trial.close() if trial is not None else {}
        last = Finish(**unsent, state="cancelled", reason=str(e))
    except ReplyTimeout as e:
        # Without a trial, the controller has the outcome, or no trial was given.
        last = Finish(state="idle") if trial is None else Finish(**trial.close(), **_fail(str(e)))
    finally:
        channel.close()
    return encode(channel.send(last))


def _run(objective: PickledObjective, trial: WorkerTrial, ticket: TrialTicket) -> dict[str, Any]:
    try:
        value = objective.load().func(trial)
    except optuna.TrialPruned:
        return {"state": "pruned"}
    except (TaskCancelled, ReplyTimeout):
        raise
    except Exception as e:
        # One line: the exception's type and first line (not an added note, not the rest).
        return _fail(one_line(e), traceback.format_exc()[-_TRACEBACK_LIMIT:])
    return outcome_of(value, ticket.n_objectives)
