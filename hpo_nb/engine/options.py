"""One set of run options for every front door: ``%hpo_run``'s flags, :func:`hpo_nb.run`'s
keyword arguments, the study's recorded configuration (for ``%hpo_resume``) and the panel's
run settings are all :class:`RunOptions` fields, by the same names.

>>> o = RunOptions(n_trials=50, sampler="tpe", trial_timeout=30)
>>> RunOptions.from_json(o.to_json()) == o
True
>>> RunOptions(n_trials=0)
Traceback (most recent call last):
...
hpo_nb._errors.HpoError: n_trials must be an integer >= 1, got 0
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import optuna

from hpo_nb._errors import HpoError
from hpo_nb.search.algorithms import PRUNERS, SAMPLERS, parse_options
from hpo_nb.search.objective import DIRECTIONS
from hpo_nb.search.space import SearchSpace

__all__ = ["OptionSpec", "RunOptions", "option_specs", "panel_fields"]

Check = Callable[[str, Any], Any]  # (option name, value) -> the value, normalized; or HpoError


@dataclasses.dataclass(frozen=True)
class OptionSpec:
    """How one option is checked, written as a flag, recorded, and shown in the panel."""

    help: str
    check: Check
    text_type: type | None = None  # what a flag's text converts to before the check
    metavar: str | None = None
    flag: str | None = None  # default: --<name with dashes>
    choices: tuple[str, ...] | None = None
    many: bool = False  # the flag takes several values (nargs="+")
    repeat: bool = False  # the flag may be given several times (its values add up)
    switch: bool = False  # a flag without a value (store_true)
    reads: str | None = None  # a flag's text names a notebook variable, or is a "space"/"literal"
    recorded: bool = True  # kept in the study's configuration; %hpo_resume runs with it again
    panel: str | None = None  # its label among the panel's run settings (None: not there)
    minimum: float | None = None  # the least value the panel's input offers

    @property
    def panel_kind(self) -> str:
        """How the panel edits it: a number ("int", "float"), "text", or a "picker" (choices,
        with options)."""
        if self.choices is not None or self.repeat:
            return "picker"
        return {int: "int", float: "float"}.get(self.text_type, "text")  # type: ignore[arg-type]


# -- checks -----------------------------------------------------------------------------------
def _count(minimum: int) -> Check:
    def check(name: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise HpoError(f"{name} must be an integer >= {minimum}, got {value!r}")
        return value

    return check


def _seconds(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise HpoError(f"{name} must be a positive number of seconds, got {value!r}")
    return float(value)


def _non_negative(name: str, value: Any) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0
    if not ok or math.isinf(value):
        raise HpoError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


def _integer(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise HpoError(f"{name} must be an integer, got {value!r}")
    return value


def _text(name: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise HpoError(f"{name} must be a non-empty string, got {value!r}")
    return value.strip()


def _switch(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise HpoError(f"{name} must be True or False, got {value!r}")
    return value


def _algorithm(table: Mapping[str, Any], base: type, kind: str) -> Check:
    def check(name: str, value: Any) -> Any:
        if isinstance(value, base):
            return value  # an Optuna object (hpo_nb.run only; recorded by its class's name)
        if not isinstance(value, str) or value not in table:
            raise HpoError(f"unknown {kind} {value!r}: choose from {', '.join(table)}")
        return value

    return check


def _key_values(name: str, value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        value = [value]
    if isinstance(value, Sequence):
        value = parse_options(list(value))
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise HpoError(f"{name} must map option names to values, got {value!r}")
    return dict(value)


def _space(name: str, value: Any) -> SearchSpace:
    return SearchSpace.parse(value)


def _configs(name: str, value: Any) -> tuple[dict[str, Any], ...]:
    configs = [value] if isinstance(value, Mapping) else value
    if (
        not isinstance(configs, Sequence)
        or isinstance(configs, str)
        or not all(isinstance(c, Mapping) for c in configs)
    ):
        raise HpoError(
            f"{name} takes a dict of parameter values, or a list of them, "
            f"got {type(value).__name__}"
        )
    return tuple(dict(c) for c in configs)


def _direction(name: str, value: Any) -> str:
    if value not in DIRECTIONS:
        raise HpoError(f"unknown {name} {value!r}: use 'minimize' or 'maximize'")
    return str(value)


def _directions(name: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, Sequence) or not value:
        raise HpoError(f"{name} must be a list of 'minimize'/'maximize', got {value!r}")
    return tuple(_direction("direction", d) for d in value)


def _spec(default: Any, **spec: Any) -> Any:
    factory = {"default_factory": default} if callable(default) else {"default": default}
    return dataclasses.field(metadata={"spec": OptionSpec(**spec)}, **factory)


# -- the options ------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class RunOptions:
    """How a study runs; every field is checked here, with a one-line error.

    The fields are, by the same names, ``%hpo_run``'s flags (``n_trials`` is
    ``--n-trials``), :func:`hpo_nb.run`'s keyword arguments, the configuration a study records
    for ``%hpo_resume`` and the panel's run settings. ``None`` means "the default" (see each
    field's help, e.g. ``python -c "import hpo_nb; help(hpo_nb.RunOptions)"``).
    """

    n_trials: int | None = _spec(
        None,
        help="finished trials the study should reach in total (earlier runs count)",
        check=_count(1),
        text_type=int,
        metavar="N",
        panel="trials",
        minimum=1,
    )
    study: str | None = _spec(
        None, help="study name (default: the objective's name)", check=_text, recorded=False
    )
    storage: str | None = _spec(
        None,
        help="database URL or SQLite file (default: hpo.db)",
        check=_text,
        recorded=False,
    )
    sampler: Any = _spec(
        "auto",
        help="search algorithm (default: auto)",
        check=_algorithm(SAMPLERS, optuna.samplers.BaseSampler, "sampler"),
        choices=tuple(SAMPLERS),
        panel="sampler",
    )
    sampler_options: dict[str, Any] = _spec(
        dict,
        help="sampler option, e.g. n_startup_trials=5 (Optuna's keyword arguments)",
        check=_key_values,
        flag="--sampler-opt",
        metavar="KEY=VALUE",
        many=True,
        repeat=True,
        panel="sampler options",
    )
    pruner: Any = _spec(
        "median",
        help="pruning rule (default: median)",
        check=_algorithm(PRUNERS, optuna.pruners.BasePruner, "pruner"),
        choices=tuple(PRUNERS),
        panel="pruner",
    )
    pruner_options: dict[str, Any] = _spec(
        dict,
        help="pruner option, e.g. n_warmup_steps=3",
        check=_key_values,
        flag="--pruner-opt",
        metavar="KEY=VALUE",
        many=True,
        repeat=True,
        panel="pruner options",
    )
    space: SearchSpace | None = _spec(
        None,
        help="declarative search space: a variable, a YAML/JSON file, or YAML/JSON text",
        check=_space,
        metavar="SPACE",
        reads="space",
    )
    narrow: SearchSpace | None = _spec(
        None,
        help="narrower ranges or choices for some of the objective's own suggest_* calls "
        "(a space, as --space takes it)",
        check=_space,
        metavar="SPACE",
        reads="space",
    )
    enqueue: tuple[dict[str, Any], ...] = _spec(
        tuple,
        help="configurations to try first: a variable or a literal (dict or list of dicts)",
        check=_configs,
        metavar="CONFIGS",
        reads="literal",
    )
    workers: int | None = _spec(
        None,
        help="worker processes of the local CPU cluster (default: one per core)",
        check=_count(1),
        text_type=int,
        metavar="K",
    )
    cluster: str | None = _spec(
        None,
        help="auto (default: one worker per GPU when there are GPUs, else CPU workers), "
        "local, cuda, or the address of a running dask scheduler",
        check=_text,
        metavar="auto|local|cuda|ADDRESS",
    )
    gpus: str | None = _spec(
        None,
        help="the GPUs of a cuda cluster, e.g. 0,1 (default: all)",
        check=_text,
        metavar="0,1",
    )
    concurrency: int | None = _spec(
        None,
        help="at most N trials at once (default: one per worker thread)",
        check=_count(1),
        text_type=int,
        metavar="N",
        panel="concurrency",
        minimum=1,
    )
    trial_timeout: float | None = _spec(
        None,
        help="a trial running longer is killed (its process) and marked FAIL",
        check=_seconds,
        text_type=float,
        metavar="SECONDS",
        panel="trial timeout (s)",
        minimum=0,
    )
    retries: int = _spec(
        0,
        help="run a failed (or timed-out) trial's parameters again, up to K times, on another "
        "worker",
        check=_count(0),
        text_type=int,
        metavar="K",
        panel="retries",
        minimum=0,
    )
    stop_after_failures: int = _spec(
        10,
        help="end the run (state failed) once K trials in a row fail with the same error "
        "(0: never)",
        check=_count(0),
        text_type=int,
        metavar="K",
        panel="stop after failures",
        minimum=0,
    )
    timeout: float | None = _spec(
        None,
        help="start no new trial after this many seconds",
        check=_seconds,
        text_type=float,
        metavar="SECONDS",
        panel="timeout (s)",
        minimum=0,
    )
    max_time: float | None = _spec(
        None,
        help="end the run at this time, cancelling running trials",
        check=_seconds,
        text_type=float,
        metavar="SECONDS",
        panel="max time (s)",
        minimum=0,
    )
    patience: int | None = _spec(
        None,
        help="stop when the best value has not improved over N finished trials",
        check=_count(1),
        text_type=int,
        metavar="N",
        panel="patience",
        minimum=1,
    )
    min_delta: float = _spec(
        0.0,
        help="the least change that counts as an improvement (with --patience)",
        check=_non_negative,
        text_type=float,
        metavar="D",
        panel="min delta",
        minimum=0,
    )
    seed: int | None = _spec(
        None,
        help="sampler seed (a serial run is then reproducible)",
        check=_integer,
        text_type=int,
        panel="seed",
    )
    ci_trials: int | None = _spec(
        None,
        help="when the CI environment variable is set: N trials and a fixed seed",
        check=_count(1),
        text_type=int,
        metavar="N",
    )
    retry_failed: bool = _spec(
        False,
        help="re-run the trials a dead kernel left behind, with the same parameters",
        check=_switch,
        switch=True,
        recorded=False,
    )
    direction: str | None = _spec(
        None,
        help="override the objective's direction",
        check=_direction,
        choices=DIRECTIONS,
    )
    directions: tuple[str, ...] | None = _spec(
        None,
        help="override the objective's directions (one per returned value)",
        check=_directions,
        choices=DIRECTIONS,
        metavar="D",
        many=True,
    )

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if value is not None and value != field.default:
                spec: OptionSpec = field.metadata["spec"]
                object.__setattr__(self, field.name, spec.check(field.name, value))
        if self.direction is not None and self.directions:
            raise HpoError("give either direction or directions, not both")
        # Which cluster takes workers or gpus depends on the machine: see cluster.check.
        if self.patience is not None and self.directions and len(self.directions) > 1:
            raise HpoError("patience needs a single objective (the best value must be one number)")

    def __repr__(self) -> str:
        changed = ", ".join(f"{k}={_jsonable(v)!r}" for k, v in self.changed().items())
        return f"RunOptions({changed})"

    def replace(self, **changes: Any) -> RunOptions:
        """A copy with ``changes`` (checked); an unknown name is a one-line error."""
        _known(changes)
        return dataclasses.replace(self, **changes)

    @classmethod
    def of(cls, **options: Any) -> RunOptions:
        """``RunOptions(**options)`` where an unknown name is a one-line error."""
        _known(options)
        return cls(**options)

    def for_ci(self, environ: Mapping[str, str]) -> RunOptions:
        """With ``ci_trials`` and the CI environment variable set: that many trials, and seed 0
        unless a seed was given."""
        if self.ci_trials is None or not environ.get("CI"):
            return self
        return self.replace(n_trials=self.ci_trials, seed=0 if self.seed is None else self.seed)

    def to_json(self, *, recorded_only: bool = False) -> dict[str, Any]:
        """The options as JSON (a space as its spec, an Optuna object by its class's name)."""
        out = {}
        for field in dataclasses.fields(self):
            if recorded_only and not field.metadata["spec"].recorded:
                continue
            out[field.name] = _jsonable(getattr(self, field.name))
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RunOptions:
        """Options from :meth:`to_json` (keys of other fields, or of older records, ignored)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names and v is not None})

    def panel_settings(self) -> dict[str, Any]:
        """The fields the panel edits, with their values (JSON)."""
        return {name: _jsonable(getattr(self, name)) for name in panel_fields()}

    def changed(self) -> dict[str, Any]:
        """The fields that differ from their defaults."""
        default = RunOptions()
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if getattr(self, f.name) != getattr(default, f.name)
        }


def option_specs() -> dict[str, OptionSpec]:
    """Each option's spec, by field name, in order."""
    return {f.name: f.metadata["spec"] for f in dataclasses.fields(RunOptions)}


def panel_fields() -> dict[str, OptionSpec]:
    """The options the panel edits, in order."""
    return {name: spec for name, spec in option_specs().items() if spec.panel}


def _known(options: Mapping[str, Any]) -> None:
    names = option_specs()
    for name in options:
        if name not in names:
            raise HpoError(f"unknown run option {name!r}: the options are {', '.join(names)}")


def _jsonable(value: Any) -> Any:
    if isinstance(value, SearchSpace):
        return value.to_dict()
    if isinstance(value, (optuna.samplers.BaseSampler, optuna.pruners.BasePruner)):
        return type(value).__name__
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    return value
