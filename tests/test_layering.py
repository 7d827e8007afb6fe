"""Layering rules that keep workers lean and the package installable."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from hpo_nb.engine.run import Run


def test_core_and_worker_import_no_ipython_or_widgets():
    code = (
        "import sys, hpo_nb, hpo_nb.execution.worker, hpo_nb.engine.controller\n"
        "import hpo_nb.execution.channel\n"
        "bad = [m for m in ('IPython', 'anywidget', 'ipywidgets', 'plotly') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_magics_do_not_own_the_study():
    """The magic layer only parses and delegates: it never touches optuna or dask itself."""
    import hpo_nb.frontends.magics as magics

    source = Path(magics.__file__).read_text()
    assert "import optuna" not in source and "distributed" not in source
    assert hasattr(Run, "_ipython_display_")


def test_the_wheel_ships_the_widget_front_end(tmp_path):
    root = Path(__file__).resolve().parents[1]
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(root)],
        check=True,
    )
    (wheel,) = tmp_path.glob("hpo_nb-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {"hpo_nb/_static/panel.js", "hpo_nb/_static/panel.css"} <= set(names)
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "-q",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
    )
    found = subprocess.run(
        [
            sys.executable,
            "-I",
            "-c",
            f"import sys; sys.path.insert(0, {str(target)!r}); "
            "from hpo_nb.frontends.assets import asset; print(asset('panel.js'))",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    assert found == str(target / "hpo_nb" / "_static" / "panel.js")
