"""The one module of hpo_nb that touches Optuna's private API.

Everything hpo_nb takes from Optuna's private modules, and every private attribute it reads or
writes on an Optuna object, goes through a public name here (``tests/test_optuna_fence.py``
scans the package for any other use). An Optuna release that moves one of them breaks this
module at import, with one line naming what is gone, rather than a run halfway through; the
same test runs the sampler-equivalence tests against the oldest and the newest Optuna 5.x.

One exception: hpo_nb's subclasses of Optuna's samplers (``HistoryTPESampler`` and
``_LeanParzenEstimator`` in ``search/tpe.py``, ``HistoryCmaEsSampler`` in ``search/cmaes.py``,
``_CmaEsStartedOnce`` and ``_GPOnWarpedValues`` in ``search/auto.py``) override and call their
base class's private methods and read its private attributes through ``self``: fencing those
would split each class in two. The methods they override or call are checked here at import
(a renamed one would leave an override silently dead); the attributes, set in ``__init__``,
are covered by the equivalence tests.
"""

from __future__ import annotations

import re
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.pruners import PercentilePruner, ThresholdPruner
from optuna.samplers import CmaEsSampler, GPSampler, TPESampler
from optuna.storages import InMemoryStorage, RDBStorage
from optuna.study import Study
from optuna.trial import FrozenTrial, Trial

__all__ = [
    "NORM_PDF_LOGC",
    "BaseModel",
    "BatchedCategoricalDistributions",
    "FrozenStudy",
    "LazyRandomState",
    "MixtureOfProductDistribution",
    "ParzenEstimator",
    "SearchSpaceTransform",
    "TrialHeartbeatModel",
    "TrialIntermediateValueModel",
    "TrialModel",
    "TrialParamModel",
    "TrialSystemAttributeModel",
    "TrialUserAttributeModel",
    "TrialValueModel",
    "adopt_trial",
    "all_trials",
    "allow_stop",
    "contains",
    "default_gamma",
    "filter_study",
    "fix_param",
    "get_infeasible_trial_score",
    "get_pruned_trial_score",
    "log_gauss_mass",
    "parse_migrations_once",
    "percentile_of",
    "set_trial_system_attr",
    "single_value",
    "stale_trial_ids",
    "stop_requested",
    "study_id",
    "threshold_bounds",
    "trial_id",
    "truncnorm_logpdf",
]


def _gone(what: str) -> ImportError:
    return ImportError(
        f"hpo_nb needs Optuna's private {what}, which Optuna {optuna.__version__} lacks: "
        "hpo_nb/_optuna.py must be updated for this Optuna"
    )


def _missing(error: ImportError) -> str:
    """The module or name a failed ``from ... import`` did not find."""
    found = re.search(r"cannot import name '(\w+)' from '([\w.]+)'", str(error))
    return f"{found[2]}.{found[1]}" if found else f"module {error.name}"


# Optuna's private names, re-exported under public ones, one comment line each on what for.
try:
    # -- optuna._transform
    # The search space as CMA-ES's continuous box (search/cmaes.py).
    from optuna._transform import _SearchSpaceTransform as SearchSpaceTransform

    # -- optuna.distributions (through contains and single_value below)
    from optuna.distributions import _get_single_value

    # -- optuna.pruners (through filter_study below)
    from optuna.pruners import _filter_study

    # -- optuna.samplers
    # Optuna's random state made on first use: AutoSampler's, as Optuna's samplers have.
    from optuna.samplers._lazy_random_state import LazyRandomState

    # The rest of this group is TPE's, for search/tpe.py.
    # Log of the standard normal mass in [a, b], and of its density's constant: its densities.
    from optuna.samplers._tpe._truncnorm import _log_gauss_mass as log_gauss_mass
    from optuna.samplers._tpe._truncnorm import _norm_pdf_logC as NORM_PDF_LOGC

    # The truncated normal log density: its densities of candidates out of bounds.
    from optuna.samplers._tpe._truncnorm import logpdf as truncnorm_logpdf

    # The estimator HistoryTPESampler builds, and subclasses for faster densities.
    from optuna.samplers._tpe.parzen_estimator import _ParzenEstimator as ParzenEstimator

    # A Parzen mixture's categorical dimension, and the mixture: its densities.
    from optuna.samplers._tpe.probability_distributions import (
        _BatchedCategoricalDistributions as BatchedCategoricalDistributions,
    )
    from optuna.samplers._tpe.probability_distributions import (
        _MixtureOfProductDistribution as MixtureOfProductDistribution,
    )

    # TPE's scores of a pruned and an infeasible trial, kept per trial by HistoryTPESampler.
    from optuna.samplers._tpe.sampler import (
        _get_infeasible_trial_score as get_infeasible_trial_score,
    )
    from optuna.samplers._tpe.sampler import _get_pruned_trial_score as get_pruned_trial_score

    # TPE's default size of the good group.
    from optuna.samplers._tpe.sampler import default_gamma

    # -- optuna.storages
    # Optuna's tables and their encodings of non-finite values: engine/writes.py, engine/mirror.py
    # and io/archive.py write and read them with SQLAlchemy Core (BaseModel: all the tables).
    from optuna.storages._rdb.models import (
        BaseModel,
        TrialHeartbeatModel,
        TrialIntermediateValueModel,
        TrialModel,
        TrialParamModel,
        TrialSystemAttributeModel,
        TrialUserAttributeModel,
        TrialValueModel,
    )

    # Optuna's schema checks (through parse_migrations_once below).
    from optuna.storages._rdb.storage import _VersionManager

    # -- optuna.study
    # A study as RDBStorage.get_all_studies lists it (engine/lifecycle.py).
    from optuna.study._frozen import FrozenStudy
except ImportError as e:
    raise _gone(_missing(e)) from None

# The private methods and class attributes hpo_nb calls, overrides or reads.
_USED_ATTRS: dict[Any, tuple[str, ...]] = {
    BaseDistribution: ("_contains",),
    Study: ("_get_trials",),
    InMemoryStorage: ("_update_cache",),
    RDBStorage: ("_get_stale_trial_ids",),
    _VersionManager: ("_create_alembic_script",),
    ParzenEstimator: ("_transform",),
    TPESampler: (
        "_sample_relative",
        "_compute_acquisition_func",
        "_compare",
        "_get_params",
        "_is_multivariate",
    ),
    CmaEsSampler: (
        "_get_trials",
        "_init_optimizer",
        "_restore_optimizer",
        "_split_optimizer_str",
        "_concat_optimizer_attrs",
        "_raise_error_if_multi_objective",
        "_attr_key_generation",
        "_attr_key_optimizer",
    ),
    GPSampler: ("_sample_relative_impl",),
}


def _check_attrs() -> None:
    for owner, names in _USED_ATTRS.items():
        for name in names:
            if not hasattr(owner, name):
                module = getattr(owner, "__module__", None)
                raise _gone(f"{module + '.' if module else ''}{owner.__name__}.{name}")
    memory = InMemoryStorage()  # these are set in __init__: a throwaway one shows them
    for name in ("_studies", "_max_trial_id", "_trial_id_to_study_id_and_number"):
        if not hasattr(memory, name):
            raise _gone(f"InMemoryStorage().{name}")


_check_attrs()


# -- optuna.distributions --------------------------------------------------------------------
def contains(distribution: BaseDistribution, internal: float) -> bool:
    """Whether ``internal`` (a value in internal form) lies in ``distribution``: a worker's and
    the panel's check that a value still fits an edited space."""
    return bool(distribution._contains(internal))


def single_value(distribution: BaseDistribution) -> Any:
    """The only value of a single-valued distribution (a worker resolves it without asking)."""
    return _get_single_value(distribution)


# -- optuna.pruners --------------------------------------------------------------------------
def filter_study(study: Study, trial: FrozenTrial) -> Study:
    """The study a sampler sees for ``trial`` (Hyperband's bracket): the mirror proposes
    values as ``Trial._suggest`` would."""
    return _filter_study(study, trial)


def percentile_of(pruner: PercentilePruner) -> float:
    """The pruner's percentile, for the event feed's "why pruned" line."""
    return float(pruner._percentile)


def threshold_bounds(pruner: ThresholdPruner) -> tuple[float, float]:
    """The pruner's (lower, upper) bounds, infinite where unset, for the event feed."""
    return pruner._lower, pruner._upper


# -- optuna.storages -------------------------------------------------------------------------
def adopt_trial(memory: InMemoryStorage, study_id: int, trial: FrozenTrial) -> int:
    """Put ``trial`` into ``memory``'s study as its next trial, renumbered and given a new id
    in place: ``create_new_trial(template_trial=trial)`` less its deep copy (the mirror loads
    thousands of trials no one else holds). Returns its id in ``memory``."""
    trials = memory._studies[study_id].trials
    memory._max_trial_id += 1
    new_id, number = memory._max_trial_id, len(trials)
    trial.number, trial._trial_id = number, new_id
    memory._trial_id_to_study_id_and_number[new_id] = (study_id, number)
    trials.append(trial)
    memory._update_cache(new_id, study_id)
    return new_id


def stale_trial_ids(rdb: RDBStorage, study_id: int) -> list[int]:
    """The study's RUNNING trials whose heartbeat is older than ``rdb.grace_period`` (Optuna's
    stale-trial rule, which ``engine/records.py`` applies itself)."""
    return list(rdb._get_stale_trial_ids(study_id))


def parse_migrations_once() -> None:
    """Keep Optuna's migration scripts parsed once per process.

    Optuna parses its ~30 migration scripts (alembic) again each time it checks or stamps a
    storage's schema version, several times per storage it opens: 80-200 ms for a new SQLite
    file. They cannot change while the process runs, and the parsed form holds no URL."""
    create = _VersionManager._create_alembic_script
    if getattr(create, "_parsed_once", False):
        return
    parsed: list[Any] = []

    def once(self: Any) -> Any:
        if not parsed:
            parsed.append(create(self))
        return parsed[0]

    once._parsed_once = True  # type: ignore[attr-defined]
    _VersionManager._create_alembic_script = once  # type: ignore[method-assign]


# -- optuna.study ----------------------------------------------------------------------------
def study_id(study: Study | FrozenStudy) -> int:
    """The study's id in its storage."""
    return study._study_id


def all_trials(study: Study, *, use_cache: bool) -> list[FrozenTrial]:
    """Every trial of ``study``, not copied, from the study's per-thread cache if
    ``use_cache``: what Optuna's samplers read (a Hyperband bracket's study gives every trial
    here, as it does to them)."""
    return study._get_trials(deepcopy=False, use_cache=use_cache)


def set_trial_system_attr(study: Study, trial: Trial | FrozenTrial, key: str, value: Any) -> None:
    """Write a system attribute of ``trial`` to the study's storage, as samplers do."""
    study._storage.set_trial_system_attr(trial._trial_id, key, value)


def allow_stop(study: Study) -> None:
    """Let ``study.stop()`` be called from this thread (Optuna allows it only inside its
    optimize loop; the controller's thread is hpo_nb's)."""
    study._thread_local.in_optimize_loop = True


def stop_requested(study: Study) -> bool:
    """Whether the sampler called ``study.stop()`` (a grid sampler's exhausted grid)."""
    return bool(study._stop_flag)


# -- optuna.trial ----------------------------------------------------------------------------
def trial_id(trial: Trial | FrozenTrial) -> int:
    """The trial's id in its storage (not its number)."""
    return trial._trial_id


def fix_param(trial: Trial, name: str, value: Any) -> None:
    """Make ``trial`` take ``value`` for ``name`` as it takes an enqueued value, its stored
    ``fixed_params`` attribute left as it is (the mirror's values drawn ahead)."""
    trial._fixed_params = {**trial._fixed_params, name: value}
