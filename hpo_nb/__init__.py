"""hpo_nb: Jupyter-native hyperparameter optimization with Optuna on dask.

In a notebook::

    %load_ext hpo_nb

    %%hpo_objective quadratic
    x = trial.suggest_float("x", -10, 10)
    (x - 2) ** 2

    %hpo_run quadratic --n-trials 50

From Python::

    import hpo_nb
    r = hpo_nb.run(lambda t: t.suggest_float("x", -1, 1) ** 2, n_trials=20, wait=True)
    r.best_params
"""

from __future__ import annotations

from typing import Any

from hpo_nb._errors import HpoError
from hpo_nb._settings import Settings, settings
from hpo_nb.engine.lifecycle import (
    StudyInfo,
    StudyList,
    best,
    delete,
    export,
    export_archive,
    import_archive,
    plots,
    resume,
    status,
    stop,
    studies,
)
from hpo_nb.engine.progress import Progress, RunState
from hpo_nb.engine.run import ObjectiveChangedWarning, Run, active_runs, run, stop_all
from hpo_nb.execution.cluster import ClusterInfo, cluster
from hpo_nb.execution.cluster import close_all as close_clusters
from hpo_nb.search import presets
from hpo_nb.search.objective import Objective, objective_from_cell
from hpo_nb.search.space import SearchSpace

__version__ = "0.1.0"

__all__ = [
    "ClusterInfo",
    "HpoError",
    "Objective",
    "ObjectiveChangedWarning",
    "Progress",
    "Run",
    "RunState",
    "SearchSpace",
    "Settings",
    "StudyInfo",
    "StudyList",
    "active_runs",
    "best",
    "close_clusters",
    "cluster",
    "delete",
    "export",
    "export_archive",
    "import_archive",
    "load_ipython_extension",
    "objective_from_cell",
    "panel",
    "plots",
    "presets",
    "resume",
    "run",
    "settings",
    "status",
    "stop",
    "stop_all",
    "studies",
    "unload_ipython_extension",
]


def panel(objective: Any, **options: Any) -> Any:
    """The control panel of an objective or study: edit its space, pick its algorithms, start,
    stop and watch it (see :func:`hpo_nb.frontends.console.panel`; widgets load only when asked)."""
    from hpo_nb.frontends.console import panel as make_panel

    return make_panel(objective, **options)


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext hpo_nb``: register the magics."""
    from hpo_nb.frontends.magics import HpoMagics

    ipython.register_magics(HpoMagics)
    # A kernel shutdown or restart sets ``exit_now`` before ipykernel terminates its child
    # processes (and long before Python's exit handlers): the moment to stop cleanly.
    ipython.observe(_on_kernel_exit, names="exit_now")


def unload_ipython_extension(ipython: Any) -> None:
    """``%unload_ext hpo_nb``: stop running studies and close the clusters hpo_nb started."""
    ipython.unobserve(_on_kernel_exit, names="exit_now")
    stop_all()
    close_clusters()


def _on_kernel_exit(change: Any) -> None:
    if change["new"]:
        stop_all("the kernel shut down", timeout=5.0)
        close_clusters()
