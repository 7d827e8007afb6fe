"""Many trials at once: wall time against the ideal, lost trials and database errors.

Each trial suggests one parameter and sleeps ``--steps`` x ``--interval`` seconds (1 s by
default), reporting an intermediate value and asking ``should_prune`` after each step. The
trials run ``--concurrency`` at a time (128 by default) on a local dask cluster the benchmark
starts with a few worker processes and many threads each (hpo_nb runs one trial per worker
thread), passed to ``hpo_nb.run`` by its scheduler address; the study lives in a SQLite file,
the default storage. The ideal wall time is ceil(trials / concurrency) x the trial's sleep;
the target is a ratio of at most 1.25, with no failed, lost or RUNNING-left trial and no
database error. Each trial records its start and end (worker clock) in one user attribute,
from which the most trials running at once is counted. A first run of one wave, not counted,
connects the client and warms the workers.

    python benchmarks/bench_concurrency.py [--trials 512 1024] [--samplers random auto]
        [--pruner none] [--concurrency 128] [--workers 4] [--threads 32] [--repeat 5]
"""

from __future__ import annotations

import argparse
import logging
import math
import tempfile
import time
from pathlib import Path
from typing import Any

import optuna
from distributed import LocalCluster

import hpo_nb
from hpo_nb.engine.records import FAIL_REASON_KEY

CELL = """
import time
start = time.time()
x = trial.suggest_float("x", -10.0, 10.0)
for step in range(steps):
    time.sleep(interval)
    trial.report(x * x + 1.0 / (step + 1), step)
    if trial.should_prune():
        trial.set_user_attr("span", [start, time.time()])
        raise optuna.TrialPruned()
trial.set_user_attr("span", [start, time.time()])
x * x
"""

_DB_WORDS = ("database", "sqlite", "sqlalchemy", "locked", "operationalerror", "integrity")


SMOKE = [
    "--trials",
    "8",
    "--samplers",
    "random",
    "--concurrency",
    "4",
    "--workers",
    "1",
    "--threads",
    "4",
    "--steps",
    "3",
    "--interval",
    "0.01",
    "--repeat",
    "2",
]  # the CI's tiny run (tests/test_benchmarks.py)


def _max_overlap(spans: list[tuple[float, float]]) -> int:
    """The most spans open at one moment (an end before a start at the same instant)."""
    events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    most = now = 0
    for _, delta in events:
        now += delta
        most = max(most, now)
    return most


def measure(
    *,
    address: str,
    trials: int,
    concurrency: int,
    sampler: str,
    pruner: str,
    steps: int,
    interval: float,
    storage: str,
    name: str,
) -> dict[str, Any]:
    """One run; returns its figures."""
    objective = hpo_nb.objective_from_cell(
        name, CELL, {"steps": steps, "interval": interval, "optuna": optuna}
    )
    start = time.perf_counter()
    run = hpo_nb.run(
        objective,
        n_trials=trials,
        storage=storage,
        cluster=address,
        concurrency=concurrency,
        sampler=sampler,
        pruner=pruner,
        wait=True,
    )
    wall = time.perf_counter() - start
    study = optuna.load_study(study_name=name, storage=storage)
    stored = study.get_trials(deepcopy=False)
    states = {s: sum(1 for t in stored if t.state == s) for s in optuna.trial.TrialState}
    finished = sum(
        states[s] for s in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    )
    spans = [tuple(t.user_attrs["span"]) for t in stored if "span" in t.user_attrs]
    db_errors = [line for line in run.log if any(word in line.lower() for word in _DB_WORDS)] + [
        str(t.system_attrs.get(FAIL_REASON_KEY, ""))
        for t in stored
        if any(word in str(t.system_attrs.get(FAIL_REASON_KEY, "")).lower() for word in _DB_WORDS)
    ]
    if run.state != hpo_nb.RunState.COMPLETED and any(w in run.reason.lower() for w in _DB_WORDS):
        db_errors.append(run.reason)
    sleep = steps * interval
    ideal = math.ceil(trials / concurrency) * sleep
    durations = sorted(e - s for s, e in spans)
    return {
        "sampler": sampler,
        "chosen": run.progress.sampler,
        "pruner": pruner,
        "trials": trials,
        "state": run.state.value,
        "reason": run.reason,
        "wall": wall,
        "ideal": ideal,
        "ratio": wall / ideal,
        "rate": finished / wall,
        "complete": states[optuna.trial.TrialState.COMPLETE],
        "pruned": states[optuna.trial.TrialState.PRUNED],
        "failed": states[optuna.trial.TrialState.FAIL],
        "running_left": states[optuna.trial.TrialState.RUNNING],
        "lost": trials - finished - states[optuna.trial.TrialState.FAIL],
        "db_errors": db_errors,
        "max_running": _max_overlap(spans),
        "trial_median": durations[len(durations) // 2] if durations else math.nan,
        "trial_max": durations[-1] if durations else math.nan,
        "span": (max(e for _, e in spans) - min(s for s, _ in spans)) if spans else math.nan,
        "log": list(run.log),
    }


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, nargs="+", default=[512, 1024])
    parser.add_argument("--samplers", nargs="+", default=["random", "auto"])
    parser.add_argument("--pruner", default="none")
    parser.add_argument("--concurrency", type=int, default=128)
    parser.add_argument("--workers", type=int, default=4, help="worker processes")
    parser.add_argument("--threads", type=int, default=32, help="threads per worker process")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--interval", type=float, default=0.05)
    parser.add_argument("--repeat", type=int, default=5, help="runs of each; the median counts")
    args = parser.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rows = []
    with (
        tempfile.TemporaryDirectory() as tmp,
        LocalCluster(
            n_workers=args.workers,
            threads_per_worker=args.threads,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            silence_logs=logging.ERROR,
        ) as local,
    ):
        address = local.scheduler_address
        common = {
            "address": address,
            "concurrency": args.concurrency,
            "pruner": args.pruner,
            "steps": args.steps,
            "interval": args.interval,
        }
        # Not counted: connects the client and warms the workers (imports, first unpickling).
        measure(
            **common,
            trials=args.concurrency,
            sampler="random",
            storage=f"sqlite:///{Path(tmp) / 'warmup.db'}",
            name="warmup",
        )
        for sampler in args.samplers:
            for trials in args.trials:
                runs = []
                for repetition in range(args.repeat):
                    name = f"conc_{sampler}_{trials}_{repetition}"
                    row = measure(
                        **common,
                        trials=trials,
                        sampler=sampler,
                        storage=f"sqlite:///{Path(tmp) / f'{name}.db'}",
                        name=name,
                    )
                    runs.append(row)
                    print(
                        f"{sampler} {trials}: wall {row['wall']:.2f} s (ratio {row['ratio']:.2f}), "
                        f"max running {row['max_running']}, failed {row['failed']}, "
                        f"lost {row['lost']}, running left {row['running_left']}, "
                        f"db errors {len(row['db_errors'])}, state {row['state']} "
                        f"({row['reason']})",
                        flush=True,
                    )
                rows.append(_summary(runs))
        hpo_nb.close_clusters()
    lines = [
        f"## {args.concurrency} concurrent trials ({args.steps} reports + should_prune each, "
        f"{args.steps * args.interval:g} s of sleep; SQLite file; {args.workers} worker "
        f"processes x {args.threads} threads; pruner {args.pruner})",
        "",
        "| sampler | trials | wall s | ideal s | ratio | ratios of the runs | trials/s "
        "| max running | median trial s | failed | lost | RUNNING left | db errors |",
        "| --- | ---: | ---: | ---: | ---: | --- |" + " ---: |" * 7,
        *(
            f"| {r['chosen'] or r['sampler']} | {r['trials']} | {r['wall']:.2f} | {r['ideal']:g} | "
            f"**{r['ratio']:.2f}** | {', '.join(f'{x:.2f}' for x in r['ratios'])} | "
            f"{r['rate']:.1f} | {r['max_running']} | {r['trial_median']:.2f} | {r['failed']} | "
            f"{r['lost']} | {r['running_left']} | {len(r['db_errors'])} |"
            for r in rows
        ),
        "",
        f"Each row: the median of {args.repeat} runs (wall, ratio, trials/s, median trial); "
        "failed, lost, RUNNING-left trials and database errors summed over the runs, the most "
        "running at once over all of them.",
        "",
        "Target: ratio <= 1.25 with no failed, lost or RUNNING-left trial and no database error: "
        + _verdict(rows),
        "",
    ]
    text = "\n".join(lines)
    print(text)
    return text


def _summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One row for the runs of one sampler and size: medians, and the sums of what went
    wrong."""
    middle = sorted(runs, key=lambda r: r["ratio"])[len(runs) // 2]
    return {
        **middle,
        "ratios": [r["ratio"] for r in runs],
        "max_running": max(r["max_running"] for r in runs),
        **{k: sum(r[k] for r in runs) for k in ("failed", "lost", "running_left")},
        "db_errors": [e for r in runs for e in r["db_errors"]],
    }


def _verdict(rows: list[dict[str, Any]]) -> str:
    clean = all(not (r["failed"] or r["lost"] or r["running_left"] or r["db_errors"]) for r in rows)
    worst = max(r["ratio"] for r in rows)
    met = clean and worst <= 1.25
    return f"**{'met' if met else 'not met'}** (worst median ratio {worst:.2f}" + (
        ")" if clean else "; some trials failed, were lost or left RUNNING, or the database erred)"
    )


if __name__ == "__main__":
    main()
