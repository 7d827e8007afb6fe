"""Run every benchmark and write benchmarks/RESULTS.md (machine, versions, date, tables).

python benchmarks/run_all.py                 # the full suite (about two hours on 2 cores)
python benchmarks/run_all.py --smoke --out -  # every benchmark at tiny sizes (CI)
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata as md
import os
import platform
import re
import sys
from pathlib import Path
from types import ModuleType

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_concurrency  # noqa: E402
import bench_gpu  # noqa: E402
import bench_load  # noqa: E402
import bench_outage  # noqa: E402
import bench_overhead  # noqa: E402
import bench_panel  # noqa: E402
import bench_prune  # noqa: E402
import bench_search  # noqa: E402
import bench_soak  # noqa: E402
import bench_storage  # noqa: E402
import bench_suggest  # noqa: E402
import bench_throughput  # noqa: E402

BENCHMARKS = [
    bench_overhead,
    bench_throughput,
    bench_suggest,
    bench_prune,
    bench_concurrency,
    bench_gpu,
    bench_panel,
    bench_storage,
    bench_load,
    bench_outage,
    bench_search,
    bench_soak,
]


def header() -> str:
    versions = ", ".join(
        f"{name} {md.version(name)}" for name in ("hpo_nb", "optuna", "dask", "distributed")
    )
    return (
        "# hpo_nb benchmarks\n\n"
        f"- machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}\n"
        f"- Python {platform.python_version()}; {versions}\n"
        "- command: `python benchmarks/run_all.py` (all), `--only bench_x ...` (some: the"
        " others keep their last results); each section says when it was measured\n"
    )


def section(bench: ModuleType, argv: list[str]) -> str:
    """One benchmark's results between markers, so a later ``--only`` run can replace them."""
    name = bench.__name__
    now = datetime.datetime.now(datetime.timezone.utc)
    return (
        f"<!-- {name} -->\n{bench.main(argv).rstrip()}\n\n"
        f"_Measured {now:%Y-%m-%d %H:%M} UTC by `python benchmarks/{name}.py`._\n"
        f"<!-- /{name} -->\n"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="each benchmark's tiny SMOKE run")
    parser.add_argument("--only", nargs="+", metavar="BENCH", help="run these, keep the rest")
    parser.add_argument("--out", default=str(HERE / "RESULTS.md"), help="file, or - for stdout")
    args = parser.parse_args(argv)
    names = [b.__name__ for b in BENCHMARKS]
    unknown = sorted(set(args.only or ()) - set(names))
    if unknown:
        parser.error(f"unknown benchmark {unknown[0]!r}: choose from {', '.join(names)}")
    existing = Path(args.out).read_text() if args.out != "-" and Path(args.out).exists() else ""
    old = existing if args.only else ""
    sections = [header()]
    # Written by hand (what the test suites held, issue by issue): kept by every run.
    manual = re.search("<!-- summary -->.*?<!-- /summary -->\n", existing, re.S)
    if manual:
        sections.append(manual.group(0))
    for bench in BENCHMARKS:
        name = bench.__name__
        kept = re.search(f"<!-- {name} -->.*?<!-- /{name} -->\n", old, re.S)
        if args.only and name not in args.only and kept:
            sections.append(kept.group(0))
        elif not args.only or name in args.only:
            sections.append(section(bench, bench.SMOKE if args.smoke else []))
    text = "\n".join(sections)
    if args.out == "-":
        print(text)
    else:
        Path(args.out).write_text(text)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
