"""The package passes the linters CI runs (ruff, mypy)."""

from __future__ import annotations

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
