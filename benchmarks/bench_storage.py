"""Storage: database size per 10,000 trials, and the archive of the same study.

A synthetic study of N trials (default 10,000; 6 parameters of every kind, 50 intermediate
values each, full-precision floats as samplers and training loops produce them, one user and
one system attribute) is built in memory, written to an archive, and imported into a fresh
SQLite file through hpo_nb's importer (Optuna's ``copy_study``/``add_trials`` take about 90 s
per 1,000 such trials). Then, timed: export of that SQLite study to a new archive
(``%hpo_export --archive``) and import of it into another fresh SQLite file
(``%hpo_import``), and a field-by-field check that the re-imported trials are identical.
The SQLite size is the file after ``VACUUM`` with the WAL checkpointed (``-wal`` empty).
With ``--postgresql URL`` it also reports the growth of that database (``pg_database_size``)
for the same study.

    python benchmarks/bench_storage.py [--trials 10000] [--postgresql URL]
"""

from __future__ import annotations

import argparse
import datetime
import math
import random
import sqlite3
import tempfile
import time
from pathlib import Path

import optuna
import sqlalchemy
from optuna.distributions import (
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import FrozenTrial, TrialState

import hpo_nb.engine.lifecycle as lifecycle
from hpo_nb.io.archive import write_archive
from hpo_nb.io.storage import open_storage

PARAMS = 6
STEPS = 50
DISTRIBUTIONS = {
    "lr": FloatDistribution(1e-5, 1e-1, log=True),
    "weight_decay": FloatDistribution(0.0, 0.1),
    "layers": IntDistribution(1, 8),
    "units": IntDistribution(16, 1024, step=16),
    "optimizer": CategoricalDistribution(["sgd", "adam", "adamw"]),
    "dropout": FloatDistribution(0.0, 0.5, step=0.05),
}


SMOKE = ["--trials", "100"]  # the CI's tiny run (tests/test_benchmarks.py)


def synthetic_trials(n: int, seed: int = 0) -> list[FrozenTrial]:
    """Trials as a real study leaves them: mostly complete, some pruned, a few failed."""
    rng = random.Random(seed)
    start = datetime.datetime(2026, 1, 5, 9, 0, 0)
    trials = []
    for number in range(n):
        params = {
            "lr": math.exp(rng.uniform(math.log(1e-5), math.log(1e-1))),
            "weight_decay": rng.uniform(0.0, 0.1),
            "layers": rng.randint(1, 8),
            "units": 16 * rng.randint(1, 64),
            "optimizer": rng.choice(["sgd", "adam", "adamw"]),
            "dropout": round(0.05 * rng.randint(0, 10), 2),
        }
        scale, rate = rng.uniform(0.5, 2.0), rng.uniform(5, 30)
        curve = {s: scale * math.exp(-s / rate) + rng.gauss(0, 0.01) for s in range(STEPS)}
        roll = rng.random()
        state = (
            TrialState.FAIL
            if roll < 0.02
            else TrialState.PRUNED
            if roll < 0.3
            else TrialState.COMPLETE
        )
        began = start + datetime.timedelta(seconds=number * 7.5 + rng.random())
        trials.append(
            FrozenTrial(
                number=number,
                state=state,
                value=None,
                values=None if state == TrialState.FAIL else [curve[STEPS - 1]],
                datetime_start=began,
                datetime_complete=began + datetime.timedelta(seconds=rng.uniform(5, 60)),
                params=params,
                distributions=DISTRIBUTIONS,
                user_attrs={"epochs": STEPS},
                system_attrs={"hpo_nb:trial": {"session": "4f2a9c", "code": "c0ffee12"}},
                intermediate_values=curve,
                trial_id=number,
            )
        )
    return trials


def _sqlite_size(path: Path) -> tuple[int, int]:
    """(bytes after VACUUM with the WAL checkpointed, bytes of the WAL before that)."""
    wal = path.with_name(path.name + "-wal")
    wal_before = wal.stat().st_size if wal.exists() else 0
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.execute("VACUUM")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return path.stat().st_size, wal_before


def _same(a: list[FrozenTrial], b: list[FrozenTrial]) -> bool:
    def key(t: FrozenTrial) -> tuple:
        return (
            t.number,
            t.state,
            t.values,
            t.datetime_start,
            t.datetime_complete,
            t.params,
            t.distributions,
            t.user_attrs,
            t.system_attrs,
            t.intermediate_values,
        )

    return len(a) == len(b) and all(key(x) == key(y) for x, y in zip(a, b, strict=True))


def _postgresql_growth(url: str, archive: Path) -> int:
    engine = sqlalchemy.create_engine(url)
    size = sqlalchemy.text("SELECT pg_database_size(current_database())")
    open_storage(url)  # creates Optuna's tables first, so that they do not count
    with engine.connect() as conn:
        before = conn.execute(size).scalar_one()
    name = lifecycle.import_archive(archive, url, study="bench_storage_pg")
    try:
        with engine.connect() as conn:
            return int(conn.execute(size).scalar_one()) - int(before)
    finally:
        lifecycle.delete(name, url)
        engine.dispose()


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--postgresql", metavar="URL", help="also measure on this database")
    args = parser.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    n = args.trials
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        memory = optuna.storages.InMemoryStorage()
        study = optuna.create_study(study_name="bench", storage=memory, direction="minimize")
        study.add_trials(synthetic_trials(n))
        seed = write_archive(memory, memory.get_study_id_from_name("bench"), folder / "seed.zip")
        source_db = folder / "source.db"
        source = f"sqlite:///{source_db}"
        lifecycle.import_archive(seed, source)

        began = time.perf_counter()
        archive = lifecycle.export_archive("bench", folder / "bench.zip", source)
        export_s = time.perf_counter() - began
        target = f"sqlite:///{folder / 'target.db'}"
        began = time.perf_counter()
        lifecycle.import_archive(archive, target, study="bench_copy")
        import_s = time.perf_counter() - began

        original = optuna.load_study(study_name="bench", storage=source).get_trials()
        copied = optuna.load_study(study_name="bench_copy", storage=target).get_trials()
        identical = _same(original, copied)
        db_bytes, wal_bytes = _sqlite_size(source_db)
        archive_bytes = archive.stat().st_size
        pg = _postgresql_growth(args.postgresql, archive) if args.postgresql else None

    smaller = 1 - archive_bytes / db_bytes
    per_10k = 10_000 / n
    mib = 2**20
    lines = [
        f"## Storage: {n:,} trials x {PARAMS} params x {STEPS} intermediate values",
        "",
        "| measure | value |",
        "| --- | ---: |",
        f"| SQLite file (after VACUUM, WAL checkpointed) | {db_bytes / mib:.1f} MiB |",
        f"| SQLite per 10,000 trials | {db_bytes * per_10k / mib:.1f} MiB |",
        f"| `-wal` file beside it before the checkpoint | {wal_bytes / mib:.1f} MiB |",
    ]
    if pg is not None:
        lines.append(
            f"| PostgreSQL database growth per 10,000 trials | {pg * per_10k / mib:.1f} MiB |"
        )
    lines += [
        f"| archive (`%hpo_export --archive`) | {archive_bytes / mib:.2f} MiB |",
        f"| archive smaller than SQLite by | {smaller:.1%} (target: at least 80%) |",
        f"| export time | {export_s:.2f} s |",
        f"| import time (new SQLite file) | {import_s:.2f} s |",
        f"| re-imported trials identical (field by field) | {'yes' if identical else 'NO'} |",
        "",
    ]
    if pg is None:
        lines.insert(-1, "")
        lines.insert(
            -1,
            "PostgreSQL not measured: pass `--postgresql URL` (the growth of "
            "`pg_database_size`, which includes indexes and free space in its pages).",
        )
    text = "\n".join(lines)
    print(text)
    return text


if __name__ == "__main__":
    main()
