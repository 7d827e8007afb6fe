"""The contract between :class:`~hpo_nb.frontends.panel.Panel` and ``widgets/panel.js``, written
once: the synced traits, the ``trials`` message the kernel sends and the commands the panel sends.

``widgets/PROTOCOL.md`` says what each field means; ``widgets/src/protocol.js`` names the same
traits and commands for the front end, and ``tests/test_widget.py`` checks that both sides agree
(the commands are :class:`~hpo_nb.frontends.console.Console`'s ``_cmd_<name>`` handlers). The
field names here are the JSON names on the wire.

Example: a reset that shows one finished trial::

    message: TrialsMessage = {"kind": "trials", "reset": True, "rows": [row], "total": 1}
"""

from __future__ import annotations

from typing import Any, Literal, TypedDict, get_args, get_type_hints

__all__ = [
    "COMMANDS",
    "TRAITS",
    "ApplyCommand",
    "ButtonCommand",
    "Can",
    "Command",
    "Config",
    "ConfigCommand",
    "ConfigField",
    "DraftCommand",
    "Importance",
    "Options",
    "ParamSpec",
    "Progress",
    "Resource",
    "Space",
    "SpaceDraft",
    "StudyInfo",
    "SyncCommand",
    "TrialRow",
    "TrialsMessage",
]


# -- kernel -> panel: the trials message --------------------------------------------------------
class TrialRow(TypedDict):
    """One finished trial (:func:`hpo_nb.engine.rows.trial_row`); the ``top`` trait's items too."""

    n: int  # trial number
    s: Literal["complete", "pruned", "fail"]  # state
    v: list[float | None] | None  # objective values, None where not finite
    p: dict[str, Any]  # params
    w: str | None  # the worker that ran it
    g: str | None  # the GPU it ran on
    t0: float | None  # start, epoch seconds
    t1: float | None  # end, epoch seconds
    iv: list[list[float | None]]  # intermediate values [step, value], at most CURVE_POINTS
    ps: int | None  # the step it was pruned at
    r: str  # why it failed ("" otherwise)


class TrialsMessage(TypedDict):
    """Finished trials: all the panel should hold (``reset``, the answer to ``sync``: a sample
    of at most ``SYNC_LIMIT`` rows) or the new ones since the last message."""

    kind: Literal["trials"]
    reset: bool
    rows: list[TrialRow]
    total: int  # finished trials the kernel holds


# -- kernel -> panel: synced traits --------------------------------------------------------------
class StudyInfo(TypedDict):
    """The ``study`` trait."""

    name: str
    storage: str  # the storage URL, password hidden
    directions: list[Literal["minimize", "maximize"]]
    objective: str | None  # the objective's name(s), comma separated
    parent: str | None  # the study this one was branched from


class Resource(TypedDict, total=False):
    """One worker's latest figures (:func:`hpo_nb.execution.monitor.worker_stats`); the GPU
    fields only when the worker sees a GPU."""

    worker: str
    address: str
    trial: int | None
    cpu: float  # percent
    rss: int  # bytes
    gpu_utilization: float  # percent
    gpu_memory_used: int  # bytes
    gpu_memory_total: int  # bytes


class Progress(TypedDict):
    """The ``progress`` trait: :meth:`hpo_nb.engine.progress.Progress.to_json`, plus
    ``per_minute``."""

    study: str
    target: int
    directions: list[str]
    state: str  # idle, starting, running, stopping, stopped, completed, converged, failed
    reason: str
    note: str
    finished_before: int
    finished: int
    complete: int
    pruned: int
    failed: int
    running: int
    best_value: float | None
    best_params: dict[str, Any]
    best_number: int | None
    last_failure: str
    sampler: str
    retried: int
    events: list[str]  # the latest ones, "HH:MM:SS text"
    events_total: int
    resources: list[Resource]
    started_at: float
    ended_at: float | None
    summary: str
    per_minute: float | None


class Config(TypedDict):
    """The ``config`` trait: the run settings the next start uses
    (:meth:`hpo_nb.engine.options.RunOptions.panel_settings`); ``config`` commands change them.
    Besides the pickers' four, one key per ``options["fields"]`` entry."""

    sampler: str
    sampler_options: dict[str, Any]
    pruner: str
    pruner_options: dict[str, Any]
    n_trials: int | None
    concurrency: int | None
    trial_timeout: float | None
    retries: int
    stop_after_failures: int
    timeout: float | None
    max_time: float | None
    patience: int | None
    min_delta: float
    seed: int | None


class ConfigField(TypedDict):
    """One run setting the panel shows as an input (``options["fields"]``, in display order).
    Its value is ``config[name]``; an edit sends ``{"cmd": "config", "config": {name: value}}``
    with a number for ``int``/``float``, a string for ``text`` and ``None`` for an empty input."""

    name: str
    label: str
    kind: Literal["int", "float", "text"]
    min: float | None
    nullable: bool  # whether an empty input (None) is allowed
    help: str


class Options(TypedDict):
    """The ``options`` trait: what the setup view offers."""

    samplers: list[str]
    pruners: list[str]
    sampler_options: dict[str, dict[str, Any]]  # each sampler's main options and defaults
    pruner_options: dict[str, dict[str, Any]]
    fields: list[ConfigField]


class ParamSpec(TypedDict, total=False):
    """One parameter of a search space (:class:`hpo_nb.search.space.SearchSpace`'s JSON)."""

    type: Literal["float", "int", "categorical"]
    low: float
    high: float
    step: float | None
    log: bool
    choices: list[Any]
    when: dict[str, list[Any]]


class Space(TypedDict):
    """The ``space`` trait: the space later trials use, and where it comes from."""

    params: dict[str, ParamSpec]
    source: Literal["declared", "discovered", "none"]


class Can(TypedDict):
    """The ``can`` trait: which buttons are enabled."""

    start: bool
    resume: bool
    stop: bool
    stop_now: bool
    apply: bool
    export: bool


class Importance(TypedDict):
    """The ``importance`` trait (empty until enough trials are complete)."""

    params: list[tuple[str, float]]  # most important first
    at: int  # finished trials it was computed at
    evaluator: str


# Every synced trait of the Panel and its JSON type; the ``top`` trait is a list of TrialRow
# (the best trials, best first; with several objectives the Pareto front), ``exports`` the
# files the last export wrote, the str traits are messages ("" for none).
TRAITS: dict[str, Any] = {
    "study": StudyInfo,
    "progress": Progress,
    "config": Config,
    "options": Options,
    "space": Space,
    "draft_error": str,
    "config_error": str,
    "can": Can,
    "status": str,
    "top": list[TrialRow],
    "importance": Importance,
    "exports": list[str],
}


# -- panel -> kernel: commands -------------------------------------------------------------------
class SpaceDraft(TypedDict):
    params: dict[str, ParamSpec]


class SyncCommand(TypedDict):
    """Send me every finished trial again (a sample past ``SYNC_LIMIT``): a reset follows."""

    cmd: Literal["sync"]


class DraftCommand(TypedDict):
    """Validate this space (the answer is the ``draft_error`` trait)."""

    cmd: Literal["draft"]
    space: SpaceDraft


class ApplyCommand(TypedDict):
    """Use this space for later trials."""

    cmd: Literal["apply"]
    space: SpaceDraft


class ConfigCommand(TypedDict):
    """Change these run settings (the answer is ``config`` or ``config_error``)."""

    cmd: Literal["config"]
    config: dict[str, Any]  # some of Config's keys


class ButtonCommand(TypedDict):
    """A run button: no fields."""

    cmd: Literal["start", "stop", "stop_now", "resume", "export"]


Command = SyncCommand | DraftCommand | ApplyCommand | ConfigCommand | ButtonCommand

# Every command name, in the order above: ("sync", "draft", "apply", "config", "start", ...).
COMMANDS: tuple[str, ...] = tuple(
    name for variant in get_args(Command) for name in get_args(get_type_hints(variant)["cmd"])
)
