"""What a live panel costs: bytes sent per update and update latency, by study size.

For each size N, a study of N finished trials (6 parameters, 20 intermediate values each) is
stored in SQLite; a run then adds 60 trials while its panel follows it. Every message the
panel sends to the front end is recorded (trait updates and trial deltas, JSON as sent), and
each update is timed in the kernel (new rows, top trials, progress). Also: the one-off cost of
opening the panel on the study, and of the full reset a new view gets.

    python benchmarks/bench_panel.py [--sizes 100 1000 10000]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import optuna

import hpo_nb
from hpo_nb.engine.options import RunOptions
from hpo_nb.frontends.console import Console

CELL = """
lr = trial.suggest_float("lr", 1e-5, 1e-1, log=True)
depth = trial.suggest_int("depth", 1, 12)
width = trial.suggest_int("width", 16, 512, log=True)
dropout = trial.suggest_float("dropout", 0.0, 0.5)
opt = trial.suggest_categorical("opt", ["sgd", "adam", "adamw"])
wd = trial.suggest_float("wd", 1e-6, 1e-2, log=True)
value = (lr - 0.01) ** 2 + depth / 100 + dropout + (opt == "sgd")
for step in range(20):
    trial.report(value * (20 - step), step)
value
"""


SMOKE = ["--sizes", "30"]  # the CI's tiny run (tests/test_benchmarks.py)


def seed_study(url: str, n: int) -> None:
    """N finished trials of the objective's space, written in one go."""
    study = optuna.create_study(study_name="panel", storage=url)
    rng = random.Random(0)
    dists = {
        "lr": optuna.distributions.FloatDistribution(1e-5, 1e-1, log=True),
        "depth": optuna.distributions.IntDistribution(1, 12),
        "width": optuna.distributions.IntDistribution(16, 512, log=True),
        "dropout": optuna.distributions.FloatDistribution(0.0, 0.5),
        "opt": optuna.distributions.CategoricalDistribution(["sgd", "adam", "adamw"]),
        "wd": optuna.distributions.FloatDistribution(1e-6, 1e-2, log=True),
    }
    trials = []
    for _ in range(n):
        params = {
            "lr": 10 ** rng.uniform(-5, -1),
            "depth": rng.randint(1, 12),
            "width": rng.randint(16, 512),
            "dropout": rng.uniform(0, 0.5),
            "opt": rng.choice(["sgd", "adam", "adamw"]),
            "wd": 10 ** rng.uniform(-6, -2),
        }
        value = rng.random()
        trials.append(
            optuna.trial.create_trial(
                value=value,
                params=params,
                distributions=dists,
                intermediate_values={s: value * (20 - s) for s in range(20)},
            )
        )
    study.add_trials(trials)


def measure(n: int, folder: Path) -> dict[str, Any]:
    url = f"sqlite:///{folder / f'panel{n}.db'}"
    seed_study(url, n)
    objective = hpo_nb.objective_from_cell("panel", CELL, {})
    start = time.perf_counter()
    idle = Console(study="panel", objective=objective, options=RunOptions(storage=url, n_trials=n))
    open_s = time.perf_counter() - start  # the kernel waits this long
    idle.loaded.wait()
    load_s = time.perf_counter() - start  # the trials are in the panel
    run = hpo_nb.run(objective, n_trials=n + 60, storage=url, sampler="random")
    console = hpo_nb.panel(run)
    sizes: list[int] = []
    latencies: list[float] = []

    def record(msg: dict[str, Any], buffers: Any = None) -> None:
        sizes.append(len(json.dumps(msg, default=str)))

    console.panel._send = record  # type: ignore[method-assign]
    follow = console._on_progress

    def timed(progress: Any) -> None:
        begin = time.perf_counter()
        before = len(sizes)
        follow(progress)
        latencies.append(time.perf_counter() - begin)
        per_update.append(sum(sizes[before:]))

    per_update: list[int] = []
    console._on_progress = timed  # type: ignore[method-assign]
    books = run._controller.books  # the run's observers: the console's, timed instead
    books._observers = [timed if o == follow else o for o in books._observers]
    run.wait(600)
    assert run.state == hpo_nb.RunState.COMPLETED, run.reason
    before = len(sizes)
    begin = time.perf_counter()
    console.command({"cmd": "sync"})
    reset_s = time.perf_counter() - begin
    reset_bytes = sum(sizes[before:])
    return {
        "n": n,
        "updates": len(per_update),
        "bytes_p50": statistics.median(per_update),
        "bytes_max": max(per_update),
        "latency_p50": 1000 * statistics.median(latencies),
        "latency_p95": 1000 * statistics.quantiles(latencies, n=20)[18],
        "open_s": open_s,
        "load_s": load_s,
        "reset_kb": reset_bytes / 1024,
        "reset_s": reset_s,
    }


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 10000])
    args = parser.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        results = [measure(n, Path(tmp)) for n in args.sizes]
    lines = [
        "## Panel update cost (`python benchmarks/bench_panel.py`)\n",
        "A run adds 60 trials to a study of N finished trials while its panel follows it. "
        "Bytes: everything sent to the front end per update (trait changes + new trial rows). "
        "Latency: the kernel-side work per update. Open: how long `%hpo_panel` blocks the kernel "
        "on an idle study; loaded: until its trials are read (in a background thread); "
        "reset: what a new view (or a page reload) receives, at most 5000 rows.\n",
        "| finished trials | updates | bytes/update p50 | max | update ms p50 | p95 "
        "| open s | loaded s | reset KiB | reset s |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        lines.append(
            f"| {r['n']} | {r['updates']} | {r['bytes_p50']:.0f} | {r['bytes_max']} "
            f"| {r['latency_p50']:.2f} | {r['latency_p95']:.2f} | {r['open_s']:.2f} "
            f"| {r['load_s']:.2f} "
            f"| {r['reset_kb']:.0f} | {r['reset_s']:.2f} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    return text


if __name__ == "__main__":
    main()
