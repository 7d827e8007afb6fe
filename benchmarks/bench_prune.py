"""Round-trip latency of ``trial.should_prune()`` from a dask worker, with many workers at once.

Each trial reports a value and asks the pruner 100 times, timing each ``should_prune`` on the
worker (the report travels with it, in order: worker -> scheduler -> kernel controller ->
pruner -> reply queue -> worker). Every worker runs such trials at the same time. The figures
are the median and p95 over all calls, per number of local worker processes. (With no pruner
a worker answers ``should_prune`` itself: False, without asking.)

    python benchmarks/bench_prune.py [--workers 1 4 8 16] [--calls 100]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import optuna

import hpo_nb

CELL = """
import time
latencies = []
for step in range(calls):
    trial.report(float(step), step)
    start = time.perf_counter()
    trial.should_prune()
    latencies.append(time.perf_counter() - start)
trial.set_user_attr("latencies", latencies)
0.0
"""


SMOKE = ["--workers", "1", "--calls", "5"]  # the CI's tiny run (tests/test_benchmarks.py)


def measure(workers: int, calls: int, folder: Path) -> list[float]:
    objective = hpo_nb.objective_from_cell("prune_rtt", CELL, {"calls": calls})
    storage = f"sqlite:///{folder / f'w{workers}.db'}"
    run = hpo_nb.run(
        objective,
        n_trials=2 * workers,
        storage=storage,
        workers=workers,
        # A pruner that never prunes, but is asked: a run without one (``none``) answers
        # should_prune on the worker without a round trip.
        pruner="threshold",
        pruner_options={"upper": 1e300},
        sampler="random",
        wait=True,
    )
    assert run.state == hpo_nb.RunState.COMPLETED, run.reason
    study = optuna.load_study(study_name="prune_rtt", storage=storage)
    return [x for t in study.trials for x in t.user_attrs["latencies"]]


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 4, 8, 16])
    parser.add_argument("--calls", type=int, default=100)
    args = parser.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for workers in args.workers:
            times = sorted(measure(workers, args.calls, Path(tmp)))
            p95 = times[round(0.95 * (len(times) - 1))]
            rows.append((workers, statistics.median(times), p95, len(times)))
    hpo_nb.close_clusters()
    lines = [
        "## should_prune round trip from a worker (report + prune check, all workers at once)",
        "",
        "| local workers | median ms | p95 ms | calls |",
        "| ---: | ---: | ---: | ---: |",
        *(f"| {w} | {m * 1e3:.2f} | {p * 1e3:.2f} | {n} |" for w, m, p, n in rows),
        "",
    ]
    text = "\n".join(lines)
    print(text)
    return text


if __name__ == "__main__":
    main()
