"""Optuna's TPE over an incremental view of the history.

Optuna's TPE re-reads every trial on every suggestion: it sorts the finished trials by their
result and converts each one's parameters again, in Python, which costs most of a suggestion
once a study holds thousands of trials. A finished trial never changes, so this sampler keeps
what TPE derives from each finished trial (its result, its pruned and infeasible scores, its
parameters in internal form, column by column) and only adds the trials finished since the
previous suggestion; the split and the columns are then a few NumPy operations. The estimator,
the candidates and the acquisition are Optuna's own, so suggestions are the same as
``optuna.samplers.TPESampler``'s with the same seed (``tests/test_tpe.py`` checks it).

Multi-objective studies and the deprecated ``constraints_func`` take Optuna's own path.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from optuna.distributions import BaseDistribution
from optuna.samplers import TPESampler
from optuna.samplers._tpe.sampler import (
    _get_infeasible_trial_score,
    _get_pruned_trial_score,
    default_gamma,
)
from optuna.study import Study, StudyDirection
from optuna.trial import FrozenTrial, TrialState

__all__ = ["HistoryTPESampler"]

_USED = (TrialState.COMPLETE, TrialState.PRUNED)


class _History:
    """What TPE needs of each finished (complete or pruned) trial, in trial-number order."""

    def __init__(self) -> None:
        self._seen = 0  # trials of the study looked at so far
        self._unfinished: list[int] = []  # positions of trials seen before they finished
        self._ids: set[int] = set()
        self.trials: list[FrozenTrial] = []
        self._rows: dict[str, list[float]] = {
            k: [] for k in ("number", "complete", "value", "step", "pruned_value", "infeasible")
        }
        self._arrays: dict[str, np.ndarray] = {}
        self._columns: dict[tuple[str, BaseDistribution], np.ndarray] = {}

    def update(self, study: Study, all_trials: list[FrozenTrial]) -> None:
        """Add the trials finished since the last call."""
        candidates = self._unfinished + list(range(self._seen, len(all_trials)))
        self._seen, self._unfinished = len(all_trials), []
        added = False
        for position in sorted(candidates):
            trial = all_trials[position]
            if not trial.state.is_finished():
                self._unfinished.append(position)
            elif trial.state in _USED and trial._trial_id not in self._ids:
                self._add(study, trial)
                added = True
        if added:
            self._arrays = {k: np.asarray(v, dtype=float) for k, v in self._rows.items()}

    def _add(self, study: Study, trial: FrozenTrial) -> None:
        step, pruned_value = _get_pruned_trial_score(trial, study)
        complete = trial.state == TrialState.COMPLETE
        row = self._rows
        row["number"].append(trial.number)
        row["complete"].append(complete)
        row["value"].append(trial.value if complete and trial.value is not None else np.nan)
        row["step"].append(step)
        row["pruned_value"].append(pruned_value)
        row["infeasible"].append(_get_infeasible_trial_score(trial))
        self._ids.add(trial._trial_id)
        self.trials.append(trial)

    def __len__(self) -> int:
        return len(self.trials)

    def array(self, name: str) -> np.ndarray:
        return self._arrays.get(name, np.empty(0))

    def column(self, name: str, distribution: BaseDistribution) -> np.ndarray:
        """Parameter ``name`` of every trial in internal form (NaN where a trial lacks it)."""
        key = (name, distribution)
        column = self._columns.get(key, np.empty(0))
        if len(column) < len(self.trials):
            more = [_internal(t.params, name, distribution) for t in self.trials[len(column) :]]
            column = self._columns[key] = np.concatenate([column, np.asarray(more, dtype=float)])
        return column

    def split(self, direction: StudyDirection, n_below: int) -> tuple[np.ndarray, np.ndarray]:
        """Positions of the trials TPE's ``_split_trials`` puts below and above (unordered)."""
        infeasible = self.array("infeasible")
        feasible = ~(infeasible > 0)
        complete = self.array("complete").astype(bool) & feasible
        pruned = ~self.array("complete").astype(bool) & feasible
        below, above = [], []
        for positions, order in (
            (np.flatnonzero(complete), self._complete_order(direction)),
            (np.flatnonzero(pruned), self._pruned_order),
            (np.flatnonzero(~feasible), lambda p: np.argsort(infeasible[p], kind="stable")),
        ):
            ranked = positions[order(positions)]
            take = min(max(0, n_below), len(ranked))
            below.append(ranked[:take])
            above.append(ranked[take:])
            n_below -= take
        return np.concatenate(below), np.concatenate(above)

    def _complete_order(self, direction: StudyDirection) -> Any:
        values = self.array("value")
        if direction == StudyDirection.MAXIMIZE:
            # sorted(reverse=True) keeps equal values in their original order.
            return lambda p: np.argsort(-values[p], kind="stable")
        return lambda p: np.argsort(values[p], kind="stable")

    def _pruned_order(self, positions: np.ndarray) -> np.ndarray:
        return np.lexsort((self.array("pruned_value")[positions], self.array("step")[positions]))


class HistoryTPESampler(TPESampler):
    """``optuna.samplers.TPESampler`` that reads only new trials on each suggestion."""

    _histories: dict[int, _History]

    def _sample(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        if study._is_multi_objective() or self._constraints_func is not None:
            return super()._sample(study, trial, search_space)
        all_trials = study._get_trials(deepcopy=False, use_cache=False)
        if "_histories" not in self.__dict__:  # TPESampler's own __init__ is kept as it is
            self._histories = {}
        history = self._histories.setdefault(study._study_id, _History())
        history.update(study, all_trials)
        running = []
        if self._constant_liar:
            running = [
                t
                for t in study._get_trials(deepcopy=False, states=(TrialState.RUNNING,))
                if t.number != trial.number
            ]
        if self._gamma is None:
            self._gamma = default_gamma
        below, above = history.split(study.direction, self._gamma(len(history)))
        mpe_below = self._estimator(study, search_space, history, below, [])
        mpe_above = self._estimator(study, search_space, history, above, running)
        samples_below = mpe_below.sample(self._rng.rng, self._n_ei_candidates)
        acq_func_vals = self._compute_acquisition_func(samples_below, mpe_below, mpe_above)
        ret = TPESampler._compare(samples_below, acq_func_vals)
        for param_name, dist in search_space.items():
            ret[param_name] = dist.to_external_repr(ret[param_name])
        return ret

    def _estimator(
        self,
        study: Study,
        search_space: dict[str, BaseDistribution],
        history: _History,
        positions: np.ndarray,
        running: list[FrozenTrial],
    ) -> Any:
        """The Parzen estimator of these finished trials and running ones, in number order,
        over those that have every parameter of ``search_space`` (as ``_get_internal_repr``)."""
        columns = {n: history.column(n, d)[positions] for n, d in search_space.items()}
        numbers = history.array("number")[positions]
        if running:
            rows = [self._get_params(t, study) for t in running]
            numbers = np.concatenate([numbers, [t.number for t in running]])
            columns = {
                n: np.concatenate([c, [_internal(params, n, search_space[n]) for params in rows]])
                for n, c in columns.items()
            }
        order = np.argsort(numbers, kind="stable")
        complete_rows = np.ones(len(numbers), dtype=bool)
        for column in columns.values():
            complete_rows &= ~np.isnan(column)
        order = order[complete_rows[order]]
        observations = {n: c[order] for n, c in columns.items()}
        return self._parzen_estimator_cls(
            observations, search_space, self._parzen_estimator_parameters
        )


def _internal(params: dict[str, Any], name: str, distribution: BaseDistribution) -> float:
    """``params[name]`` in ``distribution``'s internal form; NaN if absent or not in it (a
    value from before the space was edited: TPE leaves such a trial out)."""
    if name not in params:
        return np.nan
    try:
        return float(distribution.to_internal_repr(params[name]))
    except ValueError:
        return np.nan
