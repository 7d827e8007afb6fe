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
"""

from __future__ import annotations

import bisect
import copy
import dataclasses
import hashlib
import pickle
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
        origin, optimizer = self._restore_optimizer_of(history)
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
        otherwise none, and CMA-ES starts afresh from the study's trials."""
        for trial in reversed(completed_trials):
            prefix = self._attr_key_optimizer
            parts = {k: v for k, v in trial.system_attrs.items() if k.startswith(prefix)}
            if not parts:
                continue
            stored = self._concat_optimizer_attrs(parts)
            if hashlib.sha256(stored.encode()).hexdigest() not in _WRITTEN:
                _logger.info("a stored CMA-ES optimizer not written by this process is ignored")
                return None
            return pickle.loads(bytes.fromhex(stored))
        return None

    def _restore_optimizer_of(self, history: _History) -> tuple[Any, Any]:
        """(where it comes from, a copy of the optimizer the latest complete trial stored),
        or (its study, None) if none has stored one yet."""
        if history.source is None:
            return (id(history), None), None
        origin = (id(history), history.source.number)
        if self._restored is None or self._restored[0] != origin:
            self._restored = (origin, self._restore_optimizer([history.source]))
        if self._restored[1] is None:  # stored by someone else: not trusted
            return (id(history), None), None
        return origin, fresh_copy(self._restored[1], self.copies_rng)

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
