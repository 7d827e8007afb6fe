"""Search-space presets for common training recipes, in the canonical spec form; merge them.

>>> from hpo_nb import presets
>>> from hpo_nb.search.space import SearchSpace
>>> space = SearchSpace.from_dict({**presets.learning_rate(), **presets.optimizer(("sgd", "adam"))})
>>> space.names
('learning_rate', 'optimizer', 'momentum', 'nesterov', 'beta1', 'beta2')
>>> presets.batch_size(32, 256)["batch_size"]["choices"]
[32, 64, 128, 256]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hpo_nb._errors import HpoError
from hpo_nb.search.space import SearchSpace

__all__ = [
    "batch_size",
    "dropout",
    "ema_decay",
    "label_smoothing",
    "learning_rate",
    "optimizer",
    "training",
    "warmup_ratio",
    "weight_decay",
]

Specs = dict[str, dict[str, Any]]


def _checked(specs: dict[str, Any]) -> Specs:
    """Validate (one-line errors for bad arguments) and return the canonical form."""
    return SearchSpace.from_dict(specs).to_dict()


def _float(low: float, high: float, log: bool = False, **when: Any) -> dict[str, Any]:
    spec = {"type": "float", "low": low, "high": high, "log": log}
    return {**spec, "when": when} if when else spec


def learning_rate(low: float = 1e-5, high: float = 1e-1) -> Specs:
    """``learning_rate``: a float on a log scale."""
    return _checked({"learning_rate": _float(low, high, log=True)})


def batch_size(low: int = 16, high: int = 512) -> Specs:
    """``batch_size``: the powers of two between ``low`` and ``high``, as categorical choices."""
    sizes = [2**k for k in range(64) if low <= 2**k <= high]
    if not sizes:
        raise HpoError(f"batch_size: no power of two lies in [{low}, {high}]; widen the range")
    return _checked({"batch_size": sizes})


def optimizer(choices: Sequence[str] = ("sgd", "adam", "adamw")) -> Specs:
    """``optimizer`` and its knobs: ``momentum``/``nesterov`` for sgd, ``beta1``/``beta2`` for
    adam and adamw (only for the optimizers among ``choices``)."""
    choices = list(choices)
    specs: dict[str, Any] = {"optimizer": choices}
    if "sgd" in choices:
        sgd = {"optimizer": ["sgd"]}
        specs["momentum"] = _float(0.0, 0.99, optimizer=["sgd"])
        specs["nesterov"] = {"type": "categorical", "choices": [True, False], "when": sgd}
    adams = [c for c in choices if c in ("adam", "adamw")]
    if adams:
        specs["beta1"] = _float(0.8, 0.99, optimizer=adams)
        specs["beta2"] = _float(0.9, 0.9999, optimizer=adams)
    return _checked(specs)


def weight_decay(low: float = 1e-6, high: float = 1e-1) -> Specs:
    """``weight_decay``: a float on a log scale."""
    return _checked({"weight_decay": _float(low, high, log=True)})


def warmup_ratio(high: float = 0.2) -> Specs:
    """``warmup_ratio``: the fraction of steps spent warming up, from 0 to ``high``."""
    return _checked({"warmup_ratio": _float(0.0, high)})


def dropout(high: float = 0.5) -> Specs:
    """``dropout``: a probability from 0 to ``high``."""
    return _checked({"dropout": _float(0.0, high)})


def label_smoothing(high: float = 0.2) -> Specs:
    """``label_smoothing``: from 0 to ``high``."""
    return _checked({"label_smoothing": _float(0.0, high)})


def ema_decay(low: float = 0.9, high: float = 0.9999) -> Specs:
    """``ema_decay``: a float on a linear scale (a log scale barely differs this close to 1)."""
    return _checked({"ema_decay": _float(low, high)})


def training() -> Specs:
    """Every preset above, merged: a space for a typical neural-network training recipe."""
    return {
        **learning_rate(),
        **batch_size(),
        **optimizer(),
        **weight_decay(),
        **warmup_ratio(),
        **dropout(),
        **label_smoothing(),
        **ema_decay(),
    }
