"""Declarative search spaces: the JSON contract between Python and the control panel.

A space is an ordered mapping from parameter name to a spec; ``when`` makes a parameter conditional
on earlier ones. A bare list is shorthand for a categorical parameter.

>>> import optuna
>>> space = SearchSpace.from_dict({
...     "optimizer": ["sgd", "adam"],
...     "momentum": {"type": "float", "low": 0.0, "high": 0.99, "when": {"optimizer": "sgd"}},
... })
>>> space.suggest(optuna.trial.FixedTrial({"optimizer": "adam"}))
{'optimizer': 'adam'}
>>> space.to_dict()["momentum"]["when"]
{'optimizer': ['sgd']}
"""

from __future__ import annotations

import dataclasses
import decimal
import functools
import math
import re
import types
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from hpo_nb import _optuna
from hpo_nb._errors import HpoError, one_line

__all__ = ["Param", "SearchSpace", "check_configs"]

KINDS = ("float", "int", "categorical")
_KEYS = {
    "float": ("type", "low", "high", "log", "step", "when"),
    "int": ("type", "low", "high", "log", "step", "when"),
    "categorical": ("type", "choices", "when"),
}
_GRID_ALL = 50  # a numeric range with at most this many values is gridded in full
_DIGITS = 1e15  # a float step is at least 1/_DIGITS of its bounds (a float keeps ~15 digits)
_EXAMPLE = "{'x': {'type': 'float', 'low': 0, 'high': 1}}"


def _fail(name: str, what: str) -> HpoError:
    return HpoError(f"search space: {name!r}: {what}")


def _same(a: Any, b: Any) -> bool:
    """Equality that keeps True apart from 1 (a parameter value against an allowed value)."""
    return isinstance(a, bool) == isinstance(b, bool) and a == b


def _on_grid(low: float, value: float, step: float) -> bool:
    k = (value - low) / step
    return math.isclose(k, round(k), rel_tol=1e-9, abs_tol=1e-8)


def _nth(low: float, k: int, step: float) -> float:
    """``low + k * step`` computed in decimal, so 0.1 steps give 0.3 and not 0.30000000000000004."""
    return float(decimal.Decimal(repr(low)) + k * decimal.Decimal(repr(step)))


@dataclasses.dataclass(frozen=True)
class Param:
    """One parameter: ``kind`` is 'float', 'int' or 'categorical'; ``when`` maps earlier names to
    the values that make it active."""

    name: str
    kind: str
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    choices: tuple[Any, ...] = ()
    when: Mapping[str, tuple[Any, ...]] = dataclasses.field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "when", types.MappingProxyType(dict(self.when)))

    def __reduce__(self) -> tuple[Any, ...]:  # a mappingproxy does not pickle
        fields = (self.name, self.kind, self.low, self.high, self.log, self.step, self.choices)
        return (Param, (*fields, dict(self.when)))

    def __repr__(self) -> str:
        return f"Param({self.name!r}, {self.to_dict()!r})"

    def distribution(self) -> BaseDistribution:
        """The Optuna distribution this parameter is sampled from."""
        if self.kind == "categorical":
            return CategoricalDistribution(self.choices)
        assert self.low is not None and self.high is not None
        if self.kind == "int":
            step = int(self.step or 1)
            return IntDistribution(int(self.low), int(self.high), log=self.log, step=step)
        return FloatDistribution(self.low, self.high, log=self.log, step=self.step)

    def active(self, values: Mapping[str, Any]) -> bool:
        """Whether the condition holds for the values suggested so far."""
        return all(
            ref in values and any(_same(values[ref], v) for v in allowed)
            for ref, allowed in self.when.items()
        )

    def to_dict(self) -> dict[str, Any]:
        """The canonical JSON-able spec."""
        spec: dict[str, Any] = {"type": self.kind}
        if self.kind == "categorical":
            spec["choices"] = list(self.choices)
        else:
            spec.update(low=self.low, high=self.high, log=self.log, step=self.step)
        if self.when:
            spec["when"] = {ref: list(allowed) for ref, allowed in self.when.items()}
        return spec

    def can_take(self, value: Any) -> bool:
        """Whether a suggestion could ever return ``value``."""
        if self.kind == "categorical":
            return any(_same(value, c) for c in self.choices)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        assert self.low is not None and self.high is not None
        if not self.low <= value <= self.high:
            return False
        return self.step is None or _on_grid(self.low, value, self.step)

    def grid(self, points: int) -> list[Any]:
        """The values :meth:`SearchSpace.grid` lists for this parameter."""
        if self.kind == "categorical":
            return list(self.choices)
        low, high = self.low, self.high
        assert low is not None and high is not None
        if self.step is not None:
            count = round((high - low) / self.step) + 1
            if count <= _GRID_ALL or not self.log:
                picks = range(count) if count <= _GRID_ALL else _spread(0, count - 1, points)
                if self.kind == "int":
                    return [int(low + k * self.step) for k in picks]
                return [_nth(low, k, self.step) for k in picks]
        if self.log:
            ratio = math.log(high / low) / (points - 1)
            raw = [low * math.exp(i * ratio) for i in range(points)]
        else:
            raw = [low + i * (high - low) / (points - 1) for i in range(points)]
        raw[0], raw[-1] = low, high
        if self.kind == "int":
            return sorted({round(v) for v in raw})
        return sorted({min(max(float(f"{v:.12g}"), low), high) for v in raw})


def _spread(first: int, last: int, points: int) -> list[int]:
    return sorted({round(first + i * (last - first) / (points - 1)) for i in range(points)})


@dataclasses.dataclass(frozen=True)
class SearchSpace:
    """An immutable, ordered, validated search space; build it with :meth:`from_dict`."""

    params: tuple[Param, ...]

    def __repr__(self) -> str:
        return f"SearchSpace({self.to_dict()!r})"

    def __len__(self) -> int:
        return len(self.params)

    def __iter__(self) -> Iterator[Param]:
        return iter(self.params)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SearchSpace:
        """Validate a mapping ``name -> spec`` (or ``name -> [choices]``) into a space."""
        if not isinstance(data, Mapping):
            raise HpoError(
                "search space must be a mapping of parameter names to specs, "
                f"got {type(data).__name__}; write it like {_EXAMPLE}"
            )
        if not data:
            raise HpoError(f"search space is empty; add at least one parameter, e.g. {_EXAMPLE}")
        names = list(data)
        earlier: dict[str, Param] = {}
        for name, spec in data.items():
            earlier[name] = _param(name, spec, names, earlier)
        return cls(tuple(earlier.values()))

    @classmethod
    def from_yaml(cls, text: str) -> SearchSpace:
        """Parse YAML (or JSON) text; ``1e-5`` reads as a number, as it does in JSON."""
        import yaml

        try:
            data = yaml.load(text, Loader=_yaml_loader())  # a SafeLoader
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f"line {mark.line + 1}" if mark is not None else "the text"
            problem = " ".join(str(getattr(e, "problem", None) or e).split())
            raise HpoError(f"search space: YAML syntax error on {where}: {problem}") from None
        except (ValueError, LookupError, AttributeError, TypeError, OverflowError) as e:
            # PyYAML's constructors on a value that is not what its tag says: !!float "",
            # !!timestamp x, a date such as 2001-02-30
            raise HpoError(
                f"search space: a YAML value cannot be read ({one_line(e)}): check its tag "
                "(!!...) and its format"
            ) from None
        except RecursionError:
            raise HpoError("search space: the YAML is nested too deeply to be a space") from None
        return cls.from_dict({} if data is None else data)

    @classmethod
    def parse(cls, value: SearchSpace | Mapping[str, Any] | str) -> SearchSpace:
        """Accept a space, a mapping, or YAML/JSON text."""
        if isinstance(value, SearchSpace):
            return value
        if isinstance(value, Mapping):
            return cls.from_dict(value)
        if isinstance(value, str):
            return cls.from_yaml(value)
        raise HpoError(
            "search space must be a mapping, YAML/JSON text or a SearchSpace, "
            f"got {type(value).__name__}"
        )

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """The canonical JSON-able form: ``SearchSpace.from_dict(s.to_dict()) == s``."""
        return {p.name: p.to_dict() for p in self.params}

    def suggest(self, trial: Any) -> dict[str, Any]:
        """Suggest every active parameter on ``trial``, in order; returns the values."""
        values: dict[str, Any] = {}
        for p in self.params:
            if not p.active(values):
                continue
            if p.kind == "categorical":
                values[p.name] = trial.suggest_categorical(p.name, list(p.choices))
            elif p.kind == "int":
                step = int(p.step or 1)
                values[p.name] = trial.suggest_int(p.name, p.low, p.high, step=step, log=p.log)
            else:
                values[p.name] = trial.suggest_float(p.name, p.low, p.high, step=p.step, log=p.log)
        return values

    def distributions(self) -> dict[str, BaseDistribution]:
        """Every parameter's Optuna distribution, conditional ones included."""
        return {p.name: p.distribution() for p in self.params}

    def grid(self, points: int = 5) -> dict[str, list[Any]]:
        """Value lists for ``optuna.samplers.GridSampler``.

        Categorical: the choices. Int, or float with a step: every value when there are at most 50,
        else ``points`` values spread on the step. Float without a step: ``points`` values spread
        evenly (geometrically when log), endpoints included.
        """
        if isinstance(points, bool) or not isinstance(points, int) or points < 2:
            raise HpoError(f"grid: points {points!r} must be an integer >= 2")
        return {p.name: p.grid(points) for p in self.params}

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params)

    @property
    def is_conditional(self) -> bool:
        return any(p.when for p in self.params)

    @property
    def has_categorical(self) -> bool:
        return any(p.kind == "categorical" for p in self.params)

    @property
    def is_numeric(self) -> bool:
        """No categorical and no conditional parameters (what CMA-ES needs)."""
        return not (self.has_categorical or self.is_conditional)


def _param(name: Any, spec: Any, names: list[Any], earlier: Mapping[str, Param]) -> Param:
    if not isinstance(name, str) or not name.strip():
        raise HpoError(
            f"search space: parameter name {name!r} is not a non-empty string; rename it"
        )
    if isinstance(spec, (list, tuple)):
        spec = {"type": "categorical", "choices": list(spec)}
    if not isinstance(spec, Mapping):
        raise _fail(name, f"spec {spec!r} is not a mapping or a list of choices; write {_EXAMPLE}")
    kind = spec.get("type")
    valid = ", ".join(map(repr, KINDS))
    if kind is None:
        raise _fail(name, f"missing 'type'; use one of {valid}")
    if kind not in KINDS:
        raise _fail(name, f"unknown type {kind!r}; use one of {valid}")
    unknown = [k for k in spec if k not in _KEYS[kind]]
    if unknown:
        allowed = ", ".join(map(repr, _KEYS[kind]))
        raise _fail(name, f"unknown key {unknown[0]!r} for a {kind}; allowed keys are {allowed}")
    when = _when(name, spec.get("when"), names, earlier)
    if kind == "categorical":
        param = Param(name, kind, choices=_choices(name, spec.get("choices")), when=when)
    else:
        param = _numeric(name, kind, spec, when)
    try:
        param.distribution()  # Optuna's own checks, as a backstop
    except (ValueError, ArithmeticError) as e:  # ArithmeticError: decimal's, on a step
        raise _fail(name, " ".join(str(e).split())) from None
    return param


def _choices(name: str, choices: Any) -> tuple[Any, ...]:
    if not isinstance(choices, (list, tuple)):
        raise _fail(name, f"choices {choices!r} is not a list; write choices: [a, b]")
    if not choices:
        raise _fail(name, "choices is empty; list at least one choice")
    for i, c in enumerate(choices):
        if c is not None and not isinstance(c, (bool, int, float, str)):
            raise _fail(
                name,
                f"choice {c!r} has type {type(c).__name__}; use None, bool, int, float or str",
            )
        if any(_same(c, d) for d in choices[:i]):
            raise _fail(name, f"choice {c!r} is listed twice; list each choice once")
    return tuple(choices)


def _finite(value: Any) -> bool:
    """A finite int or float (an int too large for a float is not one: Optuna computes in
    floats)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def _number(name: str, key: str, value: Any, whole: bool) -> float | int:
    if not _finite(value):
        shown = repr(value)
        shown = shown if len(shown) <= 40 else f"{shown[:30]}... ({len(shown)} characters)"
        raise _fail(name, f"{key} {shown} is not a number; give a finite number")
    if whole and isinstance(value, float):
        if not value.is_integer():
            raise _fail(name, f"int {key} {value!r} is not a whole number; round it or use 'float'")
        value = int(value)
    return value


def _numeric(name: str, kind: str, spec: Mapping[str, Any], when: Mapping[str, Any]) -> Param:
    whole = kind == "int"
    for key in ("low", "high"):
        if key not in spec:
            raise _fail(name, f"missing {key!r}; give both 'low' and 'high'")
    low = _number(name, "low", spec["low"], whole)
    high = _number(name, "high", spec["high"], whole)
    if low > high:
        raise _fail(name, f"low {low!r} is greater than high {high!r}; swap them")
    if not math.isfinite(float(high) - float(low)):
        raise _fail(name, f"[{low!r}, {high!r}] is wider than a float can hold; narrow it")
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise _fail(name, f"log {log!r} is not true or false; write log: true or drop it")
    step = spec.get("step")
    if step is not None:
        step = _number(name, "step", step, whole)
        if step <= 0:
            raise _fail(name, f"step {step!r} is not positive; give a step > 0 or drop it")
    if log and step is not None and not (whole and step == 1):
        raise _fail(name, f"log and step {step!r} cannot be combined (Optuna forbids it); drop one")
    if log and (low < 1 if whole else low <= 0):
        bound = ">= 1" if whole else "> 0"
        raise _fail(name, f"log scale needs low {bound}, got low {low!r}; raise low or drop log")
    if whole:
        step = step or 1
        if (high - low) % step:
            fit = low + (high - low) // step * step
            raise _fail(name, f"step {step} does not divide [{low}, {high}]; use high {fit}")
        return Param(name, kind, int(low), int(high), log, int(step), when=when)
    if step is not None:
        least = max(abs(low), abs(high)) / _DIGITS
        if step < least:  # low + k * step would not be distinct floats, or too many of them
            raise _fail(
                name,
                f"step {step!r} is too small for [{low!r}, {high!r}] (a float keeps 15 "
                f"digits); use a step of at least {least:.3g}",
            )
        if not _on_grid(low, high, step):
            fit = _nth(low, math.floor((high - low) / step), step)
            raise _fail(
                name, f"step {step!r} does not divide [{low!r}, {high!r}]; use high {fit!r}"
            )
        high = _nth(low, round((high - low) / step), step)  # snap away rounding noise
        step = float(step)
        if not _exact(float(low), high, step):  # Optuna would warn and move high
            raise _fail(
                name,
                f"low {low!r} and step {step!r} do not reach {high!r} exactly in floats; "
                "round low or step to fewer digits",
            )
    return Param(name, kind, float(low), float(high), log, step, when=when)


def _exact(low: float, high: float, step: float) -> bool:
    """Whether ``high`` is on the grid by Optuna's own check (in decimal, from the floats as
    printed), which warns and moves ``high`` otherwise."""
    span = decimal.Decimal(str(high)) - decimal.Decimal(str(low))
    return span % decimal.Decimal(str(step)) == 0


def _when(
    name: str, raw: Any, names: list[Any], earlier: Mapping[str, Param]
) -> dict[str, tuple[Any, ...]]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise _fail(name, f"when {raw!r} is not a mapping; write when: {{earlier_param: value}}")
    out: dict[str, tuple[Any, ...]] = {}
    for ref, allowed in raw.items():
        if ref == name:
            raise _fail(name, "when names the parameter itself; refer to an earlier parameter")
        if ref not in earlier:
            if ref in names:
                raise _fail(name, f"when names {ref!r}, defined later; move {name!r} after it")
            known = ", ".join(map(repr, earlier)) or "none"
            raise _fail(name, f"when names unknown parameter {ref!r}; earlier ones are: {known}")
        values = tuple(allowed) if isinstance(allowed, (list, tuple)) else (allowed,)
        if not values:
            raise _fail(name, f"when {ref!r} lists no values; give a value or a non-empty list")
        target = earlier[ref]
        for v in values:
            if not target.can_take(v):
                if target.kind == "categorical":
                    hint = "use one of " + ", ".join(map(repr, target.choices))
                else:
                    hint = f"use a value in [{target.low}, {target.high}]"
                    hint += f" on step {target.step}" if target.step is not None else ""
                raise _fail(name, f"when {ref!r} is {v!r}, which {ref!r} never takes; {hint}")
        out[ref] = values
    return out


@functools.cache
def _yaml_loader() -> type:
    """PyYAML's SafeLoader, also reading ``1e-5`` (no dot) as a float as YAML 1.2 does."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    pattern = re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9][0-9_]*)[eE][-+]?[0-9]+$")
    Loader.add_implicit_resolver("tag:yaml.org,2002:float", pattern, list("-+0123456789."))
    return Loader


def check_configs(
    configs: Sequence[Mapping[str, Any]], known: Mapping[str, Sequence[BaseDistribution]]
) -> None:
    """One-line errors for configurations to enqueue that name a parameter none of ``known``
    (name -> the distributions it was declared or asked with) has, or give a value outside
    every distribution of its parameter. Nothing to check against: nothing is refused."""
    if not known:
        return
    for config in configs:
        for name, value in config.items():
            distributions = known.get(name)
            if not distributions:
                raise HpoError(
                    f"--enqueue names parameter {name!r}, which the objective does not have "
                    f"(its parameters: {', '.join(sorted(known))})"
                )
            if not any(_fits(d, value) for d in distributions):
                raise HpoError(
                    f"--enqueue gives {name}={value!r}, outside its space "
                    f"({_describe(distributions[-1])})"
                )


def check_narrow(
    narrow: Mapping[str, BaseDistribution], declared: Mapping[str, BaseDistribution]
) -> None:
    """A one-line error for a narrowed range that leaves the objective's ``declared`` one
    (a parameter not declared, asked for with computed arguments, is not checked)."""
    for name, edited in narrow.items():
        base = declared.get(name)
        if base is None:
            continue
        if type(edited) is not type(base):
            fits = False
        elif isinstance(base, CategoricalDistribution):
            fits = set(map(repr, edited.choices)) <= set(map(repr, base.choices))  # type: ignore[attr-defined]
        else:
            fits = base.low <= edited.low and edited.high <= base.high  # type: ignore[attr-defined]
        if not fits:
            raise HpoError(
                f"--narrow gives {name} {_describe(edited)}, outside the objective's "
                f"{_describe(base)}: narrow within it"
            )


def _fits(distribution: BaseDistribution, value: Any) -> bool:
    try:
        return _optuna.contains(distribution, distribution.to_internal_repr(value))
    except (ValueError, TypeError):
        return False


def _describe(distribution: BaseDistribution) -> str:
    if isinstance(distribution, CategoricalDistribution):
        return "one of " + ", ".join(repr(c) for c in distribution.choices)
    low, high = distribution.low, distribution.high  # type: ignore[attr-defined]
    return f"from {low} to {high}"
