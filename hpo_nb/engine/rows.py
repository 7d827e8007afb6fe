"""Finished trials as compact JSON rows: what views receive, one row per trial, sent once.

A row: ``n`` number, ``s`` state, ``v`` values, ``p`` params, ``w``/``g`` the worker and GPU that
ran it, ``t0``/``t1`` start and end (epoch seconds), ``iv`` intermediate values (at most
:data:`CURVE_POINTS`, the last one kept), ``ps`` the step it was pruned at, ``r`` why it failed.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import Any

from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.trial import FrozenTrial, TrialState

from hpo_nb.engine.records import FAIL_REASON_KEY, TRIAL_KEY

__all__ = ["CURVE_POINTS", "discovered", "downsample", "spec_of", "trial_row"]

CURVE_POINTS = 64
_STATES = {TrialState.COMPLETE: "complete", TrialState.PRUNED: "pruned", TrialState.FAIL: "fail"}


def trial_row(t: FrozenTrial, number: int | None = None) -> dict[str, Any]:
    """The row of finished trial ``t`` (``number``: its number in the storage, if it differs)."""
    ran_on = t.system_attrs.get(TRIAL_KEY) or {}
    steps = sorted(t.intermediate_values)
    if len(steps) > CURVE_POINTS:
        stride = len(steps) / (CURVE_POINTS - 1)
        steps = [steps[int(i * stride)] for i in range(CURVE_POINTS - 1)] + [steps[-1]]
    return {
        "n": t.number if number is None else number,
        "s": _STATES.get(t.state, t.state.name.lower()),
        "v": [_finite(v) for v in t.values] if t.values is not None else None,
        "p": {k: _finite(v) for k, v in t.params.items()},
        "w": ran_on.get("worker"),
        "g": ran_on.get("gpu"),
        "t0": t.datetime_start.timestamp() if t.datetime_start else None,
        "t1": t.datetime_complete.timestamp() if t.datetime_complete else None,
        "iv": [[s, _finite(t.intermediate_values[s])] for s in steps],
        "ps": t.last_step if t.state == TrialState.PRUNED else None,
        "r": str(t.system_attrs.get(FAIL_REASON_KEY) or "") if t.state == TrialState.FAIL else "",
    }


def downsample(rows: Sequence[dict[str, Any]], limit: int, keep: int = 200) -> list[dict[str, Any]]:
    """At most ``limit`` rows in their order: the ``keep`` best and latest, and an even sample
    of the rest (the charts keep their shape and their extremes)."""
    if len(rows) <= limit:
        return list(rows)
    complete = [i for i, r in enumerate(rows) if r["v"] and r["v"][0] is not None]
    best = sorted(complete, key=lambda i: rows[i]["v"][0])
    chosen = {*best[: keep // 2], *best[-keep // 2 :], *range(len(rows) - keep, len(rows))}
    rest = [i for i in range(len(rows)) if i not in chosen]
    chosen.update(random.Random(0).sample(rest, max(0, limit - len(chosen))))
    return [rows[i] for i in sorted(chosen)]


def discovered(trials: Sequence[FrozenTrial]) -> dict[str, BaseDistribution]:
    """The space a define-by-run objective has used so far: each parameter's latest
    distribution, in the order parameters first appeared."""
    seen: dict[str, BaseDistribution] = {}
    for t in trials:
        seen.update(t.distributions)  # first appearance keeps its place, the latest wins
    return seen


def spec_of(dist: BaseDistribution) -> dict[str, Any]:
    """The declarative spec of an Optuna distribution."""
    if isinstance(dist, CategoricalDistribution):
        return {"type": "categorical", "choices": list(dist.choices)}
    kind = "int" if type(dist).__name__ == "IntDistribution" else "float"
    return {
        "type": kind,
        "low": dist.low,  # type: ignore[attr-defined]
        "high": dist.high,  # type: ignore[attr-defined]
        "log": dist.log,  # type: ignore[attr-defined]
        "step": dist.step,  # type: ignore[attr-defined]
    }


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
