"""Suggestion latency per sampler at 100 / 1,000 / 10,000 finished trials, against raw Optuna.

Each size is a SQLite study of N finished trials x 6 mixed parameters (log float, float, int,
stepped int, categorical, stepped float) x 50 intermediate values (the storage benchmark's
synthetic trials: 70% complete, 28% pruned, 2% failed). Per sampler, three measures:

- hpo_nb's controller path in this process, on its default persistence (``Mirror``: the
  study in memory, written through to the SQLite file): a trial is drawn, created in the
  storage, given its 6 parameters and told. "Sampler" is the sampler's own work in that
  (the draw and the suggestions); "ask..tell" the whole, storage included. The first
  suggestion after loading (which reads the history once) is reported apart.
- raw Optuna on the same study in SQLite, with its default settings: ``ask``, the 6
  ``suggest_*`` calls and ``tell``.
- a worker that has just become free: a real run (``hpo_nb.run``, one local dask worker, an
  objective of 0.3 s) and raw Optuna's ``study.optimize`` on SQLite, each timing the gap from
  one trial's end to the next trial having all 6 parameters. hpo_nb draws the next trial
  while the current one runs.

    python benchmarks/bench_suggest.py [--sizes 100 1000 10000] [--repeat 20]
"""

from __future__ import annotations

import argparse
import itertools
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

import optuna
from optuna.trial import TrialState

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_load import build  # noqa: E402
from bench_storage import DISTRIBUTIONS  # noqa: E402

import hpo_nb  # noqa: E402
from hpo_nb.engine.mirror import Mirror  # noqa: E402
from hpo_nb.engine.mirror import _suggest as suggest  # noqa: E402
from hpo_nb.io.storage import open_storage  # noqa: E402
from hpo_nb.search.algorithms import make_sampler  # noqa: E402
from hpo_nb.search.context import Context  # noqa: E402

SAMPLERS = ["tpe", "random", "cmaes", "nsga2", "gp"]
GP_MAX = 1000  # GP costs seconds per suggestion beyond this
TRIAL_SECONDS = 0.3
SMOKE = ["--sizes", "30", "--repeat", "3", "--samplers", "tpe", "random", "--worker-trials", "3"]


CELL = """
import time
trial.set_user_attr("begin", time.time())
lr = trial.suggest_float("lr", 1e-5, 1e-1, log=True)
weight_decay = trial.suggest_float("weight_decay", 0.0, 0.1)
layers = trial.suggest_int("layers", 1, 8)
units = trial.suggest_int("units", 16, 1024, step=16)
optimizer = trial.suggest_categorical("optimizer", ["sgd", "adam", "adamw"])
dropout = trial.suggest_float("dropout", 0.0, 0.5, step=0.05)
trial.set_user_attr("params", time.time())
time.sleep(seconds)
trial.set_user_attr("end", time.time())
lr * 1e3 + weight_decay + layers / 8 + units / 1024 + dropout + len(optimizer) / 5
"""


def objective() -> hpo_nb.Objective:
    """Six suggestions, a 0.3 s "training", timestamps for the gaps between trials."""
    return hpo_nb.objective_from_cell("s", CELL, {"seconds": TRIAL_SECONDS})


def _suggest(trial: optuna.Trial, name: str, dist: object) -> object:
    return suggest(trial, name, dist)  # type: ignore[arg-type]


def percentiles(times: list[float]) -> tuple[float, float]:
    ordered = sorted(times)
    return statistics.median(ordered), ordered[
        min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))
    ]


def hpo_nb_path(url: str, sampler_name: str, n: int, repeat: int) -> dict[str, object]:
    sampler = make_sampler(sampler_name, seed=0, context=Context(n_trials=n + repeat + 1))
    mirror = Mirror(open_storage(url), "s", sampler, optuna.pruners.MedianPruner())
    own, whole = [], []
    try:
        for _ in range(repeat + 1):
            start = time.perf_counter()
            drawn = mirror.draw()
            drew = time.perf_counter() - start
            t = mirror.create(drawn, {}).result()
            suggest_start = time.perf_counter()
            for name, dist in DISTRIBUTIONS.items():
                mirror.suggest(t, name, dist)
            own.append(drew + time.perf_counter() - suggest_start)
            mirror.finish(t, TrialState.COMPLETE, [random.random()])
            whole.append(time.perf_counter() - start)
        mirror.flush()
    finally:
        mirror.close()
    return {"first": own[0], "own": percentiles(own[1:]), "whole": percentiles(whole[1:])}


def raw_path(url: str, sampler_name: str, n: int, repeat: int) -> tuple[float, float]:
    sampler = make_sampler(sampler_name, seed=0, context=Context(n_trials=n + repeat + 1))
    study = optuna.load_study(study_name="s", storage=url, sampler=sampler)
    times = []
    for _ in range(repeat + 1):
        start = time.perf_counter()
        trial = study.ask()
        for name, dist in DISTRIBUTIONS.items():
            _suggest(trial, name, dist)
        study.tell(trial, random.random())
        times.append(time.perf_counter() - start)
    return percentiles(times[1:])  # the first one reads the whole study


def gaps(trials: list[optuna.trial.FrozenTrial]) -> list[float]:
    """From each trial's end to the next one (in start order) having its parameters."""
    timed = sorted(
        (t for t in trials if "params" in t.user_attrs and "end" in t.user_attrs),
        key=lambda t: t.user_attrs["begin"],
    )
    return [b.user_attrs["params"] - a.user_attrs["end"] for a, b in itertools.pairwise(timed)]


def freed_worker(url: str, sampler_name: str, n: int, count: int) -> tuple[float, float]:
    run = hpo_nb.run(
        objective(),
        n_trials=n + count,
        study="s",
        storage=url,
        sampler=sampler_name,
        pruner="none",
        workers=1,
        wait=True,
    )
    new = optuna.load_study(study_name="s", storage=url).trials[n:]
    assert len(new) == count and all(t.state == TrialState.COMPLETE for t in new), run.progress
    return percentiles(gaps(new))


def raw_freed_worker(url: str, sampler_name: str, n: int, count: int) -> tuple[float, float]:
    sampler = make_sampler(sampler_name, seed=0, context=Context(n_trials=n + count))
    study = optuna.load_study(study_name="s", storage=url, sampler=sampler)
    study.optimize(objective(), n_trials=count)
    return percentiles(gaps(study.trials[n:]))


def default_sqlite(source: Path, target: Path) -> str:
    """A copy of the study in a SQLite file with SQLite's (and Optuna's) default journal."""
    shutil.copy(source, target)
    with sqlite3.connect(target) as connection:
        connection.execute("PRAGMA journal_mode=DELETE")
    return f"sqlite:///{target}"


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 10_000])
    parser.add_argument("--samplers", nargs="+", default=SAMPLERS)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--worker-trials", type=int, default=20)
    args = parser.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for n in args.sizes:
            built = folder / f"built-{n}.db"
            build(f"sqlite:///{built}", n)
            with sqlite3.connect(built) as connection:  # all of it in the file, to copy it
                connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            for name in args.samplers:
                if name == "gp" and n > GP_MAX:
                    continue
                repeat = max(3, args.repeat // 4) if name == "gp" else args.repeat
                ours = folder / f"{name}-{n}.db"
                shutil.copy(built, ours)
                url = f"sqlite:///{ours}"
                path = hpo_nb_path(url, name, n, repeat)
                raw = raw_path(
                    default_sqlite(built, folder / f"raw-{name}-{n}.db"), name, n, repeat
                )
                shutil.copy(built, folder / f"free-{name}-{n}.db")
                freed = freed_worker(
                    f"sqlite:///{folder / f'free-{name}-{n}.db'}", name, n, args.worker_trials
                )
                raw_url = default_sqlite(built, folder / f"rawfree-{name}-{n}.db")
                raw_freed = raw_freed_worker(raw_url, name, n, args.worker_trials)
                rows.append((n, name, path, raw, freed, raw_freed))
                print(
                    f"{n:6d} {name:6s} sampler p95 {path['own'][1] * 1e3:7.1f} ms, "
                    f"raw p95 {raw[1] * 1e3:7.1f} ms, freed p95 {freed[1] * 1e3:7.1f} ms",
                    file=sys.stderr,
                )
    hpo_nb.close_clusters()
    return report(rows, args)


def report(rows: list[tuple], args: argparse.Namespace) -> str:
    ms = lambda pair: f"{pair[0] * 1e3:.1f} / {pair[1] * 1e3:.1f}"  # noqa: E731
    lines = [
        "## Suggestion latency (6 mixed parameters; N finished trials x 50 intermediate values;"
        " SQLite)",
        "",
        f"`python benchmarks/bench_suggest.py` ({args.repeat} suggestions per cell, 5 for gp;"
        f" {args.worker_trials} trials of {TRIAL_SECONDS} s for the freed worker). Figures are"
        " p50 / p95 in ms. Raw Optuna: the same sampler on the same study in a SQLite file with"
        " default settings.",
        "",
        "| N | sampler | hpo_nb sampler work | hpo_nb ask..tell | first after load | raw Optuna"
        " ask..tell | raw / hpo_nb (p95) | freed worker: hpo_nb | freed worker: raw Optuna |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for n, name, path, raw, freed, raw_freed in rows:
        ratio = raw[1] / path["whole"][1]
        lines.append(
            f"| {n} | {name} | {ms(path['own'])} | {ms(path['whole'])} | "
            f"{path['first'] * 1e3:.0f} | {ms(raw)} | {ratio:.1f}x | {ms(freed)} | "
            f"{ms(raw_freed)} |"
        )
    largest = max(args.sizes)
    tpe = [r for r in rows if r[0] == largest and r[1] == "tpe"]
    if tpe:
        own, freed = tpe[0][2]["own"][1], tpe[0][4][1]
        lines += [
            "",
            f"Targets at {largest} trials with tpe: sampler work <= 50 ms p95: "
            f"**{own * 1e3:.1f} ms, {'met' if own <= 0.05 else 'MISSED'}**; a freed worker "
            f"<= 20 ms p95: **{freed * 1e3:.1f} ms, {'met' if freed <= 0.02 else 'MISSED'}**.",
        ]
    lines.append("")
    text = "\n".join(lines)
    print(text)
    return text


if __name__ == "__main__":
    main()
