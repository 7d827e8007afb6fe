"""Optuna's TPE over an incremental view of the history.

Optuna's TPE re-reads every trial on every suggestion: it sorts the finished trials by their
result and converts each one's parameters again, in Python, which costs most of a suggestion
once a study holds thousands of trials. A finished trial never changes, so this sampler keeps
what TPE derives from each finished trial (its result, its pruned and infeasible scores, its
parameters in internal form, column by column) and only adds the trials finished since the
previous suggestion; the split and the columns are then a few NumPy operations, done once per
new history rather than once per parameter. The estimator, the candidates and the acquisition
are Optuna's own (the acquisition is worked out once per distinct candidate: each candidate's
value depends on it alone), so suggestions are the same as ``optuna.samplers.TPESampler``'s
with the same seed (``tests/test_tpe.py`` checks it).

Multi-objective studies and the deprecated ``constraints_func`` take Optuna's own path.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from optuna.distributions import BaseDistribution
from optuna.samplers import TPESampler
from optuna.study import Study, StudyDirection
from optuna.trial import FrozenTrial, TrialState

from hpo_nb import _optuna
from hpo_nb._optuna import (
    BatchedCategoricalDistributions,
    MixtureOfProductDistribution,
    ParzenEstimator,
)

__all__ = ["HistoryTPESampler"]

_USED = (TrialState.COMPLETE, TrialState.PRUNED)
# What TPE derives from each finished trial, one column each.
_ROWS = ("number", "complete", "value", "step", "pruned_value", "infeasible")


class _History:
    """What TPE needs of each finished (complete or pruned) trial, in trial-number order."""

    def __init__(self) -> None:
        self._splits: dict[tuple[StudyDirection, int], tuple[np.ndarray, np.ndarray]] = {}
        self._seen = 0  # trials of the study looked at so far
        self._unfinished: list[int] = []  # positions of trials seen before they finished
        self._ids: set[int] = set()
        self._latest: list[FrozenTrial] = []  # the study's trials at the last update
        self.trials: list[FrozenTrial] = []
        self._buffer = np.empty((len(_ROWS), 0))  # one column per trial, room to grow
        self._columns: dict[tuple[str, BaseDistribution], np.ndarray] = {}

    def update(self, study: Study, all_trials: list[FrozenTrial]) -> None:
        """Add the trials finished since the last call."""
        candidates = self._unfinished + list(range(self._seen, len(all_trials)))
        self._seen, self._unfinished = len(all_trials), []
        self._latest = all_trials
        added = False
        for position in sorted(candidates):
            trial = all_trials[position]
            if not trial.state.is_finished():
                self._unfinished.append(position)
            elif trial.state in _USED and _optuna.trial_id(trial) not in self._ids:
                self._add(study, trial)
                added = True
        if added:
            self._splits = {}

    def _add(self, study: Study, trial: FrozenTrial) -> None:
        step, pruned_value = _optuna.get_pruned_trial_score(trial, study)
        complete = trial.state == TrialState.COMPLETE
        row = {
            "number": trial.number,
            "complete": complete,
            "value": trial.value if complete and trial.value is not None else np.nan,
            "step": step,
            "pruned_value": pruned_value,
            "infeasible": _optuna.get_infeasible_trial_score(trial),
        }
        n = len(self.trials)
        if n == self._buffer.shape[1]:  # full: twice the room, so adding stays O(1) on average
            grown = np.empty((len(_ROWS), 2 * n + 64))
            grown[:, :n] = self._buffer
            self._buffer = grown
        self._buffer[:, n] = [row[k] for k in _ROWS]
        self._ids.add(_optuna.trial_id(trial))
        self.trials.append(trial)

    def __len__(self) -> int:
        return len(self.trials)

    def running(self) -> list[FrozenTrial]:
        """The RUNNING trials as of the last update, in number order (found among the
        unfinished ones rather than by a pass over every trial)."""
        trials = (self._latest[p] for p in self._unfinished)
        return [t for t in trials if t.state == TrialState.RUNNING]

    def array(self, name: str) -> np.ndarray:
        return self._buffer[_ROWS.index(name), : len(self.trials)]

    def column(self, name: str, distribution: BaseDistribution) -> np.ndarray:
        """Parameter ``name`` of every trial in internal form (NaN where a trial lacks it)."""
        key = (name, distribution)
        column = self._columns.get(key, np.empty(0))
        if len(column) < len(self.trials):
            more = [_internal(t.params, name, distribution) for t in self.trials[len(column) :]]
            column = self._columns[key] = np.concatenate([column, np.asarray(more, dtype=float)])
        return column

    def split(self, direction: StudyDirection, n_below: int) -> tuple[np.ndarray, np.ndarray]:
        """Positions of the trials TPE's ``_split_trials`` puts below and above, each in trial
        number order."""
        key = (direction, n_below)
        if key not in self._splits:
            numbers = self.array("number")
            below, above = self._split(direction, n_below)
            self._splits[key] = (
                below[np.argsort(numbers[below], kind="stable")],
                above[np.argsort(numbers[above], kind="stable")],
            )
        return self._splits[key]

    def _split(self, direction: StudyDirection, n_below: int) -> tuple[np.ndarray, np.ndarray]:
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

    def sample_independent(
        self,
        study: Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        if self._own_path_skipped(study):
            return super().sample_independent(study, trial, param_name, param_distribution)
        history = self._history(study)  # its finished trials are those TPE counts at startup
        if len(history) < self._n_startup_trials:
            return self._random_sampler.sample_independent(
                study, trial, param_name, param_distribution
            )
        if self._warn_independent_sampling and self._is_multivariate(study):
            return super().sample_independent(study, trial, param_name, param_distribution)
        space = {param_name: param_distribution}
        return self._sample_from(history, study, trial, space)[param_name]

    def _sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        if search_space == {} or self._own_path_skipped(study):
            return super()._sample_relative(study, trial, search_space)
        history = self._history(study)  # no pass over every trial to count the finished ones
        if len(history) < self._n_startup_trials:
            return {}
        return self._sample_from(history, study, trial, search_space)

    def _own_path_skipped(self, study: Study) -> bool:
        return len(study.directions) > 1 or self._constraints_func is not None

    def _history(self, study: Study) -> _History:
        if "_histories" not in self.__dict__:  # TPESampler's own __init__ is kept as it is
            self._histories = {}
        history = self._histories.setdefault(_optuna.study_id(study), _History())
        history.update(study, _optuna.all_trials(study, use_cache=False))
        return history

    def _sample_from(
        self,
        history: _History,
        study: Study,
        trial: FrozenTrial,
        search_space: dict[str, BaseDistribution],
    ) -> dict[str, Any]:
        running = []
        if self._constant_liar:
            running = [t for t in history.running() if t.number != trial.number]
        if self._gamma is None:
            self._gamma = _optuna.default_gamma
        below, above = history.split(study.direction, self._gamma(len(history)))
        mpe_below = self._estimator(study, search_space, history, below, [])
        mpe_above = self._estimator(study, search_space, history, above, running)
        samples_below = mpe_below.sample(self._rng.rng, self._n_ei_candidates)
        acq_func_vals = self._compute_acquisition_func(samples_below, mpe_below, mpe_above)
        ret = self._compare(samples_below, acq_func_vals)
        for param_name, dist in search_space.items():
            ret[param_name] = dist.to_external_repr(ret[param_name])
        return ret

    def _compute_acquisition_func(
        self, samples: dict[str, np.ndarray], mpe_below: Any, mpe_above: Any
    ) -> np.ndarray:
        """Optuna's acquisition, worked out once per distinct candidate: discrete and
        categorical parameters draw the same few values again and again."""
        table = np.column_stack(list(samples.values()))
        distinct, inverse = np.unique(table, axis=0, return_inverse=True)
        if len(distinct) == len(table):
            return super()._compute_acquisition_func(samples, mpe_below, mpe_above)
        columns = {name: distinct[:, i] for i, name in enumerate(samples)}
        values = super()._compute_acquisition_func(columns, mpe_below, mpe_above)
        return values[inverse.ravel()]

    def _estimator(
        self,
        study: Study,
        search_space: dict[str, BaseDistribution],
        history: _History,
        positions: np.ndarray,
        running: list[FrozenTrial],
    ) -> Any:
        """The Parzen estimator of these finished trials (``positions``, in number order) and
        running ones, in number order, over those that have every parameter of
        ``search_space`` (as ``_get_internal_repr``)."""
        columns = {n: history.column(n, d)[positions] for n, d in search_space.items()}
        if running:
            rows = [self._get_params(t, study) for t in running]
            numbers = np.concatenate(
                [history.array("number")[positions], [t.number for t in running]]
            )
            order = np.argsort(numbers, kind="stable")
            columns = {
                n: np.concatenate([c, [_internal(params, n, search_space[n]) for params in rows]])[
                    order
                ]
                for n, c in columns.items()
            }
        complete_rows = np.ones(len(positions) + len(running), dtype=bool)
        for column in columns.values():
            complete_rows &= ~np.isnan(column)
        if not complete_rows.all():
            columns = {n: c[complete_rows] for n, c in columns.items()}
        cls = self._parzen_estimator_cls
        if cls is ParzenEstimator:
            cls = _LeanParzenEstimator
        return cls(columns, search_space, self._parzen_estimator_parameters)


class _LeanParzenEstimator(ParzenEstimator):
    """Optuna's estimator, its densities worked out in fewer passes over memory."""

    def log_pdf(self, samples_dict: dict[str, np.ndarray]) -> np.ndarray:
        return _log_pdf(self._mixture_distribution, self._transform(samples_dict))


def _log_pdf(mixture: MixtureOfProductDistribution, x: np.ndarray) -> np.ndarray:
    """``mixture.log_pdf(x)``, bit for bit, with fewer temporary arrays.

    The same operations in the same order on each element: per-component terms are computed
    once rather than once per candidate, the out-of-bounds ``np.select`` is skipped when every
    candidate lies within bounds, and the sums are accumulated in place."""
    total: np.ndarray | None = None
    continuous = []
    for i, d in enumerate(mixture.distributions):
        normaliser = None
        if isinstance(d, BatchedCategoricalDistributions):
            term = np.log(d.weights)[:, x[:, i].astype(np.int64)].T
        elif d.step == 0.0:
            continuous.append(i)
            continue
        else:
            term, normaliser = _discrete_log_mass(d, x[:, i])
        if total is None:
            total = term + 0.0  # Optuna adds to zeros: -0.0 becomes 0.0
        else:
            total += term
        if normaliser is not None:
            total -= normaliser
    if continuous:
        term = _continuous_log_pdf([mixture.distributions[i] for i in continuous], x[:, continuous])
        if total is None:
            total = term + 0.0
        else:
            total += term
    if total is None:
        total = np.zeros((len(x), len(mixture.weights)))
    total += np.log(mixture.weights)
    peak = total.max(axis=1)
    peak[np.isneginf(peak)] = 0  # all zero: avoid (-inf) - (-inf)
    total -= peak[:, None]
    np.exp(total, out=total)
    with np.errstate(divide="ignore"):
        return np.log(total.sum(axis=1)) + peak


def _discrete_log_mass(d: Any, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Log probability mass of each candidate's step under each component, and each
    component's log mass within bounds (the truncation's normaliser)."""
    values, rows = np.unique(x, return_inverse=True)
    mu, sigma, columns = _unique_pairs(d.mu, d.sigma)
    left, right = values - d.step / 2, values + d.step / 2
    if d.is_log:
        left, right = np.log(left), np.log(right)
    low, high = (left[:, np.newaxis] - mu) / sigma, (right[:, np.newaxis] - mu) / sigma
    distinct_low, distinct_high, inverse = _unique_pairs(low.ravel(), high.ravel())
    mass = _optuna.log_gauss_mass(distinct_low, distinct_high)[inverse].reshape(low.shape)
    within = _optuna.log_gauss_mass((d.adapted_low - mu) / sigma, (d.adapted_high - mu) / sigma)
    return np.take(mass[rows], columns, axis=1), within[columns]


def _unique_pairs(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Optuna's ``_unique_inverse_2d``: the distinct (a, b) pairs, ordered by a then b, and
    each pair's index among them; one ``lexsort`` instead of its two sorts (about 3x faster
    on the 10,000 components of a large study). The pairs and their order are the same, so
    the masses worked out from them are too."""
    order = np.lexsort((b, a))
    a_order, b_order = a[order], b[order]
    first = np.empty(a.shape, dtype=bool)
    first[:1] = True
    first[1:] = (a_order[1:] != a_order[:-1]) | (b_order[1:] != b_order[:-1])
    inverse = np.empty(a.size, dtype=int)
    inverse[order] = np.cumsum(first) - 1
    return a_order[first], b_order[first], inverse


def _continuous_log_pdf(dists: list[Any], x: np.ndarray) -> np.ndarray:
    """Sum over these continuous dimensions of each candidate's truncated normal log density
    under each component, as Optuna's ``_truncnorm.logpdf`` computes it."""
    x = np.column_stack([np.log(x[:, j]) if d.is_log else x[:, j] for j, d in enumerate(dists)])
    mu = np.asarray([d.mu for d in dists]).T
    sigma = np.asarray([d.sigma for d in dists]).T
    low = np.asarray([d.adapted_low for d in dists])
    high = np.asarray([d.adapted_high for d in dists])
    a, b = (low - mu) / sigma, (high - mu) / sigma
    inside = np.all(sigma > 0) and np.all(a < b) and np.all((x >= low) & (x <= high))
    if not inside:  # rounding is monotonic: within bounds here means within them standardised
        logpdf = _optuna.truncnorm_logpdf(x[:, np.newaxis, :], a=a, b=b, loc=mu, scale=sigma)
        return logpdf.sum(axis=-1)
    z = x[:, np.newaxis, :] - mu
    z /= sigma
    np.square(z, out=z)
    np.negative(z, out=z)
    z /= 2.0
    z -= _optuna.NORM_PDF_LOGC
    z -= _optuna.log_gauss_mass(a, b)
    z -= np.log(sigma)
    return z.sum(axis=-1)


def _internal(params: dict[str, Any], name: str, distribution: BaseDistribution) -> float:
    """``params[name]`` in ``distribution``'s internal form; NaN if absent or not in it (a
    value from before the space was edited: TPE leaves such a trial out)."""
    if name not in params:
        return np.nan
    try:
        return float(distribution.to_internal_repr(params[name]))
    except ValueError:
        return np.nan
