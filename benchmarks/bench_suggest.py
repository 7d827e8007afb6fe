"""Suggestion time per sampler at 1,000 finished trials, through hpo_nb's controller path.

A SQLite study is filled with 1,000 finished trials over a 6-parameter mixed space (two floats,
one of them log, two ints, one with a step, a categorical, and a float only present for one
categorical value). For each sampler, hpo_nb's in-memory mirror of the study does what the
controller does when a worker asks for a trial: ``ask`` (creating the trial in the storage),
the relative sample, and every suggestion; the trial is then told so the history stays at
1,000. The figure is the median (and p95) over the repetitions.

    python benchmarks/bench_suggest.py [--trials 1000] [--repeat 15]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState, create_trial

from hpo_nb._algorithms import Context, make_sampler
from hpo_nb._mirror import Mirror
from hpo_nb._storage import open_storage

SPACE = {
    "lr": FloatDistribution(1e-5, 1e-1, log=True),
    "dropout": FloatDistribution(0.0, 0.5),
    "layers": IntDistribution(1, 8),
    "units": IntDistribution(32, 512, step=32),
    "optimizer": CategoricalDistribution(["sgd", "adam", "adamw"]),
    "momentum": FloatDistribution(0.0, 0.99),  # only with sgd
}
NUMERIC = {k: v for k, v in SPACE.items() if k not in ("optimizer", "momentum")}
SAMPLERS = ["random", "tpe", "cmaes", "qmc", "nsga2", "gp", "auto"]


def history(n: int, space: dict, seed: int = 0) -> list[optuna.trial.FrozenTrial]:
    rng = random.Random(seed)
    trials = []
    for _ in range(n):
        params = {}
        for name, dist in space.items():
            if name == "momentum" and params.get("optimizer") != "sgd":
                continue
            if isinstance(dist, CategoricalDistribution):
                params[name] = rng.choice(dist.choices)
            elif isinstance(dist, IntDistribution):
                params[name] = rng.randrange(dist.low, dist.high + 1, dist.step)
            else:
                params[name] = rng.uniform(dist.low, dist.high)
        dists = {k: space[k] for k in params}
        value = sum(float(hash(str(v)) % 1000) for v in params.values()) / 1000
        trials.append(create_trial(params=params, distributions=dists, value=value))
    return trials


def suggest_once(mirror: Mirror, space: dict) -> float:
    start = time.perf_counter()
    t = mirror.ask({}).result()
    _ = t.trial.relative_params
    optimizer = None
    for name, dist in space.items():
        if name == "momentum" and optimizer != "sgd":
            continue
        value = mirror.suggest(t, name, dist)
        if name == "optimizer":
            optimizer = value
    seconds = time.perf_counter() - start
    mirror.finish(t, TrialState.COMPLETE, [random.random()])
    return seconds


def measure(sampler_name: str, space: dict, n: int, repeat: int, folder: Path) -> list[float]:
    url = f"sqlite:///{folder / f'{sampler_name}-{len(space)}.db'}"
    study = optuna.create_study(study_name="bench", storage=url)
    study.add_trials(history(n, space))
    sampler = make_sampler(sampler_name, seed=0, context=Context(n_trials=n + repeat))
    mirror = Mirror(open_storage(url), "bench", sampler, optuna.pruners.NopPruner())
    try:
        return [suggest_once(mirror, space) for _ in range(repeat)]
    finally:
        mirror.close()


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for space_name, space in (("mixed", SPACE), ("numeric", NUMERIC)):
            for name in SAMPLERS:
                repeat = 3 if name == "gp" else args.repeat
                times = sorted(measure(name, space, args.trials, repeat, Path(tmp)))
                p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
                rows.append((space_name, name, statistics.median(times), p95, len(times)))
                print(
                    f"{space_name:7s} {name:6s} {statistics.median(times) * 1e3:9.1f} ms",
                    file=sys.stderr,
                )
    auto_mixed = _auto_choice(SPACE, args.trials)
    auto_numeric = _auto_choice(NUMERIC, args.trials)
    lines = [
        f"## Suggestion time at {args.trials} finished trials (hpo_nb controller path, SQLite)",
        "",
        "| space | sampler | median ms | p95 ms | repetitions |",
        "| --- | --- | ---: | ---: | ---: |",
        *(
            f"| {space} | {name} | {median * 1e3:.1f} | {p95 * 1e3:.1f} | {n} |"
            for space, name, median, p95, n in rows
        ),
        "",
        f"`auto` at {args.trials} trials chose `{auto_mixed}` for the mixed space and "
        f"`{auto_numeric}` for the numeric one.",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    return text


def _auto_choice(space: dict, n: int) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'auto.db'}"
        study = optuna.create_study(study_name="bench", storage=url)
        study.add_trials(history(n, space))
        sampler = make_sampler("auto", seed=0, context=Context(n_trials=n + 1))
        mirror = Mirror(open_storage(url), "bench", sampler, optuna.pruners.NopPruner())
        suggest_once(mirror, space)
        mirror.close()
        return f"{sampler.choice}: {sampler.reason}"  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
