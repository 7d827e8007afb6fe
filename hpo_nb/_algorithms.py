"""Samplers and pruners by name: thin factories over Optuna's own classes."""

from __future__ import annotations

from collections.abc import Callable

import optuna

from ._errors import HpoError

__all__ = ["PRUNERS", "SAMPLERS", "make_pruner", "make_sampler"]

SAMPLERS: dict[str, Callable[[int | None], optuna.samplers.BaseSampler]] = {
    "tpe": lambda seed: optuna.samplers.TPESampler(seed=seed),
    "random": lambda seed: optuna.samplers.RandomSampler(seed=seed),
}

PRUNERS: dict[str, Callable[[], optuna.pruners.BasePruner]] = {
    "median": optuna.pruners.MedianPruner,
    "none": optuna.pruners.NopPruner,
}


def make_sampler(name: str, seed: int | None = None) -> optuna.samplers.BaseSampler:
    """A sampler by name (``tpe``, ``random``)."""
    factory = SAMPLERS.get(name)
    if factory is None:
        raise HpoError(f"unknown sampler {name!r}: choose from {', '.join(SAMPLERS)}")
    return factory(seed)


def make_pruner(name: str) -> optuna.pruners.BasePruner:
    """A pruner by name (``median``, ``none``)."""
    factory = PRUNERS.get(name)
    if factory is None:
        raise HpoError(f"unknown pruner {name!r}: choose from {', '.join(PRUNERS)}")
    return factory()
