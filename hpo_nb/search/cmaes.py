"""Optuna's CMA-ES over an incremental view of the history.

On every suggestion Optuna's ``CmaEsSampler`` lists the complete trials again, scans them
backwards for the latest stored optimizer, unpickles it from hex strings, filters every
complete trial for those of the optimizer's generation and, once a generation is full, tells
the optimizer its solutions. With many trials at once the generation is often full before the
trial that stores the told optimizer completes, so each suggestion tells the same solutions to
the same optimizer again. With 128 trials at once and 1,000 in the study that took about 10 ms
per suggestion here, more than the controller has to draw 128 trials a second.

This sampler keeps the complete trials in number order, each trial added once; indexes them by
generation; keeps the latest optimizer unpickled, and the optimizer told a given set of
solutions, and hands out copies of them. Everything else is Optuna's own code path, so
suggestions are the same as ``optuna.samplers.CmaEsSampler``'s with the same seed
(``tests/test_cmaes.py`` checks it). It suggests from one thread at a time (the controller's).

A stored optimizer is unpickled only if this process wrote it (``_WRITTEN``): a pickle that
someone else wrote (another kernel, a shared storage, an archive) could run any code. In its
place the optimizer is rebuilt from plain data, the trials' parameters, values and generation
numbers: a new optimizer made as Optuna makes the first one, then told each generation's first
``popsize`` complete trials (in number order, as Optuna picks them), generation by generation up
to the stored one's. Where a generation held more complete trials than its population (trials
run at once), which of them Optuna told depended on which had finished by then, which the
storage does not record: the rebuilt state is then CMA-ES's over an equally valid choice of the
same generation's trials. A warm-started CMA-ES (``source_trials``), or trials that do not fit
(a generation short of its population, another population size or search space), start afresh,
with a logged line. A rebuilt optimizer is kept for the process (``_REBUILT``), and the ones told
after it are this process's own.
"""

from __future__ import annotations

import bisect
import copy
import dataclasses
import hashlib
import pickle
import threading
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.study import Study, StudyDirection
from optuna.trial import FrozenTrial, TrialState

from hpo_nb import _optuna
from hpo_nb._optuna import SearchSpaceTransform

__all__ = ["HistoryCmaEsSampler", "fresh_copy"]

_IMMUTABLE = (int, float, bool, str, type(None), np.generic)
# The digests of the optimizers this process pickled: only those are unpickled again. A pickle
# read from a storage (or an imported archive) that someone else wrote could run any code.
_WRITTEN: set[str] = set()
# Optimizers rebuilt from the trials, by what they were rebuilt from: a sampler made again in
# this process (a resumed run) does not replay the same trials again. A few studies' worth.
_REBUILT: dict[tuple[Any, ...], Any] = {}
_REBUILT_KEPT = 8
_REBUILT_LOCK = threading.Lock()
# What a replay that meets bad plain data (a crafted storage) raises: it starts afresh instead.
_REPLAY_ERRORS = (AssertionError, ArithmeticError, KeyError, TypeError, ValueError)
_logger = optuna.logging.get_logger(optuna.samplers.CmaEsSampler.__module__)  # Optuna's own


@dataclasses.dataclass
class _History:
    """The trials CMA-ES counts as complete (pruned ones with their last value when it
    considers them), in number order, each added once."""

    complete: list[FrozenTrial] = dataclasses.field(default_factory=list)
    numbers: list[int] = dataclasses.field(default_factory=list)
    by_generation: dict[Any, list[tuple[int, FrozenTrial]]] = dataclasses.field(
        default_factory=dict
    )
    source: FrozenTrial | None = None  # the last complete trial that stored an optimizer
    seen: int = 0  # trials of the study looked at so far
    unfinished: list[int] = dataclasses.field(default_factory=list)  # their positions


class HistoryCmaEsSampler(optuna.samplers.CmaEsSampler):
    """``optuna.samplers.CmaEsSampler`` that reads only new trials on each suggestion."""

    _histories: dict[int, _History]
    _restored: tuple[Any, Any] | None = None  # (origin, the optimizer stored there, untouched)
    _told: tuple[tuple[Any, ...], Any, dict[str, str]] | None = None  # (key, optimizer, attrs)
    _copies_rng: np.random.RandomState

    @property
    def copies_rng(self) -> np.random.RandomState:
        """The random state of the optimizers this sampler hands out (one at a time: each is
        reseeded before its ``ask``, then dropped)."""
        if "_copies_rng" not in self.__dict__:
            self._copies_rng = np.random.RandomState(0)
        return self._copies_rng

    def _history(self, study: Study) -> _History:
        if "_histories" not in self.__dict__:  # CmaEsSampler's own __init__ is kept as it is
            self._histories = {}
        history = self._histories.setdefault(_optuna.study_id(study), _History())
        trials = _optuna.all_trials(study, use_cache=True)
        positions = history.unfinished + list(range(history.seen, len(trials)))
        history.unfinished, history.seen = [], len(trials)
        for position in positions:
            t = trials[position]
            if not t.state.is_finished():
                history.unfinished.append(position)
                continue
            counted = self._counted(t)
            if counted is not None:
                self._add(history, counted)
        return history

    def _counted(self, t: FrozenTrial) -> FrozenTrial | None:
        """``t`` as Optuna's ``_get_trials`` counts it, or None if it does not."""
        if t.state == TrialState.COMPLETE:
            return t
        if t.state == TrialState.PRUNED and t.intermediate_values and self._consider_pruned_trials:
            _, value = max(t.intermediate_values.items())
            if value is None:
                return None
            copied = copy.deepcopy(t)  # as Optuna does: the study's own trial is left alone
            copied.value = value
            return copied
        return None

    def _add(self, history: _History, t: FrozenTrial) -> None:
        at = bisect.bisect(history.numbers, t.number)
        history.numbers.insert(at, t.number)
        history.complete.insert(at, t)
        generation = t.system_attrs.get(self._attr_key_generation, -1)
        bisect.insort(history.by_generation.setdefault(generation, []), (t.number, t))
        has_optimizer = any(k.startswith(self._attr_key_optimizer) for k in t.system_attrs)
        if has_optimizer and (history.source is None or t.number > history.source.number):
            history.source = t

    def _get_trials(self, study: Study) -> list[FrozenTrial]:
        return list(self._history(study).complete)

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        """Optuna's ``CmaEsSampler.sample_relative``, the told optimizer kept for the next
        suggestion that tells it the same solutions."""
        self._raise_error_if_multi_objective(study)
        if len(search_space) == 0:
            return {}
        history = self._history(study)
        completed_trials = history.complete
        if len(completed_trials) < self._n_startup_trials:
            return {}
        trans = SearchSpaceTransform(
            search_space, transform_step=not self._with_margin, transform_0_1=True
        )
        origin, optimizer = self._restore_optimizer_of(history, study, search_space, trans)
        if optimizer is None:
            optimizer = self._init_optimizer(trans, study.direction)
        if optimizer.dim != len(trans.bounds):
            if self._warn_independent_sampling:
                _logger.warning(
                    "`CmaEsSampler` does not support dynamic search space. "
                    f"`{type(self._independent_sampler).__name__}` is used instead of "
                    "`CmaEsSampler`."
                )
                self._warn_independent_sampling = False
            return {}
        solution_trials = [t for _, t in history.by_generation.get(optimizer.generation, [])]
        if len(solution_trials) >= optimizer.population_size:
            optimizer = self._tell(
                origin, optimizer, solution_trials, trans, search_space, study.direction
            )
            assert self._told is not None
            for key, value in self._told[2].items():
                _optuna.set_trial_system_attr(study, trial, key, value)
        seed = self._cma_rng.rng.randint(1, 2**16) + trial.number
        optimizer._rng.seed(seed)
        if _with_margin(optimizer):
            params, x_for_tell = optimizer.ask()
            _optuna.set_trial_system_attr(study, trial, "x_for_tell", x_for_tell.tolist())
        else:
            params = optimizer.ask()
        _optuna.set_trial_system_attr(study, trial, self._attr_key_generation, optimizer.generation)
        return trans.untransform(params)

    def _restore_optimizer(self, completed_trials: list[FrozenTrial]) -> Any:
        """Optuna's restore, for an optimizer this process stored only (see ``_WRITTEN``);
        otherwise none (``_restore_optimizer_of`` rebuilds it from the trials)."""
        for trial in reversed(completed_trials):
            stored = self._stored(trial)
            if stored is None:
                continue
            if hashlib.sha256(stored.encode()).hexdigest() not in _WRITTEN:
                _logger.info("a stored CMA-ES optimizer not written by this process is not read")
                return None
            return pickle.loads(bytes.fromhex(stored))
        return None

    def _stored(self, trial: FrozenTrial) -> str | None:
        """The optimizer ``trial`` stores, as the hex string of its pickle (never unpickled
        here), or None."""
        prefix = self._attr_key_optimizer
        parts = {k: v for k, v in trial.system_attrs.items() if k.startswith(prefix)}
        return self._concat_optimizer_attrs(parts) if parts else None

    def _restore_optimizer_of(
        self,
        history: _History,
        study: Study,
        search_space: dict[str, BaseDistribution],
        trans: SearchSpaceTransform,
    ) -> tuple[Any, Any]:
        """(where it comes from, a copy of the optimizer the latest complete trial stored, or
        of that optimizer rebuilt from the trials if this process did not store it), or (its
        study, None) if none has stored one yet, or it cannot be rebuilt. An archive keeps no
        optimizer: its trials' generations are rebuilt as well."""
        if history.source is not None:
            origin: tuple[Any, ...] = (id(history), history.source.number)
        else:
            target = self._last_generation(history)
            if target < 1:
                return (id(history), None), None
            origin = (id(history), None, target)
        if self._restored is None or self._restored[0] != origin:
            optimizer = None
            if history.source is not None:
                optimizer = self._restore_optimizer([history.source])
            if optimizer is None:
                optimizer = self._rebuilt(history, study, search_space, trans)
            self._restored = (origin, optimizer)
        if self._restored[1] is None:
            return (id(history), None), None
        return origin, fresh_copy(self._restored[1], self.copies_rng)

    def _last_generation(self, history: _History) -> int:
        """The latest generation of the complete trials, 0 if none has one."""
        generations = [g for g in history.by_generation if type(g) is int]
        return max(generations, default=0)

    def current_optimizer(self, study: Study) -> Any:
        """The CMA-ES optimizer this sampler's next suggestion in ``study`` starts from, before
        it tells any full generation: a copy of the stored one, or of the one rebuilt from the
        trials; None if CMA-ES would start afresh (or the trials are still too few).

        >>> sampler = HistoryCmaEsSampler(seed=0, popsize=4)
        >>> study = optuna.create_study(sampler=sampler)
        >>> study.optimize(lambda t: t.suggest_float("x", -1, 1) ** 2, n_trials=9)
        >>> sampler.current_optimizer(study).generation  # trials 1-4 told, 5-8 drawn from it
        1
        """
        history = self._history(study)
        if not history.complete:
            return None
        space = self.infer_relative_search_space(study, history.complete[-1])
        if not space:
            return None
        trans = SearchSpaceTransform(
            space, transform_step=not self._with_margin, transform_0_1=True
        )
        _, optimizer = self._restore_optimizer_of(history, study, space, trans)
        return optimizer

    def _rebuilt(
        self,
        history: _History,
        study: Study,
        search_space: dict[str, BaseDistribution],
        trans: SearchSpaceTransform,
    ) -> Any:
        """The optimizer of the latest stored generation rebuilt from the trials (see the
        module's docstring), kept for the process; None if it cannot be."""
        source = history.source
        target = (
            self._last_generation(history)
            if source is None
            else source.system_attrs.get(self._attr_key_generation)
        )
        if self._source_trials is not None:
            _logger.info(
                "CMA-ES starts afresh: a stored optimizer this process did not write is not "
                "read, and a warm-started one cannot be rebuilt from the trials"
            )
            return None
        start = self._first_optimizer(trans, study.direction)
        plan = self._plan(history, target, start.population_size, search_space)
        if isinstance(plan, str):
            _logger.warning(f"CMA-ES starts afresh: its state cannot be rebuilt: {plan}")
            return None
        stored = None if source is None else self._stored(source)
        key = (
            study.study_name,
            None if stored is None else hashlib.sha256(stored.encode()).hexdigest(),
            tuple(t.number for chosen in plan for t in chosen),
            self._settings(),
            tuple(search_space.items()),
            study.direction,
        )
        rebuilt = _REBUILT.get(key)
        if rebuilt is None:
            try:
                rebuilt = self._replay(start, plan, trans, study.direction)
            except _REPLAY_ERRORS as e:
                _logger.warning(f"CMA-ES starts afresh: its trials do not replay: {e!r}")
                return None
            with _REBUILT_LOCK:  # each study's controller suggests from its own thread
                while len(_REBUILT) >= _REBUILT_KEPT:
                    del _REBUILT[next(iter(_REBUILT))]
                _REBUILT[key] = rebuilt
            crowded = sum(
                len(history.by_generation[g]) > start.population_size for g in range(len(plan))
            )
            _logger.info(
                f"CMA-ES's state rebuilt from {len(plan)} generations of trials"
                + (f" ({crowded} held more than their population)" if crowded else "")
            )
        return rebuilt

    def _settings(self) -> tuple[Any, ...]:
        """What the first optimizer and its updates depend on besides the search space."""
        return (
            type(self).__qualname__,
            self._attr_prefix,
            self._popsize,
            self._lr_adapt,
            repr(self._x0),
            self._sigma0,
            self._consider_pruned_trials,
        )

    def _first_optimizer(self, trans: SearchSpaceTransform, direction: StudyDirection) -> Any:
        """The first optimizer, as Optuna makes it, the sampler's random state left as it was
        (Optuna draws nothing to restore a stored optimizer)."""
        state = self._cma_rng.rng.get_state()
        try:
            return self._init_optimizer(trans, direction)
        finally:
            self._cma_rng.rng.set_state(state)

    def _plan(
        self,
        history: _History,
        target: Any,
        popsize: int,
        search_space: dict[str, BaseDistribution],
    ) -> list[list[FrozenTrial]] | str:
        """The trials told to each generation before ``target``, as Optuna picks them, or why
        they cannot be."""
        if type(target) is not int or target < 1:
            return f"the stored optimizer's generation is {target!r}"
        plan = []
        for generation in range(target):
            trials = [t for _, t in history.by_generation.get(generation, [])]
            if len(trials) < popsize:
                return (
                    f"generation {generation} has {len(trials)} complete trials, fewer than "
                    f"its population of {popsize}"
                )
            for t in trials[:popsize]:
                stored = t.system_attrs.get(self._attr_prefix + "popsize", popsize)  # Optuna 4
                if stored != popsize:
                    return f"trial {t.number} was drawn by a population of {stored}, not {popsize}"
                if any(t.distributions.get(n) != d for n, d in search_space.items()):
                    return f"trial {t.number} has another search space"
            plan.append(trials[:popsize])
        return plan

    def _replay(
        self,
        optimizer: Any,
        plan: list[list[FrozenTrial]],
        trans: SearchSpaceTransform,
        direction: StudyDirection,
    ) -> Any:
        """``optimizer`` told the trials of ``plan``, generation by generation, each told
        optimizer as its pickle restores it (as Optuna's is before its next update)."""
        sign = 1.0 if direction == StudyDirection.MINIMIZE else -1.0
        margin = _with_margin(optimizer)
        for chosen in plan:
            solutions = []
            for t in chosen:
                if margin:
                    x = np.array(t.system_attrs["x_for_tell"], dtype=float)
                    if x.shape != (optimizer.dim,):
                        raise ValueError(f"trial {t.number}'s x_for_tell has shape {x.shape}")
                else:
                    x = trans.transform(t.params)
                solutions.append((x, sign * float(t.value)))  # type: ignore[arg-type]
            optimizer.tell(solutions)
            _as_stored(optimizer)
        return optimizer

    def _tell(
        self,
        origin: Any,
        optimizer: Any,
        solution_trials: list[FrozenTrial],
        trans: SearchSpaceTransform,
        search_space: dict[str, BaseDistribution],
        direction: StudyDirection,
    ) -> Any:
        """``optimizer`` told the first generation's worth of ``solution_trials`` (their
        parameters through ``trans``, made for ``search_space``), and the system attributes
        that store it; the same optimizer told the same solutions again is a copy of the one
        told before."""
        chosen = solution_trials[: optimizer.population_size]
        key = (
            origin,
            optimizer.generation,
            tuple(t.number for t in chosen),
            tuple(search_space.items()),
            direction,
        )
        if self._told is None or self._told[0] != key:
            solutions: list[tuple[np.ndarray, float]] = []
            for t in chosen:
                assert t.value is not None, "completed trials must have a value"
                if _with_margin(optimizer):
                    x = np.array(t.system_attrs["x_for_tell"])
                else:
                    x = trans.transform(t.params)
                y = t.value if direction == StudyDirection.MINIMIZE else -t.value
                solutions.append((x, y))
            optimizer.tell(solutions)
            written = pickle.dumps(optimizer).hex()
            _WRITTEN.add(hashlib.sha256(written.encode()).hexdigest())
            attrs = self._split_optimizer_str(written)
            self._told = (key, optimizer, attrs)
        return fresh_copy(self._told[1], self.copies_rng)


def _with_margin(optimizer: Any) -> bool:
    import cmaes  # loaded by then: the optimizer is one of its classes

    return isinstance(optimizer, cmaes.CMAwM)


def _as_stored(optimizer: Any) -> None:
    """Make ``optimizer`` what its pickle restores: ``CMA`` (also ``CMAwM``'s inner one)
    pickles the upper triangle of its covariance matrix, symmetric only up to rounding."""
    cma = optimizer.__dict__.get("_cma", optimizer)
    c = cma.__dict__.get("_C")
    if isinstance(c, np.ndarray) and c.ndim == 2:
        cma._C = np.triu(c) + np.triu(c, 1).T


def fresh_copy(optimizer: Any, rng: np.random.RandomState) -> Any:
    """A copy of ``optimizer`` as it is, drawing from ``rng`` (Optuna reseeds an optimizer's
    random state before each ``ask``, and a new ``RandomState`` costs a quarter of a
    millisecond). Not ``copy.deepcopy``: that goes through the class's pickling, which rebuilds
    the covariance matrix from its upper triangle, and a told optimizer's matrix is symmetric
    only up to rounding. An inner optimizer (``CMAwM``'s) is copied the same way."""
    copied = object.__new__(type(optimizer))
    for name, value in optimizer.__dict__.items():
        if name == "_rng":
            value = rng
        elif isinstance(value, np.ndarray):
            value = value.copy()
        elif type(value).__module__.startswith("cmaes."):
            value = fresh_copy(value, rng)
        elif not isinstance(value, _IMMUTABLE):
            value = copy.deepcopy(value)
        copied.__dict__[name] = value
    return copied
