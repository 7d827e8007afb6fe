"""The benchmark suite keeps working: every benchmark runs at tiny sizes (its ``SMOKE``)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.mark.timeout(900)
def test_every_benchmark_runs_and_reports(tmp_path):
    out = tmp_path / "RESULTS.md"
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / "run_all.py"), "--smoke", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=850,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    text = out.read_text()
    modules = sorted(p.stem for p in BENCHMARKS.glob("bench_*.py"))
    run_all = (BENCHMARKS / "run_all.py").read_text()
    assert all(f"import {m}" in run_all for m in modules), "run_all.py misses a benchmark"
    assert text.startswith("# hpo_nb benchmarks")
    assert text.count("\n## ") >= len(modules)  # one section (at least) per benchmark
    assert "| ---" in text
    # bench_gpu's trials record their work spans; each path stored every smoke trial.
    assert "| hpo_nb | 4 of 4 |" in text and "| optuna | 4 of 4 |" in text
    # bench_throughput found the kernel's threads of an hpo_nb run and their CPU time.
    for thread in ("controller (sampler, bookkeeping)", "storage writer", "dask event loop"):
        assert f"| {thread}" in text
    # bench_soak ran its trials, sampled the kernel's RSS and open files, and fitted the slope
    # (the smoke run is too short for its criteria: only the figures are checked).
    assert "| finished trials | 300 (completed" in text
    assert re.search(r"\| RSS start / half / end / max \(MB\) \| (\d+\.\d / ){3}\d+\.\d \|", text)
    assert re.search(r"\| RSS slope, second half \(MB per 1,000 trials\) \| \*\*-?[\d.]+\*\*", text)
    assert re.search(r"\| open fds start / end / max \(first half's max\) \| \d+ / \d+ / \d+", text)
