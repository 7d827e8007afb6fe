"""Per-trial overhead: ``%hpo_run --wait`` in a real kernel against plain Optuna on SQLite.

Both run the same trivial objective (``x ** 2``) with Optuna's default sampler (TPE), one after
the other in each repetition, each on a fresh SQLite file; the figure is the median over the
repetitions of wall time / trials. hpo_nb runs on its default local dask cluster (started once,
before timing) with the default storage (``hpo.db`` in the notebook's folder). Also counts the
trials left RUNNING after a kernel interrupt during ``--wait``.

    python benchmarks/bench_overhead.py [--trials 200] [--repeat 5]

hpo_nb is measured with 2 local workers (trials in parallel, as users run it) and with 1 worker
(serial, like plain ``optimize``); each phase alternates with plain Optuna repetitions.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

import optuna

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from _kernel import Kernel

OBJECTIVE = "%%hpo_objective quad\nx = trial.suggest_float('x', -10, 10)\nx ** 2"
SLOW = (
    "%%hpo_objective slow\nimport time\nx = trial.suggest_float('x', 0, 1)\n"
    "for step in range(200):\n    time.sleep(0.05)\n    trial.report(x, step)\nx"
)


SMOKE = ["--trials", "6", "--repeat", "1"]  # the CI's tiny run (tests/test_benchmarks.py)


def quad(trial: optuna.Trial) -> float:
    return trial.suggest_float("x", -10, 10) ** 2


def raw_optuna(folder: Path, n: int, rep: int) -> float:
    """Seconds per trial of plain ``create_study(storage='sqlite:///...').optimize``."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = f"sqlite:///{folder / f'raw-{rep}.db'}"
    start = time.perf_counter()
    optuna.create_study(storage=storage).optimize(quad, n_trials=n)
    return (time.perf_counter() - start) / n


def hpo_nb_magic(kernel: Kernel, n: int, workers: int, rep: int) -> float:
    """Seconds per trial of ``%hpo_run --wait``, measured inside the kernel."""
    reply = kernel.ok(
        f"_t = time.perf_counter()\n"
        f"%hpo_run quad --n-trials {n} --study w{workers}-rep{rep} --workers {workers} --wait\n"
        f"print((time.perf_counter() - _t) / {n})"
    )
    return float(reply.stdout.strip().splitlines()[-1])


def running_after_interrupt(kernel: Kernel, folder: Path, rep: int) -> int:
    """Interrupt ``%hpo_run --wait`` while trials run; count RUNNING trials afterwards."""
    name = f"interrupt{rep}"
    msg_id = kernel.submit(f"%hpo_run slow --n-trials 20 --study {name} --wait")
    db = folder / "hpo.db"

    def running() -> int:
        with sqlite3.connect(db) as conn:
            return conn.execute(
                "SELECT COUNT(*) FROM trials JOIN studies USING (study_id) "
                "WHERE study_name = ? AND state = 'RUNNING'",
                (name,),
            ).fetchone()[0]

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not db.exists() or running() == 0):
        time.sleep(0.05)
    time.sleep(0.3)
    kernel.interrupt()
    kernel.collect(msg_id)
    return running()


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    phases: dict[int, tuple[list[float], list[float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        kernel = Kernel(str(folder))
        try:
            kernel.ok(
                "%load_ext hpo_nb\nimport time, optuna\n"
                "optuna.logging.set_verbosity(optuna.logging.WARNING)"
            )
            kernel.ok(OBJECTIVE)
            kernel.ok(SLOW)
            t = time.perf_counter()
            kernel.ok("%hpo_run quad --n-trials 4 --study warmup --workers 2 --wait")
            cluster_start = time.perf_counter() - t
            for workers in (2, 1):
                kernel.ok(
                    f"%hpo_run quad --n-trials 4 --study warm{workers} --workers {workers} --wait"
                )
                raw, ours = phases.setdefault(workers, ([], []))
                for rep in range(args.repeat):
                    raw.append(raw_optuna(folder, args.trials, rep))
                    ours.append(hpo_nb_magic(kernel, args.trials, workers, rep))
            kernel.ok("%hpo_run quad --n-trials 4 --study back --workers 2 --wait")
            left_running = [running_after_interrupt(kernel, folder, rep) for rep in range(5)]
        finally:
            kernel.shutdown()

    def ms(xs: list[float]) -> str:
        return ", ".join(f"{x * 1e3:.1f}" for x in xs)

    lines = [
        f"## Per-trial overhead ({args.trials} trials x {args.repeat} repetitions, "
        "trivial objective `x ** 2`, TPE, SQLite)",
        "",
        "| path | median ms/trial | repetitions (ms/trial) | ratio to plain Optuna "
        "(median of paired runs) |",
        "| --- | ---: | --- | ---: |",
    ]
    for workers, (raw, ours) in phases.items():
        ratio = statistics.median(b / a for a, b in zip(raw, ours, strict=True))
        lines += [
            f"| plain Optuna `optimize` on `sqlite:///` (paired with the next row) | "
            f"{statistics.median(raw) * 1e3:.1f} | {ms(raw)} | 1 |",
            f"| hpo_nb `%hpo_run --wait`, {workers} local worker(s) | "
            f"{statistics.median(ours) * 1e3:.1f} | {ms(ours)} | **{ratio:.2f}x** |",
        ]
    lines += [
        "",
        f"Starting the local cluster the first time took {cluster_start:.1f} s (not included).",
        "",
        f"Trials left RUNNING after interrupting `%hpo_run --wait` while trials ran (5 tries): "
        f"{left_running}.",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    return text


if __name__ == "__main__":
    main()
