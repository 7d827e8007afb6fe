"""Layering rules that keep workers lean and the package installable."""

from __future__ import annotations

import ast
import subprocess
import sys
import zipfile
from pathlib import Path

import hpo_nb


def test_core_and_worker_import_no_ipython_or_widgets():
    code = (
        "import sys, hpo_nb, hpo_nb.execution.worker, hpo_nb.engine.controller\n"
        "import hpo_nb.execution.channel\n"
        "bad = [m for m in ('IPython', 'anywidget', 'ipywidgets', 'plotly') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# The layers, lowest first: a module imports only from its own layer and those below it.
LAYERS = ["search", "io", "execution", "engine", "frontends"]
BASE = {"hpo_nb._errors", "hpo_nb._settings", "hpo_nb._optuna"}  # below every layer
PACKAGE = Path(hpo_nb.__file__).resolve().parent


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _imports(path: Path, modules: dict[str, Path]) -> list[tuple[int, str, list[str]]]:
    """(line, hpo_nb module, names) of each import of hpo_nb code, wherever it is in the file,
    except under ``if TYPE_CHECKING:`` (no import at run time)."""
    tree = ast.parse(path.read_text())
    skipped = {
        id(node)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
        for node in ast.walk(block)
    }
    found = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name, []) for a in node.names if a.name.startswith("hpo_nb")]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("hpo_nb"):
            assert node.level == 0, f"{path}:{node.lineno}: relative import"
            module = node.module or ""
            names = [a.name for a in node.names]
            submodules = [f"{module}.{n}" for n in names if f"{module}.{n}" in modules]
            found += [(node.lineno, m, []) for m in submodules]
            rest = [n for n in names if f"{module}.{n}" not in modules]
            if rest:
                found.append((node.lineno, module, rest))
    return found


def _layer(module: str) -> int:
    if module in BASE:
        return -1
    parts = module.split(".")
    return LAYERS.index(parts[1]) if len(parts) > 2 and parts[1] in LAYERS else len(LAYERS)


def test_layers_import_only_downwards():
    """search < io < execution < engine < frontends: the engine knows nothing of the panel or
    the magics (a Run does not import the console), the worker side nothing of the engine."""
    modules, wrong = _modules(), []
    for name, path in modules.items():
        if name == "hpo_nb":
            continue  # the package puts the layers together
        for line, target, _ in _imports(path, modules):
            if target == "hpo_nb" or _layer(target) > _layer(name):
                wrong.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {target}")
    assert not wrong, "\n".join(wrong)


def test_no_import_circles():
    modules = _modules()
    graph = {
        name: {t for _, t, _ in _imports(path, modules) if t in modules and t != name}
        for name, path in modules.items()
        if name != "hpo_nb"
    }
    circles = []

    def visit(node: str, trail: list[str]) -> None:
        if node in trail:
            circles.append(" -> ".join([*trail[trail.index(node) :], node]))
            return
        for target in sorted(graph.get(node, ())):
            visit(target, [*trail, node])

    for start in sorted(graph):
        visit(start, [])
    assert not circles, "\n".join(sorted(set(circles)))


def test_no_module_imports_another_modules_private_names():
    modules, wrong = _modules(), []
    for name, path in modules.items():
        for line, target, names in _imports(path, modules):
            private = [n for n in names if n.startswith("_")]
            if private and target != name:
                wrong.append(f"{path.relative_to(PACKAGE.parent)}:{line} {target}: {private}")
    assert not wrong, "\n".join(wrong)


def test_magics_do_not_own_the_study():
    """The magic layer only parses and delegates: it never touches optuna or dask itself."""
    import hpo_nb.frontends.magics as magics

    source = Path(magics.__file__).read_text()
    assert "import optuna" not in source and "distributed" not in source


def test_a_run_shows_as_its_panel_without_the_engine_knowing_the_panel():
    code = (
        "import sys, IPython, hpo_nb\n"
        "from IPython.testing.globalipapp import start_ipython\n"
        "shell = start_ipython()\n"
        "hpo_nb._show_runs_as_panels()\n"
        "printers = shell.display_formatter.ipython_display_formatter.type_printers\n"
        "assert hpo_nb.Run in printers, printers\n"
        "assert 'hpo_nb.frontends.console' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


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
