"""The study in memory, written through to its storage.

Samplers and pruners read the whole history on every ask; reading it from memory instead of the
database is what keeps a suggestion fast. Every change is written to the storage as it happens,
in order, by one writer thread (attributes before the state, as Optuna's own cache does), so the
controller never waits on the database, not even to create a trial, and the storage soon holds the
truth a resumed run or another kernel needs. A new trial's record, which a worker waits for, goes
before the writes still queued. Only the controller thread uses a mirror.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import optuna
import sqlalchemy
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.storages import InMemoryStorage, RDBStorage
from optuna.trial import FrozenTrial, TrialState

from hpo_nb import _optuna
from hpo_nb._optuna import TrialIntermediateValueModel
from hpo_nb.engine import writes as writes
from hpo_nb.engine.quiet import quiet
from hpo_nb.engine.records import GIVEN_KEY
from hpo_nb.engine.writer import StorageUnreachable, Writer
from hpo_nb.io.archive import load_trials

__all__ = ["DrawnTrial", "Mirror", "MirroredTrial"]

_VALUES_EVERY = 0.25  # seconds a reported value may wait to be written with the next ones
_NEW_VALUES = sqlalchemy.insert(TrialIntermediateValueModel.__table__)


@dataclasses.dataclass
class MirroredTrial:
    """A running trial: Optuna's trial in memory, and its id and number in the storage."""

    trial: optuna.Trial
    storage_id: int
    number: int
    fixed_params: dict[str, Any]
    proposed: dict[str, tuple[BaseDistribution, Any]] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class DrawnTrial:
    """A trial the sampler has started in memory, not yet in the storage."""

    trial: optuna.Trial
    waiting_id: int | None  # the storage id of the enqueued trial it takes, if any
    fixed_params: dict[str, Any]
    # Values sampled ahead for parameters the trial will probably ask for (see draw).
    proposed: dict[str, tuple[BaseDistribution, Any]] = dataclasses.field(default_factory=dict)


class Mirror:
    """Study ``name`` of ``storage`` loaded in memory, with ``sampler`` and ``pruner``."""

    def __init__(
        self,
        storage: RDBStorage,
        name: str,
        sampler: optuna.samplers.BaseSampler,
        pruner: optuna.pruners.BasePruner,
        patience: float = 60.0,
    ) -> None:
        self._rdb = storage
        self._study_id = storage.get_study_id_from_name(name)
        self._memory = InMemoryStorage()
        directions = storage.get_study_directions(self._study_id)
        with quiet(InMemoryStorage.__module__):  # not "A new study created in memory"
            self._memory_study_id = self._memory.create_new_study(directions, name)
        for key, value in storage.get_study_system_attrs(self._study_id).items():
            self._memory.set_study_system_attr(self._memory_study_id, key, value)
        self._study_attrs = dict(storage.get_study_system_attrs(self._study_id))
        self._waiting: dict[int, int] = {}  # memory id -> storage id of enqueued trials
        self._numbers: dict[int, int] = {}  # memory number -> storage number
        # Each parameter of the finished trials, with its latest distribution.
        self.distributions: dict[str, BaseDistribution] = {}
        # Each parameter this run's trials asked for, with the distribution last asked: what
        # the next trials will probably ask for too, known before any of them finishes.
        self.asked: dict[str, BaseDistribution] = {}
        # Each trial goes into memory as load_trials builds it (a chunk at a time), by what
        # create_new_trial(template_trial=t) does less its deep copy of t: no one else holds t,
        # the storage copies a trial before it changes one, and the copies took 1.7 s and a
        # third of the memory for 10,000 trials.
        for t in load_trials(storage, self._study_id):  # 10x faster than Optuna's read
            if t.state.is_finished():
                self.distributions.update(t.distributions)
            if t.state.is_finished() or t.state == TrialState.WAITING:
                storage_id, storage_number = _optuna.trial_id(t), t.number
                memory_id = _optuna.adopt_trial(self._memory, self._memory_study_id, t)
                self._numbers[t.number] = storage_number
                if t.state == TrialState.WAITING:
                    self._waiting[memory_id] = storage_id
        self.study = optuna.load_study(
            study_name=name, storage=self._memory, sampler=sampler, pruner=pruner
        )
        self._persisted_attrs: dict[int, dict[str, Any]] = {}
        self._writer = Writer(storage.engine, patience)
        self._write_error: BaseException | None = None
        self._values: list[tuple[int, int, float]] = []  # reported, not yet sent to the writer
        self._values_since = 0.0

    # -- writing -----------------------------------------------------------------------------
    def _write(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        """Run ``fn(*args)`` on the writer thread, after every earlier write."""
        return self._submit(fn, args, urgent=False, sql=False)

    def _sql(self, fn: Callable[..., Any], *args: Any, urgent: bool = False) -> Future[Any]:
        """As ``_write``, for ``fn(connection, *args)``: the writes queued together share one
        transaction (``urgent``: after the earlier urgent writes only)."""
        return self._submit(fn, args, urgent, sql=True)

    def _submit(
        self, fn: Callable[..., Any], args: tuple[Any, ...], urgent: bool, sql: bool
    ) -> Future[Any]:
        future = self._writer.submit(fn, args, urgent, sql)
        future.add_done_callback(self._note_error)
        return future

    def _note_error(self, future: Future[Any]) -> None:
        if self._write_error is None and future.exception() is not None:
            self._write_error = future.exception()

    def check(self) -> None:
        """Raise the first error a write met (the run cannot go on without its storage)."""
        if self._write_error is not None:
            raise self._write_error
        if self._writer.gave_up is not None:
            raise self._writer.gave_up

    def notes(self) -> list[str]:
        """What the writer met since the last call ("storage unreachable, retrying (2/9)")."""
        return self._writer.notes()

    def tick(self) -> None:
        """Raise the first write error; send the buffered intermediate values once they wait
        ``_VALUES_EVERY`` seconds (the controller calls this between messages)."""
        self.check()
        if self._values and time.monotonic() - self._values_since >= _VALUES_EVERY:
            self._send_values()

    def _send_values(self) -> None:
        if self._values:
            rows, self._values = self._values, []
            self._sql(_insert_values, rows)

    def flush(self) -> None:
        """Wait for every pending write; raise the first error any write met."""
        self._send_values()
        self._writer.submit(lambda: None, ()).result()
        self.check()

    def close(self) -> None:
        """Flush, then stop the writer thread; raise the first error a write met, unless the
        storage is unreachable (then the writes left are written once it is back)."""
        self._send_values()
        self._writer.shutdown()
        if not isinstance(self._write_error, StorageUnreachable):
            self.check()

    @property
    def unwritten(self) -> int:
        """Writes waiting for the storage."""
        return self._writer.holding

    def _create_trial(
        self, conn: sqlalchemy.Connection, waiting_id: int | None, attrs: dict[str, Any]
    ) -> tuple[int, int]:
        """A RUNNING trial in the storage (an enqueued one if possible), carrying ``attrs`` from
        its first moment: a trial whose kernel dies at once is still known to be that kernel's.
        Returns its id and number."""
        if waiting_id is not None:
            number = writes.start_waiting(conn, waiting_id, attrs)
            if number is not None:
                return waiting_id, number
        return writes.create_trial(conn, self._study_id, attrs)

    # -- the study ---------------------------------------------------------------------------
    def set_study_attr(self, key: str, value: Any) -> None:
        """Write a study system attribute (after every earlier write)."""
        self._write(self._rdb.set_study_system_attr, self._study_id, key, value)

    def read_study_attrs(self) -> dict[str, Any]:
        """The study's system attributes as the storage has them now (other kernels write too)."""
        return self._rdb.get_study_system_attrs(self._study_id)

    @property
    def sampler_done(self) -> bool:
        """True once the sampler has nothing left to try (a grid sampler's exhausted grid)."""
        return _optuna.stop_requested(self.study)

    # -- a trial's life ----------------------------------------------------------------------
    @property
    def can_draw_ahead(self) -> bool:
        """False for a grid sampler: a trial drawn but never run would leave its point out,
        and the grid counts as done once every point is drawn."""
        return not isinstance(self.study.sampler, optuna.samplers.GridSampler)

    def draw(self, propose: dict[str, BaseDistribution] | None = None) -> DrawnTrial:
        """A new trial in memory only: the sampler has done its relative sampling, and its
        independent sampling for the parameters in ``propose`` that relative sampling left out.
        It may be drawn ahead, while other trials run; ``create`` gives it its record in the
        storage. A proposed value becomes the trial's only if the objective asks for that
        parameter with that distribution (``suggest``); else the sampler is asked then."""
        # Samplers signal "nothing left" with study.stop(), which Optuna allows only inside
        # its optimize loop; this thread is that loop.
        _optuna.allow_stop(self.study)
        trial = self.study.ask()
        _ = trial.relative_params  # Optuna samples them on first use: now, not when handed out
        memory_id = _optuna.trial_id(trial)
        frozen = self._memory.get_trial(memory_id)
        self._persisted_attrs[memory_id] = dict(frozen.system_attrs)
        fixed = dict(frozen.system_attrs.get("fixed_params", {}))
        drawn = DrawnTrial(trial, self._waiting.pop(memory_id, None), fixed)
        self.propose(drawn, propose or {})
        return drawn

    def propose(self, drawn: DrawnTrial, propose: dict[str, BaseDistribution]) -> None:
        """Sample the parameters in ``propose`` that ``drawn`` has no value for (its relative
        sampling left them out, or it was drawn before they were known) with the sampler's
        independent sampling, as Optuna would when the trial asks for them."""
        relative, proposed = drawn.trial.relative_params, drawn.proposed
        missing = [
            (name, distribution)
            for name, distribution in propose.items()
            if name not in drawn.fixed_params
            and name not in relative
            and not distribution.single()
            and (name not in proposed or proposed[name][0] != distribution)
        ]
        if not missing:
            return
        frozen = self._memory.get_trial(_optuna.trial_id(drawn.trial))
        study = _optuna.filter_study(self.study, frozen)  # what Trial._suggest sees
        for name, distribution in missing:
            value = self.study.sampler.sample_independent(study, frozen, name, distribution)
            proposed[name] = (distribution, value)

    def create(
        self, drawn: DrawnTrial, attrs: dict[str, Any] | None = None
    ) -> Future[MirroredTrial]:
        """Give a drawn trial its record in the storage (``attrs``: system attributes for it).
        The future is done once the record exists (its storage number is known then), after
        every earlier write."""

        attrs = {**(attrs or {}), **_given(drawn)}

        def create(conn: sqlalchemy.Connection) -> MirroredTrial:  # on the writer thread
            storage_id, number = self._create_trial(conn, drawn.waiting_id, attrs)
            self._numbers[drawn.trial.number] = number  # read only once the controller has it
            return MirroredTrial(
                drawn.trial, storage_id, number, drawn.fixed_params, drawn.proposed
            )

        # A worker waits for this: it goes before the writes queued so far (the previous
        # trials' results), which nothing in a new trial's record depends on.
        return self._sql(create, urgent=True)

    def storage_number(self, memory_number: int) -> int:
        """The number the storage (and the user) knows a trial by."""
        return self._numbers[memory_number]

    def enqueue(self, params: dict[str, Any]) -> None:
        """Make the next ``draw`` use these parameter values (a retry of a failed trial)."""
        self.study.enqueue_trial(params, skip_if_exists=False)

    def suggest(self, t: MirroredTrial, name: str, distribution: BaseDistribution) -> Any:
        """Optuna's suggestion (fixed, relative, proposed or sampled), recorded in both
        places."""
        known = t.trial.params
        self.asked[name] = distribution
        proposal = t.proposed.pop(name, None)
        if proposal is not None and name not in known and proposal[0] == distribution:
            # Optuna takes a fixed value as it is; the trial's own attribute stays as it was.
            _optuna.fix_param(t.trial, name, proposal[1])
        value = _suggest(t.trial, name, distribution)
        if name not in known:
            internal = distribution.to_internal_repr(value)
            self._sql(writes.set_param, t.storage_id, name, internal, distribution)
        return value

    def report(self, t: MirroredTrial, value: float, step: int) -> None:
        t.trial.report(value, step)
        if not self._values:
            self._values_since = time.monotonic()
        self._values.append((t.storage_id, step, float(value)))  # written in batches: tick()

    def should_prune(self, t: MirroredTrial) -> bool:
        return bool(t.trial.should_prune())

    def set_user_attr(self, t: MirroredTrial, key: str, value: Any) -> None:
        new = key not in t.trial.user_attrs  # the controller alone writes a running trial
        t.trial.set_user_attr(key, value)
        self._sql(writes.set_user_attr, t.storage_id, key, value, new)

    def set_constraint(self, t: MirroredTrial, key: str, value: float) -> None:
        t.trial.set_constraint(key, value)
        self._sync_attrs(t)

    def annotate(self, t: MirroredTrial, attrs: dict[str, Any]) -> None:
        """Write system attributes the storage keeps for the user (not the sampler's)."""
        for key, value in attrs.items():
            self._sql(writes.set_system_attr, t.storage_id, key, value)

    def heartbeat(self, t: MirroredTrial) -> None:
        self._sql(writes.record_heartbeat, t.storage_id)

    def finish(
        self,
        t: MirroredTrial,
        state: TrialState,
        values: list[float] | None = None,
        attrs: dict[str, str] | None = None,
    ) -> FrozenTrial:
        """Tell the trial's result; ``attrs`` are extra system attributes for the storage."""
        self._send_values()  # its intermediate values before its state
        if state == TrialState.COMPLETE:
            self.study.tell(t.trial, values)
        else:
            self.study.tell(t.trial, state=state)
        frozen = self._memory.get_trial(_optuna.trial_id(t.trial))
        self.distributions.update(frozen.distributions)
        for key, value in (attrs or {}).items():
            self._sql(writes.set_system_attr, t.storage_id, key, value)
        self._sync_attrs(t)
        self._sql(writes.set_state, t.storage_id, frozen.state, frozen.values)
        self._persisted_attrs.pop(_optuna.trial_id(t.trial), None)
        return frozen

    def _sync_attrs(self, t: MirroredTrial) -> None:
        """Persist what samplers and constraints wrote into system attributes."""
        memory_id = _optuna.trial_id(t.trial)
        frozen = self._memory.get_trial(memory_id)
        persisted = self._persisted_attrs.setdefault(memory_id, {})
        for key, value in frozen.system_attrs.items():
            if persisted.get(key, _MISSING) != value:
                self._sql(writes.set_system_attr, t.storage_id, key, value)
                persisted[key] = value
        study_attrs = self._memory.get_study_system_attrs(self._memory_study_id)
        for key, value in study_attrs.items():
            if self._study_attrs.get(key, _MISSING) != value:
                self._write(self._rdb.set_study_system_attr, self._study_id, key, value)
                self._study_attrs[key] = value


_MISSING = object()


def _insert_values(conn: sqlalchemy.Connection, rows: list[tuple[int, int, float]]) -> None:
    """Intermediate values, many in one statement: Optuna's own call takes a transaction
    and two look-ups per value, which cannot keep up with a hundred trials reporting
    several times a second. Each (trial, step) is new: workers drop repeated steps and a
    trial's values are sent before its end."""
    model = TrialIntermediateValueModel
    records = []
    for trial_id, step, value in rows:
        stored, kind = model.intermediate_value_to_stored_repr(value)
        records.append(
            {
                "trial_id": trial_id,
                "step": step,
                "intermediate_value": stored,
                "intermediate_value_type": kind,
            }
        )
    conn.execute(_NEW_VALUES, records)


def _given(drawn: DrawnTrial) -> dict[str, Any]:
    """The values a trial starts with (relative, enqueued and proposed), as a system attribute:
    a retry of the trial after its kernel died runs with them (see ``retry_params``)."""
    proposed = {name: value for name, (_, value) in drawn.proposed.items()}
    values = {**drawn.trial.relative_params, **proposed, **drawn.fixed_params}
    kept = {k: v for k, v in values.items() if v is None or isinstance(v, (str, int, float))}
    return {GIVEN_KEY: kept} if kept else {}


def _suggest(trial: optuna.Trial, name: str, distribution: BaseDistribution) -> Any:
    """Call the public ``suggest_*`` matching ``distribution``."""
    if isinstance(distribution, FloatDistribution):
        return trial.suggest_float(
            name, distribution.low, distribution.high, step=distribution.step, log=distribution.log
        )
    if isinstance(distribution, IntDistribution):
        return trial.suggest_int(
            name, distribution.low, distribution.high, step=distribution.step, log=distribution.log
        )
    if isinstance(distribution, CategoricalDistribution):
        return trial.suggest_categorical(name, distribution.choices)
    raise TypeError(f"unsupported distribution {type(distribution).__name__}")
