"""``auto``: hpo_nb's choice of search algorithm, made again before every trial.

The rules (first that applies), after the first complete trial (before it: random):

1. conditional parameters -> ``tpe`` (multivariate, constant liar, grouped);
2. several objectives -> ``tpe`` up to ``mo_switch`` complete trials, then ``nsga2``
   (``nsga3`` from four objectives), the population-based algorithms that need a large budget;
3. one objective -> ``gp`` (the most sample-efficient; Optuna's models categorical parameters
   too) while it is cheap: fewer than ``gp_max_trials`` complete trials, at most
   ``gp_max_concurrency`` trials running (its batch acquisition over the running trials' points
   grows slow with many), and, unless a seed asks for exact reproducibility, its last
   suggestion took under ``gp_max_seconds`` and under a tenth of a trial's median duration
   divided by the trials running at once (the sampler must never be what workers wait for);
   then ``cmaes`` warm-started from the complete trials (a large-budget numeric optimizer whose
   cost does not grow with history) over a numeric space, ``tpe`` over one with categorical
   parameters (CMA-ES would draw those at random) or when PyTorch is not installed for GP.

These follow Optuna's own AutoSampler (optunahub), with the cost guard added, GP kept for
categorical parameters (Optuna's takes TPE; on the scikit-learn tasks with categorical
parameters GP needed fewer trials) and two changes to the start that benchmarks/bench_search.py
measured against random search:

- the first trial the chosen algorithm makes (the second of a study run one trial at a time)
  takes the middle of every numeric range (on the log scale where log; categorical parameters
  are left to the algorithm): tuning ranges are mostly drawn around sensible values, and it
  costs one trial;
- GP's random start is Optuna's 10 trials, but 5 on spaces of one or two parameters (with 5,
  auto leads Optuna's GP on 2-D BBOB); on the 4-D gradient-boosting task fewer than 10 cost it
  (60 seeds, against Optuna's GP: 5 trials 0.74 of it, 8 trials 0.76, 10 trials 1.27);
- GP models the objective's values through a Yeo-Johnson power transform fitted to them (as
  HEBO does): a few very bad trials (a diverged run, a loss 100 times the best) no longer
  flatten the model around the good ones. The trials keep their values; only the model sees
  the transform.

An algorithm whose modules are not loaded yet (GP's PyTorch and SciPy, CMA-ES's ``cmaes``: one
or two seconds of imports) is loaded on a background thread while the current algorithm goes on
drawing trials; the switch comes with the first trial after that (at once, blocking, with a
seed: a seeded study must repeat exactly).

The sampler chosen and the reason are recorded on each trial (``hpo_nb:sampler``) and shown by
the widget and ``%hpo_status``.
"""

from __future__ import annotations

import copy
import importlib
import importlib.util
import math
import pickle
import statistics
import sys
import threading
import time
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.samplers import BaseSampler
from optuna.search_space import IntersectionSearchSpace
from optuna.study import Study
from optuna.trial import FrozenTrial, TrialState

from hpo_nb import _optuna
from hpo_nb._optuna import LazyRandomState
from hpo_nb.search.cmaes import HistoryCmaEsSampler, fresh_copy
from hpo_nb.search.context import Context
from hpo_nb.search.tpe import HistoryTPESampler

__all__ = ["SAMPLER_KEY", "AutoSampler"]

SAMPLER_KEY = "hpo_nb:sampler"
_MAXINT32 = (1 << 31) - 1
# GP's random start: Optuna's 10 trials, but 5 on spaces of at most SMALL_SPACE parameters.
GP_STARTUP, GP_STARTUP_SMALL, SMALL_SPACE = 10, 5, 2
# The modules an algorithm loads on its first suggestion (Optuna imports them lazily).
NEEDS: dict[str, tuple[str, ...]] = {"gp": ("torch", "scipy.stats"), "cmaes": ("cmaes",)}


class AutoSampler(BaseSampler):
    """Chooses TPE, GP, CMA-ES or NSGA-II/III from the space, objectives, budget and cost."""

    def __init__(
        self,
        *,
        seed: int | None = None,
        context: Context | None = None,
        gp_max_trials: int = 200,
        gp_max_seconds: float = 1.0,
        gp_max_concurrency: int = 4,
        mo_switch: int = 250,
    ) -> None:
        self._seed = seed
        self._rng = LazyRandomState(seed)
        self._context = context or Context()
        self._gp_max_trials = gp_max_trials
        self._gp_max_seconds = gp_max_seconds
        self._gp_max_concurrency = gp_max_concurrency
        self._mo_switch = mo_switch
        self._gp_available = all(importlib.util.find_spec(m) for m in ("torch", "scipy"))
        self._sampler: BaseSampler = optuna.samplers.RandomSampler(seed=self._next_seed())
        self.choice = "random"
        self.reason = "no complete trial yet"
        self._last_sample_seconds = 0.0
        # (the first trial's parameters' names, conditional, categorical) so far, and the
        # numbers of the complete trials checked
        self._shape: tuple[frozenset[str] | None, bool, bool] = (None, False, False)
        self._shape_checked: set[int] = set()
        self._middle_trial: int | None = None  # the number of the trial at the middle
        self._loading: dict[str, threading.Thread] = {}

    def _next_seed(self) -> int:
        return int(self._rng.rng.randint(_MAXINT32))

    # -- the decision ------------------------------------------------------------------------
    def _decide(self, study: Study) -> tuple[str, str]:
        complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if not complete:
            return "random", "no complete trial yet"
        space = self._context.space
        if space is not None:
            conditional, categorical = space.is_conditional, space.has_categorical
        else:
            conditional, categorical = self._shape_so_far(complete)
        if conditional:
            return "tpe", "conditional parameters"
        n_objectives = len(study.directions)
        if n_objectives > 1:
            if len(complete) < self._mo_switch:
                return "tpe", f"{n_objectives} objectives, {len(complete)} complete trials"
            algorithm = "nsga2" if n_objectives < 4 else "nsga3"
            return algorithm, f"{n_objectives} objectives, {len(complete)} complete trials"
        kind = "mixed" if categorical else "numeric"
        why_not_gp = self._why_not_gp(study, complete, kind)
        if why_not_gp is None:
            return "gp", f"{kind} space, {len(complete)} complete trials"
        after = "cmaes" if self._gp_available and not categorical else "tpe"
        return after, why_not_gp

    def _why_not_gp(self, study: Study, complete: list[FrozenTrial], kind: str) -> str | None:
        if not self._gp_available:
            return f"{kind} space; gp needs PyTorch and SciPy"
        if self.choice not in ("random", "gp"):
            return self.reason  # no way back once switched: keep saying why it switched
        if len(complete) >= self._gp_max_trials:
            return f"{kind} space, {len(complete)} complete trials: gp would grow too slow"
        running = len(study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))
        if running > self._gp_max_concurrency:
            return f"{kind} space, {running} trials at once: too many for gp's batch acquisition"
        if self._seed is None and self.choice == "gp":
            seconds = self._last_sample_seconds
            durations = [
                (t.datetime_complete - t.datetime_start).total_seconds()
                for t in complete[-20:]
                if t.datetime_complete and t.datetime_start
            ]
            budget = statistics.median(durations) / 10 / max(1, running) if durations else 0.0
            if seconds > self._gp_max_seconds or (durations and seconds > budget):
                return f"{kind} space: a gp suggestion took {seconds:.2f} s, too slow here"
        return None

    def _build(self, name: str, study: Study) -> BaseSampler:
        seed = self._next_seed()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if name == "tpe":
                return HistoryTPESampler(
                    seed=seed,
                    multivariate=True,
                    group=self._conditional(),
                    constant_liar=True,
                )
            if name == "gp":
                return _GPOnWarpedValues(
                    seed=seed,
                    deterministic_objective=False,
                    n_startup_trials=self._gp_startup(study),
                )
            if name == "cmaes":
                space = IntersectionSearchSpace().calculate(study)
                source = [
                    t
                    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                    if set(t.params) == set(space)
                ]
                # cmaes' warm start keeps the best tenth of the trials: it needs ten at least.
                return _CmaEsStartedOnce(
                    seed=seed,
                    source_trials=source if len(source) >= 10 else None,
                    warn_independent_sampling=False,
                )
            if name == "nsga2":
                return optuna.samplers.NSGAIISampler(seed=seed)
            if name == "nsga3":
                return optuna.samplers.NSGAIIISampler(seed=seed)
        return optuna.samplers.RandomSampler(seed=seed)

    def _gp_startup(self, study: Study) -> int:
        """Random trials before GP models: fewer on a space of one or two parameters."""
        space = self._context.space
        if space is not None:
            n_params = len(space)
        else:
            first = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))[:1]
            n_params = len(first[0].params) if first else SMALL_SPACE + 1
        return GP_STARTUP_SMALL if n_params <= SMALL_SPACE else GP_STARTUP

    def _shape_so_far(self, complete: list[FrozenTrial]) -> tuple[bool, bool]:
        """(conditional, categorical) as far as the complete trials show (each checked once):
        conditional when two trials have different parameters.

        ``complete`` is in number order, and trials may complete out of it: the unchecked ones
        are found from the end back, which passes only trials that completed meanwhile."""
        names, conditional, categorical = self._shape
        unchecked = len(complete) - len(self._shape_checked)
        for t in reversed(complete):
            if unchecked <= 0:
                break
            if t.number in self._shape_checked:
                continue
            self._shape_checked.add(t.number)
            unchecked -= 1
            names = names if names is not None else frozenset(t.params)
            conditional = conditional or set(t.params) != names
            categorical = categorical or any(
                isinstance(d, CategoricalDistribution) for d in t.distributions.values()
            )
        self._shape = (names, conditional, categorical)
        return conditional, categorical

    def _loaded(self, name: str) -> bool:
        """Whether ``name``'s modules are loaded; if not, start loading them (in the background
        unless seeded)."""
        loader = self._loading.get(name)
        if loader is not None:  # a module being imported is in sys.modules already
            return not loader.is_alive()  # a failed import shows when the algorithm runs
        missing = [m for m in NEEDS.get(name, ()) if m not in sys.modules]
        if not missing:
            return True
        if self._seed is not None:
            _import_all(missing)
            return True
        loader = self._loading[name] = threading.Thread(
            target=_import_all, args=(missing,), name=f"hpo_nb-load-{name}", daemon=True
        )
        loader.start()
        return False

    def _conditional(self) -> bool:
        """Whether the declared space, or else the trials so far, have conditional parameters."""
        space = self._context.space
        return space.is_conditional if space is not None else self._shape[1]

    # -- BaseSampler ---------------------------------------------------------------------------
    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        name, reason = self._decide(study)
        if name != self.choice and not self._loaded(name):
            name, reason = self.choice, f"loading {name} ({reason})"
        if name != self.choice:
            self._sampler = self._build(name, study)
            self.choice = name
        if self._middle_trial is None and name != "random":
            self._middle_trial = trial.number
        self.reason = reason
        _optuna.set_trial_system_attr(study, trial, SAMPLER_KEY, name)
        self._sampler.before_trial(study, trial)

    def infer_relative_search_space(
        self, study: Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        return self._sampler.infer_relative_search_space(study, trial)

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        if trial.number == self._middle_trial:
            return {}  # each parameter goes to sample_independent, which takes the middle
        start = time.perf_counter()
        try:
            return self._sampler.sample_relative(study, trial, search_space)
        finally:
            self._last_sample_seconds = time.perf_counter() - start

    def sample_independent(
        self,
        study: Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        if trial.number == self._middle_trial:
            middle = _middle(param_distribution)
            if middle is not None:
                return middle
        return self._sampler.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(
        self,
        study: Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        self._sampler.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self._rng.rng.seed()
        self._sampler.reseed_rng()


class _CmaEsStartedOnce(HistoryCmaEsSampler):
    """CMA-ES (over its incremental history), its starting state (warm-started from the trials
    so far) worked out once.

    Until one of its own trials completes, Optuna's works the start out again for every trial,
    from every source trial: with 128 trials at once on 500 complete ones, 128 times ~10 ms
    while workers wait. Each trial gets its own copy (its random state is reseeded per trial
    anyway)."""

    _start: tuple[Any, Any] | None = None

    def _init_optimizer(self, trans: Any, direction: optuna.study.StudyDirection) -> Any:
        key = (trans.bounds.tobytes(), direction)
        if self._start is None or self._start[0] != key:
            start = super()._init_optimizer(trans, direction)
            self._start = (key, pickle.loads(pickle.dumps(start)))  # as a stored one reads
        return fresh_copy(self._start[1], self.copies_rng)


class _GPOnWarpedValues(optuna.samplers.GPSampler):
    """Optuna's GP, fitted to the complete trials' values through ``power_warp``."""

    def _sample_relative_impl(
        self,
        study: Study,
        completed_trials: list[FrozenTrial],
        running_trials: list[FrozenTrial],
        search_space: dict[str, BaseDistribution],
    ) -> dict[str, Any]:
        if len(study.directions) == 1:
            sign = 1.0 if study.direction == optuna.study.StudyDirection.MINIMIZE else -1.0
            values = sign * np.array([t.value for t in completed_trials], dtype=float)
            warped = sign * power_warp(values)
            completed_trials = [
                _with_value(t, v) for t, v in zip(completed_trials, warped, strict=True)
            ]
        return super()._sample_relative_impl(study, completed_trials, running_trials, search_space)


def power_warp(losses: np.ndarray) -> np.ndarray:
    """``losses`` (lower is better) through the Yeo-Johnson transform whose power fits them
    best: order kept, a long tail of bad values drawn in. Infinite values count as the worst
    (or best) finite one; fewer than three distinct values are returned as they are."""
    finite = losses[np.isfinite(losses)]
    if len(np.unique(finite)) < 3:
        return losses
    losses = np.clip(losses, finite.min(), finite.max())
    import scipy.stats  # loaded with GP (NEEDS)

    centred = (losses - np.median(losses)) / np.std(losses)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        warped = scipy.stats.yeojohnson(centred)[0]
    return warped if np.all(np.isfinite(warped)) else losses


def _with_value(trial: FrozenTrial, value: float) -> FrozenTrial:
    """A shallow copy of ``trial`` with another value: the study's own trial is left alone."""
    copied = copy.copy(trial)
    copied.value = float(value)
    return copied


def _import_all(modules: Sequence[str]) -> None:
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError:
            return


def _middle(distribution: BaseDistribution) -> float | int | None:
    """The middle of a numeric range (on the log scale where log, on the step grid where
    stepped); None for a categorical parameter, which has none."""
    if not isinstance(distribution, (FloatDistribution, IntDistribution)):
        return None
    low, high = distribution.low, distribution.high
    middle = math.sqrt(low * high) if distribution.log else (low + high) / 2
    step = distribution.step
    if step is not None:
        middle = low + round((middle - low) / step) * step
    if isinstance(distribution, IntDistribution):
        return round(middle)
    return min(high, max(low, middle))
