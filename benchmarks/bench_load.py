"""Loading a large study: time, and steady and peak memory of the process that holds it.

A study of 10,000 trials x 6 parameters x 50 intermediate values (the storage benchmark's
synthetic trials) lives in a SQLite file. Each path loads it in a fresh process: raw Optuna
(``load_study(...).get_trials()``) and hpo_nb's run-side copy (``Mirror``, what ``%hpo_run``
holds while the study runs). Steady RSS is measured after loading (minus the process's RSS
before), peak RSS is the process's own maximum: its high-water mark ``VmHWM`` where Linux
gives it. Not ``getrusage``'s ``ru_maxrss``: a process started by fork and exec inherits its
parent's maximum there, and this script's process peaks at about 500 MiB building the study.

    python benchmarks/bench_load.py [--trials 10000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
SMOKE = ["--trials", "200", "--repeat", "1"]  # the CI's tiny run (tests/test_benchmarks.py)

PROBE = """
import gc, json, resource, sys, time, psutil, optuna
optuna.logging.set_verbosity(optuna.logging.WARNING)
from hpo_nb.engine.mirror import Mirror
from hpo_nb.io.storage import open_storage
url, path = sys.argv[1], sys.argv[2]
rdb = open_storage(url)
gc.collect()
before = psutil.Process().memory_info().rss
start = time.perf_counter()
if path == "optuna":
    held = optuna.load_study(study_name="s", storage=url).get_trials()
else:
    held = Mirror(rdb, "s", optuna.samplers.TPESampler(), optuna.pruners.MedianPruner())
seconds = time.perf_counter() - start
gc.collect()
steady = psutil.Process().memory_info().rss - before
try:
    with open("/proc/self/status") as f:
        peak = next(int(l.split()[1]) * 1024 for l in f if l.startswith("VmHWM:"))
except (OSError, StopIteration):  # not Linux: ru_maxrss is in bytes on macOS, KiB elsewhere
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    peak *= 1 if sys.platform == "darwin" else 1024
print(json.dumps({"seconds": seconds, "steady": steady, "peak": peak}))
"""


def build(url: str, n: int) -> None:
    import optuna

    sys.path.insert(0, str(HERE))
    from bench_storage import synthetic_trials

    from hpo_nb.io.archive import read_archive, restore_archive, write_archive
    from hpo_nb.io.storage import open_storage

    memory = optuna.create_study(study_name="s", storage=optuna.storages.InMemoryStorage())
    memory.add_trials(synthetic_trials(n))
    with tempfile.TemporaryDirectory() as tmp:
        path = write_archive(memory._storage, memory._study_id, Path(tmp) / "s.zip")
        restore_archive(read_archive(path), open_storage(url), "s")


def probe(url: str, path: str) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, url, path], check=True, capture_output=True, text=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    mib = 2**20
    lines = [
        f"## Loading a study of {args.trials:,} trials x 6 params x 50 intermediate values "
        "(SQLite; `python benchmarks/bench_load.py`)\n",
        "Median of fresh processes, the two paths alternating; steady: RSS added by the load, "
        "peak: the process's own high-water RSS (imports included, about 100 MiB). Targets for "
        "hpo_nb: load <= 3 s, steady <= 300 MB, peak <= 400 MB.\n",
        "| path | load s | steady MiB | peak RSS MiB | ratio of load time to raw Optuna |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 's.db'}"
        build(url, args.trials)
        runs: dict[str, list[dict[str, float]]] = {"optuna": [], "hpo_nb": []}
        for _ in range(args.repeat):
            for path in runs:
                runs[path].append(probe(url, path))
    medians = {
        path: {k: statistics.median(r[k] for r in results) for k in results[0]}
        for path, results in runs.items()
    }
    base = medians["optuna"]["seconds"]
    labels = {"optuna": "raw Optuna `load_study().get_trials()`", "hpo_nb": "hpo_nb `Mirror`"}
    for path, m in medians.items():
        lines.append(
            f"| {labels[path]} | {m['seconds']:.2f} | {m['steady'] / mib:.0f} "
            f"| {m['peak'] / mib:.0f} | {m['seconds'] / base:.2f}x |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    return text


if __name__ == "__main__":
    main()
