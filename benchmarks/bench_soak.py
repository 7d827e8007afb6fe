"""Soak: thousands of cheap trials through one run; the kernel process's memory and open files.

A fresh process (the "kernel") runs ``hpo_nb.run(objective, n_trials=--trials, wait=False)`` on
the default embedded setup: a SQLite file and the local dask cluster (its default workers,
sampler and pruner). The objective is a quadratic in two parameters that reports two
intermediate values. While the run goes on, the process's main thread polls ``run.progress``
and, every ``--every`` finished trials, records its RSS and its count of open file descriptors
(psutil). The RSS slope is the least-squares slope of RSS against finished trials over the
second half of the run (the first half is warm-up: imports, the cluster, caches), in MB
(10^6 bytes) per 1,000 trials. The issue's criteria: a slope under 1 MB per 1,000 trials, and
no growth of open files (the last count no higher than the first half's highest).

    python benchmarks/bench_soak.py [--trials 5000] [--every 250] [--tracemalloc]

``--tracemalloc`` also traces the kernel's allocations (slower) and lists the source lines whose
memory grew most over the second half.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SMOKE = ["--trials", "300", "--every", "50"]  # the CI's tiny run (tests/test_benchmarks.py)
SLOPE_LIMIT = 1.0  # MB per 1,000 trials
MB = 1e6

CELL = """
x = trial.suggest_float("x", -10, 10)
y = trial.suggest_float("y", -10, 10)
trial.report((x - 2) ** 2, 0)
trial.report((x - 2) ** 2 + (y + 1) ** 2, 1)
(x - 2) ** 2 + (y + 1) ** 2
"""


def soak(folder: Path, trials: int, every: int, trace: bool) -> dict[str, Any]:
    """Run the soak in this process; returns its samples and figures (JSON)."""
    import psutil

    import hpo_nb

    if trace:
        import tracemalloc

        tracemalloc.start(8)
    me = psutil.Process()
    objective = hpo_nb.objective_from_cell("soak", CELL, {})
    url = f"sqlite:///{folder / 'hpo.db'}"
    samples: list[dict[str, float]] = []
    snapshots: list[Any] = []
    start = time.perf_counter()
    run = hpo_nb.run(objective, n_trials=trials, storage=url)
    mark = 0
    while True:
        done, finished = run.done, run.progress.finished
        if finished >= mark or done:
            if samples and samples[-1]["trials"] == finished:
                samples.pop()  # the run ended right after that sample: keep the last
            samples.append(
                {
                    "trials": finished,
                    "seconds": time.perf_counter() - start,
                    "rss": me.memory_info().rss / MB,
                    "fds": me.num_fds(),
                }
            )
            if trace and (done or not snapshots) and finished >= trials // 2:
                snapshots.append(tracemalloc.take_snapshot())  # at half way, and at the end
            mark = (finished // every + 1) * every
        if done:
            break
        time.sleep(0.02)
    wall = time.perf_counter() - start
    return {
        "state": run.state.value,
        "reason": run.reason,
        "sampler": run.progress.sampler,
        "wall": wall,
        "samples": samples,
        "grew": _grew(snapshots) if trace else [],
    }


def _grew(snapshots: list[Any], top: int = 12) -> list[str]:
    """The source lines whose allocations grew most between the two snapshots, each with the
    innermost frames of hpo_nb's and Optuna's code on the path that grew most there."""
    if len(snapshots) < 2:
        return []
    lines: dict[tuple[str, int], list[Any]] = {}  # innermost frame -> [size, count, path]
    for stat in snapshots[1].compare_to(snapshots[0], "traceback"):
        where = stat.traceback[-1]  # frames run from the oldest to the innermost
        line = lines.setdefault((where.filename, where.lineno), [0, 0, stat.traceback, 0])
        line[0] += stat.size_diff
        line[1] += stat.count_diff
        if stat.size_diff > line[3]:
            line[2], line[3] = stat.traceback, stat.size_diff
    ranked = sorted(lines.items(), key=lambda item: -item[1][0])[:top]
    out = []
    for (filename, lineno), (size, count, path, _) in ranked:
        ours = [
            f"{Path(f.filename).name}:{f.lineno}"
            for f in path
            if "hpo_nb" in f.filename or "optuna" in f.filename
        ]
        out.append(
            f"{size / 1e3:+.0f} kB, {count:+} blocks at {Path(filename).name}:{lineno} "
            f"(via {' < '.join(reversed(ours[-4:])) or '?'})"
        )
    return out


def slope(samples: list[dict[str, float]]) -> float:
    """Least-squares slope of RSS (MB) against finished trials, per 1,000 trials."""
    xs = [s["trials"] for s in samples]
    ys = [s["rss"] for s in samples]
    if len(set(xs)) < 2:
        return float("nan")
    return statistics.linear_regression(xs, ys).slope * 1000


def figures(result: dict[str, Any], trials: int) -> dict[str, Any]:
    """The report's figures from the samples: RSS, its slope over the second half, fds."""
    samples = result["samples"]
    second = [s for s in samples if s["trials"] >= trials / 2]
    first = [s for s in samples if s["trials"] < trials / 2] or samples[:1]
    fds = [s["fds"] for s in samples]
    return {
        "trials": samples[-1]["trials"],
        "wall": result["wall"],
        "rss_start": samples[0]["rss"],
        "rss_half": second[0]["rss"] if second else float("nan"),
        "rss_end": samples[-1]["rss"],
        "rss_max": max(s["rss"] for s in samples),
        "slope": slope(second),
        "fd_start": fds[0],
        "fd_end": fds[-1],
        "fd_max": max(fds),
        "fd_first_half_max": max(s["fds"] for s in first),
    }


def report(result: dict[str, Any], f: dict[str, Any], args: argparse.Namespace) -> str:
    slope_ok = f["slope"] < SLOPE_LIMIT
    fd_ok = f["fd_end"] <= f["fd_first_half_max"]
    lines = [
        f"## Soak: {args.trials:,} trials through one run, the kernel's memory and open files "
        "(`python benchmarks/bench_soak.py`)\n",
        "Default embedded setup (SQLite file, local dask cluster, default sampler and pruner); "
        "a quadratic in two parameters with two reports. RSS in MB (10^6 bytes) of the process "
        f"that runs `hpo_nb.run`, and its open file descriptors, every {args.every} finished "
        "trials; slope: least squares over the second half. Criteria: slope < "
        f"{SLOPE_LIMIT:g} MB per 1,000 trials, no fd growth.\n",
        "| figure | value |",
        "| --- | ---: |",
        f"| finished trials | {f['trials']:,} ({result['state']}: {result['reason']}) |",
        f"| sampler | {result['sampler']} |",
        f"| wall time | {f['wall']:.0f} s ({f['trials'] / f['wall']:.1f} trials/s) |",
        f"| RSS start / half / end / max (MB) | {f['rss_start']:.1f} / {f['rss_half']:.1f} / "
        f"{f['rss_end']:.1f} / {f['rss_max']:.1f} |",
        f"| RSS slope, second half (MB per 1,000 trials) | **{f['slope']:.2f}** "
        f"({'meets' if slope_ok else 'misses'} < {SLOPE_LIMIT:g}) |",
        f"| open fds start / end / max (first half's max) | {f['fd_start']} / {f['fd_end']} / "
        f"{f['fd_max']} ({f['fd_first_half_max']}): "
        f"{'no growth' if fd_ok else '**growth**'} |",
        "",
        "| finished trials | seconds | RSS MB | open fds |",
        "| ---: | ---: | ---: | ---: |",
    ]
    lines += [
        f"| {s['trials']:,} | {s['seconds']:.0f} | {s['rss']:.1f} | {s['fds']} |"
        for s in result["samples"]
    ]
    if result["grew"]:
        lines += ["", "Allocations that grew most over the second half (tracemalloc):", "```"]
        lines += result["grew"] + ["```"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=5000)
    parser.add_argument("--every", type=int, default=250, help="finished trials between samples")
    parser.add_argument("--tracemalloc", action="store_true", help="list what grew (slower)")
    parser.add_argument("--child", metavar="FOLDER", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:  # the measured process: prints its result as JSON
        result = soak(Path(args.child), args.trials, args.every, args.tracemalloc)
        print(json.dumps(result))
        return ""
    with tempfile.TemporaryDirectory() as tmp:
        given = sys.argv[1:] if argv is None else argv
        command = [sys.executable, __file__, "--child", tmp, *given]
        out = subprocess.run(command, check=True, capture_output=True, text=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    text = report(result, figures(result, args.trials), args)
    print(text)
    return text


if __name__ == "__main__":
    main()
