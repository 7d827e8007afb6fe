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

import sys
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
from hpo_nb.engine.options import RunOptions
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
    "RunOptions",
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
    """The control panel of a run, an objective or a study: edit its space, pick its
    algorithms, start, stop and watch it; ``options`` are :class:`RunOptions` fields (widgets
    load only when asked).

    >>> hpo_nb.panel(quadratic, n_trials=200)   # doctest: +SKIP
    """
    from hpo_nb.frontends.console import panel as make_panel

    return make_panel(objective, **options)


def _show_runs_as_panels() -> None:
    """In IPython, a :class:`Run` displays as its live panel. The engine knows nothing of the
    panel: the display is registered here, where the package is put together (without
    importing IPython when it is not running)."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    if shell is not None:
        shell.display_formatter.ipython_display_formatter.for_type(Run, _display_run)


def _display_run(run: Run) -> None:
    from hpo_nb.frontends.console import display_run

    display_run(run)


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext hpo_nb``: register the magics."""
    from hpo_nb.frontends.magics import HpoMagics

    ipython.register_magics(HpoMagics)
    _show_runs_as_panels()
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


_show_runs_as_panels()
