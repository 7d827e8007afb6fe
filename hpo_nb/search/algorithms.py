"""Samplers and pruners by name, with options: thin factories over Optuna's own classes.

>>> make_sampler("tpe", seed=0, options={"n_startup_trials": 5})  # doctest: +ELLIPSIS
<hpo_nb.search.tpe.HistoryTPESampler object at ...>
"""

from __future__ import annotations

import ast
import importlib.util
import inspect
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import optuna
from optuna.trial import FrozenTrial

from hpo_nb import _optuna
from hpo_nb._errors import HpoError
from hpo_nb.search.cmaes import HistoryCmaEsSampler
from hpo_nb.search.context import Context
from hpo_nb.search.tpe import HistoryTPESampler

__all__ = [
    "PRUNERS",
    "SAMPLERS",
    "explain_prune",
    "main_options",
    "make_pruner",
    "make_sampler",
    "parse_options",
]


def _gp(seed: int | None, options: dict[str, Any], ctx: Context) -> optuna.samplers.BaseSampler:
    if importlib.util.find_spec("torch") is None or importlib.util.find_spec("scipy") is None:
        raise HpoError("the gp sampler needs PyTorch and SciPy: pip install 'hpo_nb[gp]'")
    return optuna.samplers.GPSampler(seed=seed, **{"warn_independent_sampling": False, **options})


def _cmaes(seed: int | None, options: dict[str, Any], ctx: Context) -> optuna.samplers.BaseSampler:
    if ctx.space is not None and not ctx.space.is_numeric:
        raise HpoError(
            "the cmaes sampler needs a numeric space without conditions; use tpe or auto"
        )
    return HistoryCmaEsSampler(seed=seed, **{"warn_independent_sampling": False, **options})


def _grid(seed: int | None, options: dict[str, Any], ctx: Context) -> optuna.samplers.BaseSampler:
    options = dict(options)
    grid = options.pop("search_space", None)
    points = options.pop("points", 5)
    if grid is None:
        if ctx.space is None:
            raise HpoError(
                "the grid sampler needs a search space: pass --space, or the values with "
                "--sampler-opt search_space={'x': [1, 2, 3]}"
            )
        grid = ctx.space.grid(points)
    if not isinstance(grid, Mapping) or not all(
        isinstance(v, Sequence) and not isinstance(v, str) and len(v) for v in grid.values()
    ):
        raise HpoError("grid search_space must map each parameter to a non-empty list of values")
    return optuna.samplers.GridSampler(dict(grid), seed=seed, **options)


def _simple(cls: type) -> Callable[[int | None, dict[str, Any], Context], Any]:
    def build(seed: int | None, options: dict[str, Any], ctx: Context) -> Any:
        # Conditional parameters are sampled independently by design; Optuna's warning about
        # it, once per parameter and trial, would flood the notebook.
        flag = inspect.signature(cls).parameters.get("warn_independent_sampling")
        if flag is not None and flag.default is True:
            options = {"warn_independent_sampling": False, **options}
        return cls(seed=seed, **options)

    return build


def _auto(seed: int | None, options: dict[str, Any], ctx: Context) -> optuna.samplers.BaseSampler:
    from hpo_nb.search.auto import AutoSampler

    return AutoSampler(seed=seed, context=ctx, **options)


_Factory = Callable[[int | None, dict[str, Any], Context], optuna.samplers.BaseSampler]

# name -> (factory, the class whose keyword arguments are its options)
SAMPLERS: dict[str, tuple[_Factory, Any]] = {
    "auto": (_auto, None),
    # Optuna 5's TPE defaults: multivariate (single objective) and constant liar.
    # Optuna's TPE reading only the trials finished since its last suggestion (search/tpe.py).
    "tpe": (_simple(HistoryTPESampler), optuna.samplers.TPESampler),
    "gp": (_gp, optuna.samplers.GPSampler),
    "cmaes": (_cmaes, optuna.samplers.CmaEsSampler),
    "nsga2": (_simple(optuna.samplers.NSGAIISampler), optuna.samplers.NSGAIISampler),
    "nsga3": (_simple(optuna.samplers.NSGAIIISampler), optuna.samplers.NSGAIIISampler),
    "random": (_simple(optuna.samplers.RandomSampler), optuna.samplers.RandomSampler),
    "grid": (_grid, optuna.samplers.GridSampler),
    "qmc": (_simple(optuna.samplers.QMCSampler), optuna.samplers.QMCSampler),
}

PRUNERS: dict[str, Callable[..., optuna.pruners.BasePruner]] = {
    "median": optuna.pruners.MedianPruner,
    "percentile": lambda percentile=25.0, **kw: optuna.pruners.PercentilePruner(percentile, **kw),
    "sha": optuna.pruners.SuccessiveHalvingPruner,
    "hyperband": optuna.pruners.HyperbandPruner,
    "threshold": optuna.pruners.ThresholdPruner,
    "patient": lambda patience=3, min_delta=0.0, **kw: optuna.pruners.PatientPruner(
        optuna.pruners.MedianPruner(**kw), patience, min_delta=min_delta
    ),
    "wilcoxon": optuna.pruners.WilcoxonPruner,
    "none": optuna.pruners.NopPruner,
}

# The options a pruner takes (for the name check and the help), when not its class's own.
_PRUNER_OPTIONS = {
    "percentile": ["percentile", *inspect.signature(optuna.pruners.MedianPruner).parameters],
    "patient": [
        "patience",
        "min_delta",
        *inspect.signature(optuna.pruners.MedianPruner).parameters,
    ],
}
_EXTRA_SAMPLER_OPTIONS = {"grid": ["points"], "auto": ["gp_max_trials", "gp_max_seconds"]}


# The options a picker shows first (any other still works through --sampler-opt/--pruner-opt).
_MAIN_OPTIONS = {
    "tpe": ["n_startup_trials", "n_ei_candidates", "multivariate", "constant_liar"],
    "gp": ["n_startup_trials", "deterministic_objective"],
    "cmaes": ["n_startup_trials", "sigma0", "popsize"],
    "nsga2": ["population_size", "crossover_prob", "mutation_prob"],
    "nsga3": ["population_size", "crossover_prob", "mutation_prob"],
    "grid": ["points"],
    "qmc": ["qmc_type", "scramble"],
    "median": ["n_startup_trials", "n_warmup_steps", "interval_steps"],
    "percentile": ["percentile", "n_startup_trials", "n_warmup_steps"],
    "sha": ["min_resource", "reduction_factor"],
    "hyperband": ["min_resource", "max_resource", "reduction_factor"],
    "threshold": ["lower", "upper", "n_warmup_steps"],
    "patient": ["patience", "min_delta", "n_warmup_steps"],
    "wilcoxon": ["p_threshold", "n_startup_steps"],
}
_OPTION_DEFAULTS = {"points": 5, "percentile": 25.0, "patience": 3, "min_delta": 0.0}


def main_options() -> dict[str, dict[str, dict[str, Any]]]:
    """For the panel's pickers: each sampler's and pruner's main options with their defaults
    (``None`` where Optuna decides)."""

    def defaults(name: str, factory: Any) -> dict[str, Any]:
        params = inspect.signature(factory).parameters if factory is not None else {}
        out = {}
        for option in _MAIN_OPTIONS.get(name, []):
            default = params[option].default if option in params else None
            if default is inspect.Parameter.empty or option in _OPTION_DEFAULTS:
                default = _OPTION_DEFAULTS.get(option)
            out[option] = default if isinstance(default, (int, float, str, type(None))) else None
        return out

    pruner_classes = {
        "percentile": optuna.pruners.MedianPruner,
        "patient": optuna.pruners.MedianPruner,
    }
    return {
        "sampler_options": {n: defaults(n, cls) for n, (_, cls) in SAMPLERS.items()},
        "pruner_options": {n: defaults(n, pruner_classes.get(n, f)) for n, f in PRUNERS.items()},
    }


def parse_options(pairs: Sequence[str] | Mapping[str, Any] | None) -> dict[str, Any]:
    """``["n_startup_trials=5", "qmc_type=halton"]`` -> ``{"n_startup_trials": 5, ...}``.

    Values are Python literals when they parse as one (numbers, True/False/None, lists, dicts),
    else strings; ``true``/``false``/``none`` are accepted too.
    """
    if pairs is None:
        return {}
    if isinstance(pairs, Mapping):
        return dict(pairs)
    options: dict[str, Any] = {}
    for pair in pairs:
        if not isinstance(pair, str):
            raise HpoError(f"option {pair!r} is not key=value text (e.g. n_startup_trials=5)")
        key, sep, text = pair.partition("=")
        if not sep or not key.strip():
            raise HpoError(f"option {pair!r} is not key=value (e.g. n_startup_trials=5)")
        lowered = {"true": True, "false": False, "none": None, "null": None}
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            value = lowered.get(text.strip().lower(), text)
        except (TypeError, MemoryError, RecursionError):  # e.g. {[1]: 2}, or nested too deep
            raise HpoError(
                f"option {key.strip()}: {text[:40]!r} is not a value Python can read as a "
                "literal (a number, string, list, dict...)"
            ) from None
        options[key.strip()] = value
    return options


def _check_names(kind: str, name: str, options: Mapping[str, Any], valid: list[str]) -> None:
    for key in options:
        if key == "seed":
            raise HpoError(f"{kind} {name}: pass the seed with --seed, not as an option")
        if key not in valid:
            listed = ", ".join(sorted(valid)) or "none"
            raise HpoError(f"unknown option {key!r} for {kind} {name}: valid options are {listed}")


def _check_types(kind: str, name: str, options: Mapping[str, Any], classes: list[Any]) -> None:
    """An option whose default is a bool, an int, a float or a string takes a value of that
    type (an int where a float is the default): a wrong one fails here, in one line, rather
    than at the study's first suggestion."""
    defaults: dict[str, Any] = {}
    for cls in classes:
        if cls is None:
            continue
        for option, param in inspect.signature(cls).parameters.items():
            if param.default is not inspect.Parameter.empty:
                defaults.setdefault(option, param.default)
    for option, value in options.items():
        default = defaults.get(option)
        if default is None or value is None:
            continue
        # A string default may be a sentinel ("auto") beside numbers: only numbers and
        # switches are checked.
        if type(default) not in (bool, int, float):
            continue
        expected = (float, int) if type(default) is float else (type(default),)
        if not isinstance(value, expected) or (isinstance(value, bool) and bool not in expected):
            raise HpoError(
                f"{kind} {name}: option {option} must be of type {type(default).__name__}, "
                f"like its default {default!r}, got {value!r}"
            )


def _sampler_options(name: str) -> list[str]:
    cls = SAMPLERS[name][1]
    params = list(inspect.signature(cls).parameters) if cls is not None else []
    return [p for p in params if p != "seed"] + _EXTRA_SAMPLER_OPTIONS.get(name, [])


def make_sampler(
    name: str,
    seed: int | None = None,
    options: Mapping[str, Any] | None = None,
    context: Context | None = None,
) -> optuna.samplers.BaseSampler:
    """A sampler by name: ``auto`` (the default), ``tpe``, ``gp``, ``cmaes``, ``nsga2``,
    ``nsga3``, ``random``, ``grid`` or ``qmc``, with Optuna's keyword arguments as options."""
    if name not in SAMPLERS:
        raise HpoError(f"unknown sampler {name!r}: choose from {', '.join(SAMPLERS)}")
    options = dict(options or {})
    _check_names("sampler", name, options, _sampler_options(name))
    _check_types("sampler", name, options, [SAMPLERS[name][1]])
    factory = SAMPLERS[name][0]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return factory(seed, options, context or Context())
    except HpoError:
        raise
    except (TypeError, ValueError) as e:
        raise HpoError(f"sampler {name}: {_first_line(e)}") from None


def make_pruner(name: str, options: Mapping[str, Any] | None = None) -> optuna.pruners.BasePruner:
    """A pruner by name: ``median`` (the default), ``percentile``, ``sha``, ``hyperband``,
    ``threshold``, ``patient``, ``wilcoxon`` or ``none``, with Optuna's keyword arguments."""
    factory = PRUNERS.get(name)
    if factory is None:
        raise HpoError(f"unknown pruner {name!r}: choose from {', '.join(PRUNERS)}")
    options = dict(options or {})
    valid = _PRUNER_OPTIONS.get(name) or list(inspect.signature(factory).parameters)
    _check_names("pruner", name, options, valid)
    _check_types("pruner", name, options, [factory, optuna.pruners.MedianPruner])
    if name == "threshold" and options.get("lower") is None and options.get("upper") is None:
        raise HpoError("pruner threshold needs --pruner-opt lower=X and/or upper=Y")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return factory(**options)
    except (TypeError, ValueError) as e:
        raise HpoError(f"pruner {name}: {_first_line(e)}") from None


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def explain_prune(
    pruner: optuna.pruners.BasePruner, study: optuna.Study, trial: FrozenTrial, number: int
) -> str:
    """Why trial ``number`` was pruned, for the event feed:
    ``trial 17 pruned at step 5: 0.81 vs median 0.62``."""
    step = trial.last_step
    if step is None:
        return f"trial {number} pruned before it reported a value"
    value = trial.intermediate_values[step]
    text = f"trial {number} pruned at step {step}: {value:.4g}"
    if isinstance(pruner, optuna.pruners.PercentilePruner):
        done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        peers = [t.intermediate_values[step] for t in done if step in t.intermediate_values]
        if peers:
            percentile = asked = _optuna.percentile_of(pruner)
            if study.direction == optuna.study.StudyDirection.MAXIMIZE:
                percentile = 100 - percentile
            label = "median" if asked == 50 else f"{asked:g}th percentile"
            return f"{text} vs {label} {float(np.nanpercentile(peers, percentile)):.4g}"
    if isinstance(pruner, optuna.pruners.ThresholdPruner):
        lower, upper = _optuna.threshold_bounds(pruner)
        return f"{text} outside [{lower}, {upper}]"
    return f"{text} ({type(pruner).__name__})"
