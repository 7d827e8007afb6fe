"""Run every benchmark and write benchmarks/RESULTS.md (machine, versions, date, tables).

python benchmarks/run_all.py
"""

from __future__ import annotations

import datetime
import importlib.metadata as md
import os
import platform
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_concurrency  # noqa: E402
import bench_load  # noqa: E402
import bench_overhead  # noqa: E402
import bench_panel  # noqa: E402
import bench_prune  # noqa: E402
import bench_storage  # noqa: E402
import bench_suggest  # noqa: E402

BENCHMARKS = [
    bench_overhead,
    bench_suggest,
    bench_prune,
    bench_concurrency,
    bench_panel,
    bench_storage,
    bench_load,
]


def header() -> str:
    versions = ", ".join(
        f"{name} {md.version(name)}" for name in ("hpo_nb", "optuna", "dask", "distributed")
    )
    return (
        "# hpo_nb benchmarks\n\n"
        f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC\n"
        f"- machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}\n"
        f"- Python {platform.python_version()}; {versions}\n"
        "- command: `python benchmarks/run_all.py`\n"
    )


def main() -> None:
    sections = [header()] + [bench.main([]) for bench in BENCHMARKS]
    (HERE / "RESULTS.md").write_text("\n".join(sections))
    print(f"wrote {HERE / 'RESULTS.md'}")


if __name__ == "__main__":
    main()
