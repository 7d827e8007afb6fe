"""A study's run: the one object that owns its life, from start to a stated end."""

from __future__ import annotations

import atexit
import functools
import threading
import types
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import cloudpickle
import optuna

from ._algorithms import make_pruner, make_sampler
from ._cluster import get_client
from ._controller import Controller
from ._errors import HpoError
from ._mirror import Mirror
from ._objective import Objective, as_objective, parse_directions
from ._progress import Progress, RunState
from ._settings import settings
from ._storage import (
    display_url,
    fail_stale_trials,
    load_or_create_study,
    open_storage,
    storage_url,
)
from ._worker import PickledObjective

if TYPE_CHECKING:
    from ._widget import ProgressWidget

__all__ = ["Run", "active_runs", "run", "stop_all"]

_runs_lock = threading.Lock()
_active: dict[tuple[str, str], Run] = {}


class Run:
    """A study running on dask (or finished). Returned by :func:`run` and ``%hpo_run``.

    >>> r = hpo_nb.run(f, n_trials=20)          # doctest: +SKIP
    >>> r.wait().best_params                    # doctest: +SKIP
    """

    def __init__(self, controller: Controller, storage: str) -> None:
        self._controller = controller
        self.storage = storage
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
        try:
            self._controller.done.wait(timeout)
        except KeyboardInterrupt:
            self.stop(reason="interrupted")
            while True:
                try:
                    self._controller.done.wait(60)
                    break
                except KeyboardInterrupt:  # a second Ctrl-C: the stop is already under way
                    continue
            raise
        return self

    def stop(self, *, graceful: bool = False, reason: str = "stopped by user") -> Run:
        """Stop the run: running trials are cancelled and marked FAIL with ``reason``.

        With ``graceful=True`` no new trial starts and running trials finish.
        """
        self._controller.stop(graceful=graceful, reason=reason)
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

    # -- display -----------------------------------------------------------------------------
    @functools.cached_property
    def widget(self) -> ProgressWidget:
        from ._widget import ProgressWidget

        return ProgressWidget(self._controller)

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)

    def _ipython_display_(self) -> None:
        from IPython import get_ipython

        from ._widget import show

        shell = get_ipython()
        count = getattr(shell, "execution_count", None)
        if count is not None and self._skip_display_in == count:
            self._skip_display_in = None  # %hpo_run showed it already in this cell
            return
        show(self.widget, self._controller)

    def _show_in_cell(self, execution_count: int | None) -> None:
        """Show the live widget now; the cell's Out[] will not show it a second time."""
        from ._widget import show

        show(self.widget, self._controller)
        self._skip_display_in = execution_count


def _positive(name: str, value: Any, kind: type = int) -> Any:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float) if kind is float else int):
        raise HpoError(f"{name} must be a positive {kind.__name__}, got {value!r}")
    if value <= 0:
        raise HpoError(f"{name} must be positive, got {value!r}")
    return value


def run(
    objective: Objective | Callable[[Any], Any],
    n_trials: int,
    *,
    study: str | None = None,
    storage: str | None = None,
    sampler: str | optuna.samplers.BaseSampler = "tpe",
    pruner: str | optuna.pruners.BasePruner = "median",
    workers: int | None = None,
    cluster: str | None = None,
    timeout: float | None = None,
    seed: int | None = None,
    direction: str | None = None,
    directions: list[str] | None = None,
    wait: bool = False,
) -> Run:
    """Create or resume a study and run it on dask until it has ``n_trials`` finished trials.

    ``n_trials`` counts every finished trial of the study, earlier runs included. Without
    ``wait`` this returns at once and the study runs in the background.

    >>> def f(trial):
    ...     return trial.suggest_float("x", -1, 1) ** 2
    >>> r = hpo_nb.run(f, n_trials=20, wait=True)   # doctest: +SKIP
    >>> r.best_value < 0.1                           # doctest: +SKIP
    True
    """
    _positive("n_trials", n_trials)
    _positive("workers", workers)
    if workers is not None and cluster not in (None, "local"):
        raise HpoError("--workers sizes the local cluster; an existing cluster keeps its workers")
    _positive("timeout", timeout, float)
    declared = (
        parse_directions(direction, directions) if direction is not None or directions else None
    )
    obj = as_objective(objective, declared)
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
        sampler_obj = sampler if not isinstance(sampler, str) else make_sampler(sampler, seed)
        pruner_obj = pruner if not isinstance(pruner, str) else make_pruner(pruner)
        rdb = open_storage(url)
        optuna_study, _ = load_or_create_study(rdb, name, obj.directions, sampler_obj, pruner_obj)
        fail_stale_trials(optuna_study, rdb)
        controller = Controller(
            study=optuna_study,
            mirror=Mirror(rdb, name, sampler_obj, pruner_obj),
            objective=_pickle(obj),
            target=n_trials,
            connect=functools.partial(get_client, cluster, workers),
            timeout=timeout,
            config=settings,
        )
        controller.prepare()
        handle = Run(controller, display_url(url))
        _active[key] = handle
    handle._start()
    if wait:
        handle.wait()
    return handle


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
