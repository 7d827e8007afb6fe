"""A study's charts, drawn by Optuna's own ``optuna.visualization``, and their static export.

``figures(study)`` gives the plotly figures; ``export_plots`` writes them as standalone offline
HTML and as PNG/SVG through kaleido and a local Chrome/Chromium (one browser for the whole
export), falling back to Optuna's matplotlib backend when no browser can be used.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import re
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from hpo_nb._errors import HpoError

if TYPE_CHECKING:
    import plotly.graph_objects as go

__all__ = ["FORMATS", "export_plots", "figures", "file_name"]

FORMATS = ("png", "svg", "html")
_IMAGES = ("png", "svg")
_SIZE = (700, 500)  # pixels, for a chart whose layout sets none (plotly's own default)
_MIN_IMPORTANCE_TRIALS = 2  # Optuna's evaluator gives equal importances below this


@dataclasses.dataclass(frozen=True)
class _Chart:
    """One chart: a function name shared by ``optuna.visualization`` and its matplotlib twin."""

    name: str
    plot: str
    options: dict[str, Any] = dataclasses.field(default_factory=dict)


def _charts(study: optuna.Study) -> list[_Chart]:
    """What to draw for ``study``: the data side of the charts, no drawing."""
    trials = study.get_trials(deepcopy=False)
    if not any(t.state.is_finished() for t in trials):
        raise HpoError(f"study {study.study_name!r} has no finished trial yet: nothing to plot")
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    charts: list[_Chart] = []
    if complete:
        ranked, by_importance = _ranked_params(study, complete)
        if len(study.directions) in (2, 3):
            charts.append(_Chart("pareto", "plot_pareto_front"))
        charts += _each("history", "plot_optimization_history", _targets(study))
        if by_importance:
            charts += _each("importance", "plot_param_importances", _targets(study, lower=True))
        if ranked:  # Optuna draws every objective on one parallel chart
            charts.append(_Chart("parallel", "plot_parallel_coordinate"))
            charts += _each("slice", "plot_slice", _targets(study), params=ranked[:4])
        if len(ranked) >= 2:
            charts += _each("contour", "plot_contour", _targets(study), params=ranked[:2])
    if any(t.intermediate_values for t in trials):
        charts.append(_Chart("intermediate", "plot_intermediate_values"))
    charts.append(_Chart("timeline", "plot_timeline"))
    return charts


def _each(name: str, plot: str, targets: dict[str, dict[str, Any]], **options: Any) -> list[_Chart]:
    return [_Chart(name + suffix, plot, {**options, **t}) for suffix, t in targets.items()]


def _targets(study: optuna.Study, lower: bool = False) -> dict[str, dict[str, Any]]:
    """``target`` options by chart-name suffix: none for one objective, else one per objective
    (``lower``: negated when maximized, since the importance evaluator takes lower as better)."""
    if len(study.directions) == 1:
        return {"": {}}
    names = study.metric_names or [f"Objective {i}" for i in range(len(study.directions))]
    return {
        f"_{i}": {
            "target": _value(i, -1.0 if lower and d == StudyDirection.MAXIMIZE else 1.0),
            "target_name": names[i],
        }
        for i, d in enumerate(study.directions)
    }


def _value(i: int, sign: float = 1.0) -> Callable[[FrozenTrial], float]:
    return lambda t: sign * t.values[i]


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence what Optuna and matplotlib say about our well-formed calls."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # matplotlib plots
        # The importance evaluator warns on any target; ours are lower-is-better already.
        warnings.filterwarnings("ignore", ".*importances of params to achieve low", UserWarning)
        # matplotlib on Optuna's drawings: long legends, a parameter with a single value
        warnings.filterwarnings("ignore", "Tight layout not applied", UserWarning)
        warnings.filterwarnings("ignore", "Attempting to set identical", UserWarning)
        yield


def _draw(study: optuna.Study, chart: _Chart) -> Any:
    import optuna.visualization  # imports plotly: only when drawing

    with _quiet():
        return getattr(optuna.visualization, chart.plot)(study, **chart.options)


def _ranked_params(study: optuna.Study, complete: list[FrozenTrial]) -> tuple[list[str], bool]:
    """The parameters, most important first, and whether importances could rank them."""
    seen = list(dict.fromkeys(p for t in complete for p in t.params))
    if len(complete) < _MIN_IMPORTANCE_TRIALS or not seen:
        return seen, False
    try:
        return list(optuna.importance.get_param_importances(study)), True
    except (ValueError, RuntimeError):  # e.g. values Optuna cannot rank
        return seen, False


def figures(study: optuna.Study) -> dict[str, go.Figure]:
    """Every chart of ``study`` as a plotly figure, by name.

    Names: ``history``, ``importance`` (from 2 complete trials), ``parallel``, ``slice`` (the 4
    most important parameters), ``contour`` (the top 2), ``intermediate`` (when trials reported),
    ``pareto`` (2 or 3 objectives) and ``timeline``. With several objectives, history,
    importance, slice and contour are drawn per objective: ``history_0``, ``history_1``, ...

    >>> figs = figures(optuna.load_study(study_name="quad", storage="sqlite:///hpo.db"))
    >>> figs["history"].show()  # doctest: +SKIP
    """
    return {c.name: _draw(study, c) for c in _charts(study)}


def export_plots(
    study: optuna.Study, directory: str | Path, formats: Iterable[str] = FORMATS
) -> list[Path]:
    """Write every chart of ``study`` to ``<directory>/<name>.<format>``; returns the files.

    ``html`` is standalone and works offline (plotly.js inline). ``png`` and ``svg`` are drawn by
    kaleido with a local Chrome/Chromium, else by Optuna's matplotlib backend.

    >>> export_plots(study, "plots", ["png"])  # doctest: +SKIP
    [PosixPath('plots/history.png'), ...]
    """
    formats = list(dict.fromkeys([formats] if isinstance(formats, str) else formats))
    for fmt in formats:
        if fmt not in FORMATS:
            raise HpoError(f"unknown plot format {fmt!r}: choose from {', '.join(FORMATS)}")
    charts = _charts(study)
    figs = {c.name: _draw(study, c) for c in charts}
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    if "html" in formats:
        for name, fig in figs.items():
            fig.write_html(out / f"{name}.html", include_plotlyjs=True, include_mathjax=False)
    image_formats = [f for f in formats if f in _IMAGES]
    if image_formats:
        browser = _find_browser()
        try:
            if browser is None:
                raise RuntimeError("no Chrome/Chromium found")
            _kaleido(figs, image_formats, out, browser)
        except Exception as e:
            _matplotlib(study, charts, image_formats, out)
            why = str(e.args[0] if e.args else e).strip().splitlines() or [type(e).__name__]
            warnings.warn(
                f"kaleido: {why[0]}; drew PNG/SVG with matplotlib instead "
                "(apt install chromium for plotly's charts)",
                stacklevel=2,
            )
    return [out / f"{c.name}.{f}" for c in charts for f in formats]


def _find_browser() -> str | None:
    """The Chrome/Chromium kaleido would use (``BROWSER_PATH`` first), if it exists."""
    try:
        from choreographer.browsers.chromium import Chromium

        path = Chromium.find_browser(skip_local=False)
    except Exception:  # kaleido missing, or choreographer changed
        return None
    return path if path and os.path.isfile(path) and os.access(path, os.X_OK) else None


def _kaleido(figs: dict[str, go.Figure], formats: list[str], out: Path, browser: str) -> None:
    """Render every image with one browser, closed afterwards even on error.

    A private event loop in a thread: the kernel's own loop is running, and a failed start of
    kaleido's global sync server would block its next call forever.
    """
    import kaleido

    specs = [
        {
            "fig": fig,
            "path": out / f"{name}.{fmt}",
            "opts": {
                "format": fmt,
                "width": fig.layout.width or _SIZE[0],
                "height": fig.layout.height or _SIZE[1],
            },
        }
        for name, fig in figs.items()
        for fmt in formats
    ]

    async def render() -> None:
        async with kaleido.Kaleido(path=browser, mathjax=False) as k:
            await k.write_fig_from_object(specs, cancel_on_error=True)

    errors: list[BaseException] = []

    def main() -> None:
        try:
            asyncio.run(render())
        except BaseException as e:
            errors.append(e)

    thread = threading.Thread(target=main, name="hpo_nb-kaleido", daemon=True)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]


def _matplotlib(study: optuna.Study, charts: list[_Chart], formats: list[str], out: Path) -> None:
    """The same charts through ``optuna.visualization.matplotlib``."""
    try:
        import matplotlib
        import matplotlib.pyplot as plt
        import numpy as np
        from optuna.visualization import matplotlib as mpl_plots
    except ImportError:
        raise HpoError(
            "PNG/SVG export needs chromium (apt install chromium) or matplotlib "
            "(pip install matplotlib)"
        ) from None
    # Optuna's matplotlib plots are experimental and switch the global style to ggplot.
    with _quiet(), matplotlib.rc_context():
        for chart in charts:
            axes = getattr(mpl_plots, chart.plot)(study, **chart.options)
            figure = np.ravel(axes)[0].figure
            try:
                for fmt in formats:
                    figure.savefig(out / f"{chart.name}.{fmt}", format=fmt, bbox_inches="tight")
            finally:
                plt.close(figure)


def file_name(name: str) -> str:
    """``name`` (a study's: data, not a path) as one safe file or folder name: letters,
    digits, ``.``, ``_`` and ``-`` only, no leading dot, never empty.

    >>> file_name("../../etc"), file_name("/abs/path"), file_name("lr sweep #2")
    ('etc', 'abs_path', 'lr_sweep_2')
    """
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._-")
    return safe[:120] or "study"
