"""Charts of a study: Optuna's plotly figures, and their export to PNG, SVG and offline HTML."""

from __future__ import annotations

import re
import struct
import sys
import warnings
import xml.etree.ElementTree as ET

import matplotlib
import optuna
import psutil
import pytest
from _kernel import Kernel
from optuna.trial import TrialState

from hpo_nb import HpoError
from hpo_nb.engine.lifecycle import plots
from hpo_nb.io import plots as _plots

SINGLE = {"history", "importance", "parallel", "slice", "contour", "intermediate", "timeline"}


def objective(trial: optuna.Trial) -> float:
    x = trial.suggest_float("x", -5, 5)
    y = trial.suggest_int("y", 0, 10)
    lr = trial.suggest_float("lr", 1e-4, 1e-1, log=True)
    opt = trial.suggest_categorical("opt", ["sgd", "adam"])
    drop = trial.suggest_float("drop", 0, 0.5)
    value = (x - 1) ** 2 + 0.1 * y + lr + (opt == "sgd") + 0.01 * drop
    for step in range(4):
        trial.report(value + 4 - step, step)
        if trial.should_prune():
            raise optuna.TrialPruned()
    return value


@pytest.fixture(scope="module")
def url(tmp_path_factory) -> str:
    """A SQLite file with study ``s``: 30 trials that report, some of them pruned."""
    url = f"sqlite:///{tmp_path_factory.mktemp('db')}/s.db"
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name="s",
        storage=url,
        sampler=optuna.samplers.TPESampler(seed=0),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=5),
    )
    study.optimize(objective, n_trials=30)
    optuna.logging.set_verbosity(verbosity)
    states = {t.state for t in study.trials}
    assert {TrialState.COMPLETE, TrialState.PRUNED} <= states
    return url


@pytest.fixture(scope="module")
def study(url) -> optuna.Study:
    return optuna.load_study(study_name="s", storage=url)


@pytest.fixture(scope="module")
def exported(study, tmp_path_factory):
    """One export in every format (one browser), shared by the checks below."""
    out = tmp_path_factory.mktemp("plots")
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # kaleido must work: no matplotlib fallback
        files = _plots.export_plots(study, out)
    return out, files


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def assert_svg(path) -> None:
    root = ET.parse(path).getroot()
    assert root.tag.endswith("svg") and len(root) > 0
    assert "<svg" in path.read_text()


def parallel_lines(fig) -> list[list[str]]:
    """The axis labels of each trial's line in Optuna's parallel-coordinate chart."""
    return [[label for label, _ in t.customdata] for t in fig.data if t.mode == "lines"]


def chromium_children() -> list[str]:
    found = []
    for p in psutil.Process().children(recursive=True):
        try:
            if "chrom" in p.name() and p.status() != psutil.STATUS_ZOMBIE:
                found.append(p.name())
        except psutil.NoSuchProcess:
            pass
    return found


def test_figures_draw_every_chart_with_the_studys_data(study):
    figs = _plots.figures(study)
    assert set(figs) == SINGLE
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    history = figs["history"].data[0]
    assert sorted(history.x) == [t.number for t in complete]
    assert sorted(history.y) == sorted(t.value for t in complete)
    ranked = list(optuna.importance.get_param_importances(study))
    assert set(figs["importance"].data[0].y) == {"x", "y", "lr", "opt", "drop"}
    assert {figs["contour"].layout.xaxis.title.text, figs["contour"].layout.yaxis.title.text} == (
        set(ranked[:2])
    )
    slice_axes = {
        figs["slice"].layout[k].title.text for k in figs["slice"].layout if k.startswith("xaxis")
    }
    assert slice_axes == set(ranked[:4])
    reported = [t for t in study.trials if t.intermediate_values]
    assert len(figs["intermediate"].data) == len(reported)
    labels = ["Objective Value", "drop", "lr", "opt", "x", "y"]
    assert parallel_lines(figs["parallel"]) == [labels] * len(complete)
    timeline_states = {trace.name for trace in figs["timeline"].data}
    assert {"COMPLETE", "PRUNED"} <= timeline_states


def test_export_writes_png_svg_and_offline_html_for_every_chart(study, exported):
    out, files = exported
    assert sorted(f.name for f in files) == sorted(
        f"{name}.{ext}" for name in SINGLE for ext in ("png", "svg", "html")
    )
    assert sorted(p.name for p in out.iterdir()) == sorted(f.name for f in files)
    figs = _plots.figures(study)
    for name, fig in figs.items():
        data = (out / f"{name}.png").read_bytes()
        assert png_size(data) == (fig.layout.width or 700, fig.layout.height or 500)
        assert len(data) > 5_000, "a drawn chart, not a blank page"
        assert_svg(out / f"{name}.svg")
        page = (out / f"{name}.html").read_text()
        assert len(page) > 1_000_000 and "plotly.js v" in page  # the bundle, inline
        assert "Plotly.newPlot" in page
        sources = re.findall(r"<script[^>]*\bsrc\s*=\s*[\"']?([^\"' >]+)", page, re.I)
        assert not [s for s in sources if s.startswith(("http:", "https:", "//"))]
        assert "mathjax" not in " ".join(sources).lower()
    assert chromium_children() == [], "the browser must be gone after the export"


def test_matplotlib_draws_png_and_svg_without_a_browser(study, tmp_path, monkeypatch):
    monkeypatch.setattr(_plots, "_find_browser", lambda: None)
    style = dict(matplotlib.rcParams)
    with pytest.warns(UserWarning, match="no Chrome/Chromium found; drew PNG/SVG with matplotlib"):
        files = _plots.export_plots(study, tmp_path, ["png", "svg"])
    assert sorted(f.name for f in files) == sorted(
        f"{name}.{ext}" for name in SINGLE for ext in ("png", "svg")
    )
    for name in SINGLE:
        width, height = png_size((tmp_path / f"{name}.png").read_bytes())
        assert width > 100 and height > 100
        assert_svg(tmp_path / f"{name}.svg")
    assert dict(matplotlib.rcParams) == style, "Optuna's ggplot style must not leak"
    assert not (tmp_path / "history.html").exists()


def test_a_browser_that_fails_to_start_falls_back_to_matplotlib(tmp_path, monkeypatch):
    study = optuna.create_study(storage=f"sqlite:///{tmp_path}/s.db")
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
    monkeypatch.setattr(_plots, "_find_browser", lambda: "/bin/true")  # exits at once
    with pytest.warns(UserWarning, match="kaleido: .*; drew PNG/SVG with matplotlib instead"):
        files = _plots.export_plots(study, tmp_path, ["png"])
    assert [f.name for f in files] == ["history.png", "parallel.png", "slice.png", "timeline.png"]
    assert all(png_size(f.read_bytes()) for f in files)
    assert chromium_children() == []


def test_the_browser_is_found_on_the_path_or_through_browser_path(monkeypatch):
    assert _plots._find_browser() is not None  # Debian's chromium, here and in CI
    monkeypatch.setenv("BROWSER_PATH", "/usr/bin/chromium")
    assert _plots._find_browser() == "/usr/bin/chromium"
    monkeypatch.setenv("BROWSER_PATH", "/no/such/chrome")
    assert _plots._find_browser() is None


def test_without_browser_or_matplotlib_one_line_says_what_to_install(study, tmp_path, monkeypatch):
    monkeypatch.setattr(_plots, "_find_browser", lambda: None)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(HpoError) as e:
        _plots.export_plots(study, tmp_path, ["svg"])
    assert "\n" not in str(e.value)
    assert "apt install chromium" in str(e.value) and "pip install matplotlib" in str(e.value)


def test_several_objectives_give_a_pareto_front_and_charts_per_objective(tmp_path):
    study = optuna.create_study(
        storage=f"sqlite:///{tmp_path}/s.db",
        directions=["minimize", "maximize"],
        sampler=optuna.samplers.RandomSampler(seed=1),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(["loss", "accuracy"])
    study.optimize(
        lambda t: (t.suggest_float("a", 0, 1), t.suggest_float("b", 0, 1) - t.params["a"]),
        n_trials=12,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        figs = _plots.figures(study)
    per_objective = {
        f"{c}_{i}" for c in ("history", "importance", "slice", "contour") for i in (0, 1)
    }
    assert set(figs) == {"pareto", "parallel", "timeline"} | per_objective
    pareto = figs["pareto"]
    assert sum(len(trace.x) for trace in pareto.data) == 12
    assert pareto.layout.xaxis.title.text == "loss" and pareto.layout.yaxis.title.text == "accuracy"
    accuracy = sorted(t.values[1] for t in study.trials)
    assert sorted(figs["history_1"].data[0].y) == accuracy
    # accuracy is maximized: its importances are those of reaching high values
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        high = optuna.importance.get_param_importances(study, target=lambda t: -t.values[1])
    bars = figs["importance_1"].data[0]
    assert dict(zip(bars.y, bars.x, strict=True)) == pytest.approx(high)
    assert parallel_lines(figs["parallel"]) == [["loss", "accuracy", "a", "b"]] * 12


def test_few_trials_skip_importance_and_contour_quietly(tmp_path):
    study = optuna.create_study(storage=f"sqlite:///{tmp_path}/s.db")
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        figs = _plots.figures(study)
    assert set(figs) == {"history", "parallel", "slice", "timeline"}


def test_an_empty_study_and_an_unknown_format_are_one_line_errors(study, tmp_path):
    empty = optuna.create_study(study_name="empty", storage=f"sqlite:///{tmp_path}/s.db")
    empty.ask()  # running, not finished
    with pytest.raises(HpoError, match="study 'empty' has no finished trial yet") as e:
        _plots.figures(empty)
    assert "\n" not in str(e.value)
    with pytest.raises(HpoError, match=r"unknown plot format 'gif': choose from png, svg, html"):
        _plots.export_plots(study, tmp_path / "out", ["png", "gif"])
    assert not (tmp_path / "out").exists(), "nothing is written before the formats are checked"
    with pytest.raises(HpoError, match="no study 'nope'"):
        plots("nope", tmp_path, storage=f"sqlite:///{tmp_path}/s.db")


def test_plots_loads_the_study_from_its_storage_and_creates_the_folder(url, tmp_path):
    files = plots("s", tmp_path / "new" / "dir", ["html"], storage=url)
    assert sorted(f.name for f in files) == sorted(f"{name}.html" for name in SINGLE)
    assert all(f.is_file() for f in files)


@pytest.mark.kernel
def test_hpo_export_plots_magic(url, tmp_path):
    k = Kernel(str(tmp_path))
    try:
        k.ok("%load_ext hpo_nb")
        reply = k.ok(f"%hpo_export s --plots charts --plot-formats png html --storage {url}")
        assert reply.stdout.splitlines()[0] == "wrote 14 files to charts"
        assert "  history.png history.html" in reply.stdout.splitlines()
        assert sorted(p.name for p in (tmp_path / "charts").iterdir()) == sorted(
            f"{name}.{ext}" for name in SINGLE for ext in ("png", "html")
        )
        assert "matplotlib" not in reply.stderr
        assert png_size((tmp_path / "charts" / "history.png").read_bytes()) == (700, 500)
        both = k.ok(
            f"%hpo_export s --format json --out best.json --plots both --plot-formats html "
            f"--storage {url}"
        )
        assert both.stdout.startswith("wrote best.json\nwrote 7 files to both\n")
        assert (tmp_path / "best.json").is_file() and (tmp_path / "both" / "history.html").is_file()
        for cell, message in [
            ("%hpo_export s", "give --format and --out, or --plots DIR, or both"),
            ("%hpo_export s --format json", "the following arguments are required: --out"),
            ("%hpo_export s --plot-formats png", "--plot-formats needs --plots DIR"),
            ("%hpo_export s --plots d --plot-formats gif", "invalid choice: 'gif'"),
            (f"%hpo_export nope --plots d --storage {url}", "no study 'nope'"),
        ]:
            assert message in k.usage_error(cell)
    finally:
        k.shutdown()
