"""The package passes the linters CI runs (ruff, mypy)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ruff():
    subprocess.run(
        [sys.executable, "-m", "ruff", "check", "hpo_nb", "tests", "benchmarks"],
        cwd=ROOT,
        check=True,
    )
    subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--check", "hpo_nb", "tests", "benchmarks"],
        cwd=ROOT,
        check=True,
    )


def test_mypy():
    subprocess.run([sys.executable, "-m", "mypy", "hpo_nb"], cwd=ROOT, check=True)


def test_no_function_is_over_80_lines():
    """A function a reader can hold in their head: none in the package is longer."""
    long = []
    for path in sorted((ROOT / "hpo_nb").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1  # type: ignore[operator]
                if lines > 80:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({lines})")
    assert not long, "\n".join(long)
