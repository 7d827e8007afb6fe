"""A study's run: the one object that owns its life, from start to a stated end."""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import threading
import time
import types
import warnings
from collections.abc import Callable
from typing import Any

import cloudpickle
import optuna
from distributed import Client
from optuna.distributions import BaseDistribution
from optuna.storages import RDBStorage

from hpo_nb._errors import HpoError
from hpo_nb._settings import settings
from hpo_nb.engine import interrupts
from hpo_nb.engine.controller import Controller
from hpo_nb.engine.mirror import Mirror
from hpo_nb.engine.options import RunOptions
from hpo_nb.engine.progress import Progress, RunState
from hpo_nb.engine.records import CONFIG_KEY, recover, retry_params
from hpo_nb.engine.writer import wait_for_stranded
from hpo_nb.execution.cluster import check as check_cluster
from hpo_nb.execution.cluster import get_client
from hpo_nb.execution.worker import PickledObjective
from hpo_nb.io.storage import (
    display_url,
    load_or_create_study,
    open_storage,
    storage_url,
    study_distributions,
)
from hpo_nb.search.algorithms import make_pruner, make_sampler
from hpo_nb.search.context import Context
from hpo_nb.search.objective import Objective, as_objective, parse_directions
from hpo_nb.search.space import SearchSpace, check_configs, check_narrow

__all__ = ["ObjectiveChangedWarning", "Run", "active_runs", "find_run", "run", "stop_all"]

_runs_lock = threading.Lock()
_active: dict[tuple[str, str], Run] = {}


class Run:
    """A study running on dask (or finished). Returned by :func:`run` and ``%hpo_run``.

    >>> r = hpo_nb.run(f, n_trials=20)          # doctest: +SKIP
    >>> r.wait().best_params                    # doctest: +SKIP
    """

    def __init__(self, controller: Controller, url: str, objective: Objective) -> None:
        self._controller = controller
        self.storage_url = url  # with its credentials: for opening it, not for showing
        self.storage = display_url(url)
        self.objective = objective  # as given (what the panel's Resume runs again)
        self._thread = threading.Thread(
            target=controller.run, name=f"hpo_nb:{controller.study.study_name}", daemon=True
        )

    # -- life --------------------------------------------------------------------------------
    def _start(self) -> Run:
        self._thread.start()
        return self

    def wait(self, timeout: float | None = None) -> Run:
        """Block until the run ends (or ``timeout`` seconds pass); Ctrl-C stops it cleanly."""
        done = self._controller.done
        with interrupts.watch() as ctrl_c:
            try:
                interrupts.wait(done, timeout, ctrl_c)
            except KeyboardInterrupt:
                self.stop(reason="interrupted")
                deadline = time.monotonic() + 60
                while not done.is_set() and time.monotonic() < deadline:
                    with contextlib.suppress(KeyboardInterrupt):  # the stop is under way
                        done.wait(deadline - time.monotonic())
                ctrl_c.clear()
                raise
        return self

    def stop(self, *, graceful: bool = False, reason: str = "stopped by user") -> Run:
        """Stop the run: running trials are cancelled and marked FAIL with ``reason``.

        With ``graceful=True`` no new trial starts and running trials finish.
        """
        self._controller.stop(graceful=graceful, reason=reason)
        return self

    def narrow(self, space: Any) -> Run:
        """Later trials draw the parameters of ``space`` from its ranges and choices; the
        change must be compatible with the study's history (same kinds, log and choices)."""
        self._controller.narrow(SearchSpace.parse(space).distributions())
        return self

    # -- what it did -------------------------------------------------------------------------
    @property
    def options(self) -> RunOptions:
        """What the run runs with (all its settings; see :class:`hpo_nb.RunOptions`)."""
        return self._controller.options

    @property
    def study(self) -> optuna.Study:
        return self._controller.study

    @property
    def progress(self) -> Progress:
        return self._controller.progress

    @property
    def state(self) -> RunState:
        return self.progress.state

    @property
    def reason(self) -> str:
        return self.progress.reason

    @property
    def done(self) -> bool:
        return self.state.done

    @property
    def rows(self) -> list[dict[str, Any]]:
        """This run's finished trials as view rows, in order (see ``hpo_nb.engine.rows``); the list
        only grows."""
        return self._controller.rows

    def history(self) -> list[dict[str, Any]]:
        """The study's other finished trials as view rows (earlier runs'), from memory."""
        return self._controller.history()

    def distributions(self) -> dict[str, Any]:
        """Every parameter the study's finished trials used, with its latest distribution."""
        return self._controller.distributions()

    def subscribe(self, observer: Callable[[Progress], None]) -> None:
        """Call ``observer(progress)`` now and on every update (a few times a second at most),
        from the run's thread."""
        self._controller.subscribe(observer)

    @property
    def log(self) -> list[str]:
        """What the run's threads logged (Optuna's warnings, say), kept out of the cells."""
        return list(self._controller.log)

    @property
    def n_finished(self) -> int:
        return self.progress.finished

    @property
    def best_trial(self) -> optuna.trial.FrozenTrial:
        """The best complete trial (one objective); a one-line error when there is none."""
        try:
            return self.study.best_trial
        except ValueError:  # Optuna's "Record does not exist."
            last = self.progress.last_failure
            why = f" (last failure: {last})" if last else ""
            raise HpoError(
                f"study {self.study.study_name!r} has no complete trial yet{why}"
            ) from None

    @property
    def best_value(self) -> float:
        value = self.best_trial.value
        assert value is not None
        return value

    @property
    def best_params(self) -> dict[str, Any]:
        return self.best_trial.params

    @property
    def best_trials(self) -> list[optuna.trial.FrozenTrial]:
        """The Pareto front (multi-objective) or the best trial."""
        return self.study.best_trials

    def __repr__(self) -> str:
        return f"<hpo_nb.Run {self.progress.summary()}>"

    def study_attrs(self) -> dict[str, Any]:
        """The study's system attributes, read through the run's own storage."""
        return self._controller.study_attrs()


@interrupts.watched  # a Ctrl-C while it starts, lost or not, stops a run with wait=True
def run(
    objective: Objective | Callable[[Any], Any],
    n_trials: int | None = None,
    *,
    options: RunOptions | None = None,
    wait: bool = False,
    **changes: Any,
) -> Run:
    """Create or resume a study and run it on dask until it has ``n_trials`` finished trials.

    ``n_trials`` counts every finished trial of the study, earlier runs included. Without
    ``wait`` this returns at once and the study runs in the background. The other keyword
    arguments are :class:`hpo_nb.RunOptions` fields (``%hpo_run``'s flags, by the same names),
    applied over ``options``; e.g. ``narrow`` (a space of some parameters) overrides the ranges
    and choices the objective's own ``suggest_*`` calls ask for, as the panel's editor does.

    >>> def f(trial):
    ...     return trial.suggest_float("x", -1, 1) ** 2
    >>> r = hpo_nb.run(f, n_trials=20, concurrency=2, wait=True)   # doctest: +SKIP
    >>> r.best_value < 0.1                                          # doctest: +SKIP
    True
    """
    if n_trials is not None:
        changes["n_trials"] = n_trials
    chosen = (options or RunOptions()).replace(**changes).for_ci(os.environ)
    if chosen.n_trials is None:
        raise HpoError("n_trials is missing: give the number of finished trials to reach")
    handle = _start(as_objective(objective), chosen)
    if wait:
        handle.wait()
    return handle


def _start(base: Objective, options: RunOptions) -> Run:
    """Open (or create) the study, record the options, and start its controller's thread."""
    if options.direction is not None or options.directions:
        base = as_objective(base, parse_directions(options.direction, options.directions))
    obj = base.with_space(options.space) if options.space is not None else base
    if options.patience is not None and len(obj.directions) > 1:
        raise HpoError("--patience needs a single objective (the best value must be one number)")
    context = Context(
        obj.directions,
        obj.space,
        options.n_trials,
        options.concurrency or options.workers or settings.workers,
    )
    sampler = options.sampler
    if isinstance(sampler, str):
        sampler = make_sampler(sampler, options.seed, options.sampler_options, context)
    pruner = options.pruner
    if isinstance(pruner, str):
        pruner = make_pruner(pruner, options.pruner_options)
    check_cluster(options.cluster, options.workers, options.gpus)  # before touching the study
    if options.narrow is not None:
        space = obj.space.distributions() if obj.space is not None else {}
        check_narrow(options.narrow.distributions(), {**obj.literal_distributions(), **space})
    pickled = _pickle(obj)
    url = storage_url(options.storage)
    name = options.study or obj.name
    with _runs_lock:
        current = _active.get((url, name))
        if current is not None and not current.done:
            raise HpoError(
                f"study {name!r} is already running in this kernel: stop it first "
                "(handle.stop() or %hpo_stop) or wait for it"
            )
        rdb = open_storage(url)
        if options.enqueue:  # checked before anything is written
            check_configs(options.enqueue, _known_distributions(obj, options, rdb, name))
        optuna_study, _ = load_or_create_study(rdb, name, obj.directions, sampler, pruner)
        # An earlier run of this kernel that lost its storage writes its results first.
        wait_for_stranded(str(rdb.engine.url), settings.storage_patience)
        orphans = recover(optuna_study, rdb, settings.stale_grace)
        for config in options.enqueue:  # known-good configurations, once each
            optuna_study.enqueue_trial(config, skip_if_exists=True)
        for orphan in orphans if options.retry_failed else []:  # beside the failed attempt
            optuna_study.enqueue_trial(retry_params(orphan), skip_if_exists=False)
        _record_config(rdb, optuna_study, obj, options)
        controller = Controller(
            options=options,
            study=optuna_study,
            mirror=Mirror(rdb, name, sampler, pruner, settings.storage_patience),
            objective=pickled,
            connect=_connect,
            config=settings,
            trial_attrs={"version": obj.fingerprint},
        )
        controller.prepare()
        handle = Run(controller, url, base)
        _active[(url, name)] = handle
    handle._start()
    return handle


def _known_distributions(
    obj: Objective, options: RunOptions, rdb: RDBStorage, name: str
) -> dict[str, list[BaseDistribution]]:
    """Each parameter the objective declares or asks for literally, the edited ranges, and
    those the study's trials used, with their distributions."""
    known = study_distributions(rdb, name)
    declared = [
        obj.literal_distributions(),
        obj.space.distributions() if obj.space is not None else {},
        options.narrow.distributions() if options.narrow is not None else {},
    ]
    for distributions in declared:
        for param, distribution in distributions.items():
            known.setdefault(param, []).append(distribution)
    return known


def _connect(options: RunOptions) -> Client:
    """The cluster a run's options ask for."""
    return get_client(options.cluster, options.workers, options.gpus)


def _record_config(
    rdb: RDBStorage, study: optuna.Study, obj: Objective, options: RunOptions
) -> None:
    """Keep what this run was started with; warn when the objective's code changed."""
    study_id = rdb.get_study_id_from_name(study.study_name)
    previous = rdb.get_study_system_attrs(study_id).get(CONFIG_KEY) or {}
    versions = list(previous.get("versions", []))
    if versions and versions[-1] != obj.fingerprint and previous.get("objective") == obj.name:
        warnings.warn(
            f"objective {obj.name!r} changed since the study's last run (version "
            f"{versions[-1]} -> {obj.fingerprint}); its new trials record the new version",
            ObjectiveChangedWarning,
            stacklevel=3,
        )
    if obj.fingerprint not in versions:
        versions.append(obj.fingerprint)
    config = {"objective": obj.name, "versions": versions, **options.to_json(recorded_only=True)}
    rdb.set_study_system_attr(study_id, CONFIG_KEY, json.loads(json.dumps(config, default=str)))


class ObjectiveChangedWarning(UserWarning):
    """A study resumed with an objective whose code differs from its last run's."""


def _pickle(objective: Objective) -> PickledObjective:
    try:
        return PickledObjective(objective)
    except Exception as e:
        culprit = _unpicklable_global(objective.func)
        what = f"it uses {culprit!r}, which" if culprit else "it"
        raise HpoError(
            f"objective {objective.name!r} cannot be sent to the workers: {what} cannot be "
            f"pickled ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); "
            "create such objects inside the objective"
        ) from None


def _unpicklable_global(func: Callable[..., Any]) -> str | None:
    code = getattr(func, "__code__", None)
    namespace = getattr(func, "__globals__", {})
    stack, names = [code] if code is not None else [], []
    while stack:
        c = stack.pop()
        names.extend(c.co_names)
        stack.extend(k for k in c.co_consts if isinstance(k, types.CodeType))
    for name in dict.fromkeys(names):
        if name in namespace and not isinstance(namespace[name], types.ModuleType):
            try:
                cloudpickle.dumps(namespace[name])
            except Exception:
                return name
    return None


def find_run(name: str) -> Run | None:
    """The latest run of study ``name`` in this process (on any storage), if any."""
    with _runs_lock:
        matches = [r for (_, n), r in _active.items() if n == name]
    return matches[-1] if matches else None


def active_runs() -> list[Run]:
    """Runs of this process that have not ended."""
    with _runs_lock:
        return [r for r in _active.values() if not r.done]


def stop_all(reason: str = "hpo_nb unloaded", timeout: float = 30.0) -> None:
    """Stop every run of this process (running trials marked FAIL) and wait for them."""
    runs = active_runs()
    for r in runs:
        r.stop(reason=reason)
    for r in runs:
        r._controller.done.wait(timeout)


# Runs before the clusters close (atexit is last in, first out): a kernel that shuts down or
# restarts leaves no trial RUNNING.
atexit.register(stop_all, "the kernel shut down", 10.0)
