"""A study's run: the one object that owns its life, from start to a stated end."""

from __future__ import annotations

import atexit
import contextlib
import functools
import json
import os
import threading
import time
import types
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import cloudpickle
import optuna
from optuna.storages import RDBStorage

from hpo_nb._errors import HpoError
from hpo_nb._settings import settings
from hpo_nb.engine import interrupts as interrupts
from hpo_nb.engine.controller import Controller, Limits
from hpo_nb.engine.mirror import Mirror
from hpo_nb.engine.progress import Progress, RunState
from hpo_nb.engine.records import CONFIG_KEY, recover, retry_params
from hpo_nb.execution.cluster import get_client
from hpo_nb.execution.worker import PickledObjective
from hpo_nb.io.storage import display_url, load_or_create_study, open_storage, storage_url
from hpo_nb.search.algorithms import Context, make_pruner, make_sampler
from hpo_nb.search.objective import Objective, as_objective, parse_directions
from hpo_nb.search.space import SearchSpace

if TYPE_CHECKING:
    from hpo_nb.frontends.console import Console
    from hpo_nb.frontends.panel import Panel

__all__ = ["ObjectiveChangedWarning", "Run", "active_runs", "find_run", "run", "stop_all"]

_runs_lock = threading.Lock()
_active: dict[tuple[str, str], Run] = {}


class Run:
    """A study running on dask (or finished). Returned by :func:`run` and ``%hpo_run``.

    >>> r = hpo_nb.run(f, n_trials=20)          # doctest: +SKIP
    >>> r.wait().best_params                    # doctest: +SKIP
    """

    def __init__(
        self,
        controller: Controller,
        url: str,
        objective: Objective | None = None,
        options: dict[str, Any] | None = None,
    ) -> None:
        self._controller = controller
        self._url = url
        self._objective = objective  # what the panel's Resume runs again
        self._options = dict(options or {})
        self.storage = display_url(url)
        self._thread = threading.Thread(
            target=controller.run, name=f"hpo_nb:{controller.study.study_name}", daemon=True
        )
        self._skip_display_in: int | None = None

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
        return self.study.best_trial

    @property
    def best_value(self) -> float:
        return self.study.best_value

    @property
    def best_params(self) -> dict[str, Any]:
        return self.study.best_params

    @property
    def best_trials(self) -> list[optuna.trial.FrozenTrial]:
        """The Pareto front (multi-objective) or the best trial."""
        return self.study.best_trials

    def __repr__(self) -> str:
        return f"<hpo_nb.Run {self.progress.summary()}>"

    def _study_attrs(self) -> dict[str, Any]:
        return self._controller.study_attrs()

    # -- display -----------------------------------------------------------------------------
    @functools.cached_property
    def console(self) -> Console:
        """The control panel's logic for this run's study."""
        from hpo_nb.frontends.console import Console

        return Console(
            study=self.study.study_name,
            objective=self._objective,
            options=self._options,
            handle=self,
        )

    @property
    def widget(self) -> Panel:
        """The control panel, following this run."""
        return self.console.panel

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)

    def _ipython_display_(self) -> None:
        from IPython import get_ipython

        from hpo_nb.frontends.console import show

        shell = get_ipython()
        count = getattr(shell, "execution_count", None)
        if count is not None and self._skip_display_in == count:
            self._skip_display_in = None  # %hpo_run showed it already in this cell
            return
        show(self.console)

    def _show_in_cell(self, execution_count: int | None) -> None:
        """Show the live panel now; the cell's Out[] will not show it a second time."""
        from hpo_nb.frontends.console import show

        show(self.console)
        self._skip_display_in = execution_count


def _positive(name: str, value: Any, kind: type = int) -> Any:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float) if kind is float else int):
        raise HpoError(f"{name} must be a positive {kind.__name__}, got {value!r}")
    if value <= 0:
        raise HpoError(f"{name} must be positive, got {value!r}")
    return value


@interrupts.watched  # a Ctrl-C while it starts, lost or not, stops a run with wait=True
def run(
    objective: Objective | Callable[[Any], Any],
    n_trials: int,
    *,
    study: str | None = None,
    storage: str | None = None,
    sampler: str | optuna.samplers.BaseSampler = "auto",
    sampler_options: Mapping[str, Any] | None = None,
    pruner: str | optuna.pruners.BasePruner = "median",
    pruner_options: Mapping[str, Any] | None = None,
    space: Any = None,
    narrow: Any = None,
    enqueue: Sequence[Mapping[str, Any]] | Mapping[str, Any] | None = None,
    workers: int | None = None,
    cluster: str | None = None,
    gpus: str | None = None,
    concurrency: int | None = None,
    trial_timeout: float | None = None,
    retries: int = 0,
    timeout: float | None = None,
    max_time: float | None = None,
    patience: int | None = None,
    min_delta: float = 0.0,
    seed: int | None = None,
    ci_trials: int | None = None,
    retry_failed: bool = False,
    direction: str | None = None,
    directions: list[str] | None = None,
    wait: bool = False,
) -> Run:
    """Create or resume a study and run it on dask until it has ``n_trials`` finished trials.

    ``n_trials`` counts every finished trial of the study, earlier runs included. Without
    ``wait`` this returns at once and the study runs in the background. ``narrow`` (a space
    of some parameters) overrides the ranges and choices the objective's own ``suggest_*`` calls
    ask for, as the panel's editor does. See the README for every option; they mirror
    ``%hpo_run``'s.

    >>> def f(trial):
    ...     return trial.suggest_float("x", -1, 1) ** 2
    >>> r = hpo_nb.run(f, n_trials=20, wait=True)   # doctest: +SKIP
    >>> r.best_value < 0.1                           # doctest: +SKIP
    True
    """
    for label, value, kind in [
        ("n_trials", n_trials, int),
        ("workers", workers, int),
        ("ci_trials", ci_trials, int),
        ("patience", patience, int),
        ("timeout", timeout, float),
        ("max_time", max_time, float),
        ("concurrency", concurrency, int),
        ("trial_timeout", trial_timeout, float),
    ]:
        _positive(label, value, kind)
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise HpoError(f"retries must be an integer >= 0, got {retries!r}")
    if not isinstance(min_delta, (int, float)) or min_delta < 0:
        raise HpoError(f"min_delta must be a number >= 0, got {min_delta!r}")
    if workers is not None and cluster not in (None, "auto", "local"):
        raise HpoError("--workers sizes the local CPU cluster; other clusters keep their workers")
    if ci_trials is not None and os.environ.get("CI"):
        n_trials, seed = ci_trials, 0 if seed is None else seed
    declared = (
        parse_directions(direction, directions) if direction is not None or directions else None
    )
    obj = base = as_objective(objective, declared)
    if space is not None:
        obj = obj.with_space(SearchSpace.parse(space))
    overrides = SearchSpace.parse(narrow).distributions() if narrow is not None else None
    if patience is not None and len(obj.directions) > 1:
        raise HpoError("--patience needs a single objective (the best value must be one number)")
    seeds = _as_configs(enqueue)
    context = Context(
        obj.directions, obj.space, n_trials, concurrency or workers or settings.workers
    )
    sampler_obj = (
        make_sampler(sampler, seed, sampler_options, context)
        if isinstance(sampler, str)
        else sampler
    )
    pruner_obj = make_pruner(pruner, pruner_options) if isinstance(pruner, str) else pruner
    pickled = _pickle(obj)
    url = storage_url(storage)
    name = study or obj.name
    key = (url, name)
    with _runs_lock:
        current = _active.get(key)
        if current is not None and not current.done:
            raise HpoError(
                f"study {name!r} is already running in this kernel: stop it first "
                "(handle.stop() or %hpo_stop) or wait for it"
            )
        rdb = open_storage(url)
        optuna_study, _ = load_or_create_study(rdb, name, obj.directions, sampler_obj, pruner_obj)
        orphans = recover(optuna_study, rdb, settings.stale_grace)
        for config in seeds:  # known-good configurations, once each
            optuna_study.enqueue_trial(config, skip_if_exists=True)
        for orphan in orphans if retry_failed else []:  # again, beside the failed attempt
            optuna_study.enqueue_trial(retry_params(orphan), skip_if_exists=False)
        _record_config(
            rdb,
            optuna_study,
            obj,
            {
                "sampler": sampler if isinstance(sampler, str) else type(sampler).__name__,
                "sampler_options": dict(sampler_options or {}),
                "pruner": pruner if isinstance(pruner, str) else type(pruner).__name__,
                "pruner_options": dict(pruner_options or {}),
                "n_trials": n_trials,
                "seed": seed,
                "timeout": timeout,
                "max_time": max_time,
                "patience": patience,
                "min_delta": min_delta,
                "space": obj.space.to_dict() if obj.space is not None else None,
                "narrow": SearchSpace.parse(narrow).to_dict() if narrow is not None else None,
            },
        )
        controller = Controller(
            study=optuna_study,
            mirror=Mirror(rdb, name, sampler_obj, pruner_obj),
            objective=pickled,
            target=n_trials,
            connect=functools.partial(get_client, cluster, workers, gpus),
            limits=Limits(
                timeout,
                max_time,
                patience,
                float(min_delta),
                trial_timeout,
                retries,
                concurrency,
                draw_ahead=seed is None,
            ),
            config=settings,
            trial_attrs={"version": obj.fingerprint},
            overrides=overrides,
        )
        controller.prepare()
        options = {
            "sampler": sampler,
            "sampler_options": sampler_options,
            "pruner": pruner,
            "pruner_options": pruner_options,
            "workers": workers,
            "cluster": cluster,
            "gpus": gpus,
            "concurrency": concurrency,
            "trial_timeout": trial_timeout,
            "retries": retries,
            "timeout": timeout,
            "max_time": max_time,
            "patience": patience,
            "min_delta": min_delta,
            "seed": seed,
            "n_trials": n_trials,
            "space": obj.space,
            "narrow": narrow,
        }
        handle = Run(controller, url, base, options)
        _active[key] = handle
    handle._start()
    if wait:
        handle.wait()
    return handle


def _as_configs(enqueue: Any) -> list[dict[str, Any]]:
    """``--enqueue``: one configuration (a dict) or a list of them."""
    if enqueue is None:
        return []
    configs = [enqueue] if isinstance(enqueue, Mapping) else enqueue
    if (
        not isinstance(configs, Sequence)
        or isinstance(configs, str)
        or not all(isinstance(c, Mapping) for c in configs)
    ):
        raise HpoError(
            "enqueue takes a dict of parameter values, or a list of them, "
            f"got {type(enqueue).__name__}"
        )
    return [dict(c) for c in configs]


def _record_config(
    rdb: RDBStorage, study: optuna.Study, obj: Objective, options: dict[str, Any]
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
    config = {"objective": obj.name, "versions": versions, **options}
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
