"""GPU use between back-to-back GPU-bound trials: how busy the GPU stays, and the idle gap from
one trial's end to the next one's start on the same GPU, hpo_nb against raw Optuna on SQLite.

Each trial (``lr`` and ``width`` suggested, as a real one would) does ``--work`` seconds of
device work in ``--steps`` steps: blocks of chained matmuls, then the step's loss read back (a
training loop's ``loss.item()``, a sync) and reported; no pruner, so every trial runs its full
length. It records when its work began and ended and where it ran (host, process, thread).
Paths, same objective, same sampler (``--sampler``, TPE), timed one after the other:

1. hpo_nb: ``hpo_nb.run(objective, n_trials, wait=True)`` on a fresh SQLite file, with
   ``cluster="cuda"`` on a GPU machine (dask-cuda's ``LocalCUDACluster``: one worker, and one
   trial at a time, per GPU), else ``cluster="local"`` (``--workers`` one-thread workers);
2. raw Optuna: ``study.optimize(objective, n_trials, n_jobs=slots)`` on a fresh SQLite file in
   this process (the setup users glue together in a notebook), on GPU 0 (one slot) or on the
   CPU (``--workers`` threads; numpy's matmul releases the GIL).

Per path: the **idle gap** between consecutive trials on one slot (the next trial's work start
minus the last one's work end: reporting the outcome, storing it, sampling, dispatching, the
objective's own preamble), p50 / p95 / max; the **busy fraction**, each slot's seconds of trial
work over its span from the first work start to the last work end; with a GPU, NVML's
utilization (percent of time a kernel ran), polled every 50 ms over the same span. One-time
costs (the cluster's start, each worker's first import of PyTorch and its CUDA context) fall
in an untimed warm-up run. Each repetition runs both paths, in an order rotated between
repetitions; figures are medians over repetitions, and the gap ratio is the median of the
per-repetition ratios (raw Optuna / hpo_nb).

Without a GPU (NVML finds none, or PyTorch sees no CUDA) the same code runs on the CPU: numpy
matmuls on a ``LocalCluster``, a stand-in that measures hpo_nb's gap, not a GPU's.

    python benchmarks/bench_gpu.py [--trials 20] [--work 2.0] [--steps 10] [--repeat 3]
        [--workers 2] [--sampler tpe] [--size 4096]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import itertools
import statistics
import tempfile
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna

SMOKE = ["--trials", "4", "--work", "0.2", "--steps", "2", "--repeat", "1", "--size", "128"]
WARMUP = 1  # untimed trials per slot before each timed run
POLL = 0.05  # seconds between NVML utilization readings


def make_objective(device: str, work: float, steps: int, size: int) -> Callable[[Any], float]:
    """The GPU-bound (``device="cuda"``) or CPU-bound trial; a nested function, so that
    cloudpickle sends it by value and workers need not import this file."""

    def objective(trial: Any) -> float:
        import os
        import socket
        import threading
        import time

        lr = trial.suggest_float("lr", 1e-4, 1e-1, log=True)
        width = trial.suggest_int("width", 1, 8)
        if device == "cuda":
            import torch

            a = torch.randn(size, size, device="cuda") / size**0.5
            b = torch.randn(size, size, device="cuda") / size**0.5

            def block(x: Any) -> tuple[Any, float]:
                for _ in range(8):
                    x = torch.tanh(x @ b)
                return x, float(x.square().mean())  # the sync a loss.item() makes
        else:
            import numpy as np

            rng = np.random.default_rng(trial.number)
            a = rng.standard_normal((size, size)) / size**0.5
            b = rng.standard_normal((size, size)) / size**0.5

            def block(x: Any) -> tuple[Any, float]:
                for _ in range(8):
                    x = np.tanh(x @ b)
                return x, float(np.square(x).mean())

        started = time.time()
        loss = 0.0
        for step in range(steps):
            until = started + work * (step + 1) / steps
            while time.time() < until:
                a, loss = block(a)
            trial.report(loss * lr * width, step)
        ended = time.time()
        slot = f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"
        trial.set_user_attr("bench_work", [started, ended, slot])
        return loss * lr * width

    return objective


def device_kind() -> str:
    """ "cuda" where NVML finds a GPU and PyTorch can use it, else "cpu"."""
    from hpo_nb.execution.gpu import gpu_count

    if gpu_count() == 0:
        return "cpu"
    try:
        import torch
    except ImportError:
        return "cpu"
    return "cuda" if torch.cuda.is_available() else "cpu"


# -- what a run showed -------------------------------------------------------------------------


@dataclasses.dataclass
class Measure:
    """One timed run of one path."""

    done: int  # COMPLETE trials read back from the storage
    gaps: list[float]  # seconds between consecutive trials on one slot
    busy: float  # trial work seconds / the slots' spans
    nvml: float | None  # NVML's mean utilization over the span, 0-1; None without a GPU
    slots: int


def read_back(url: str, study: str, nvml: NvmlPoller | None) -> Measure:
    """The trials' work spans from the storage, grouped by slot."""
    trials = optuna.load_study(study_name=study, storage=url).get_trials(
        deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)
    )
    by_slot: dict[str, list[tuple[float, float]]] = {}
    for t in trials:
        started, ended, slot = t.user_attrs["bench_work"]
        by_slot.setdefault(slot, []).append((started, ended))
    gaps, work, span = [], 0.0, 0.0
    for spans in by_slot.values():
        spans.sort()
        gaps += [b[0] - a[1] for a, b in itertools.pairwise(spans)]
        work += sum(e - s for s, e in spans)
        span += spans[-1][1] - spans[0][0]
    if not gaps:
        raise ValueError("too few trials: each slot needs two for an idle gap (raise --trials)")
    first = min(s for spans in by_slot.values() for s, _ in spans)
    last = max(e for spans in by_slot.values() for _, e in spans)
    utilization = nvml.mean(first, last) if nvml else None
    return Measure(len(trials), gaps, work / span if span else 0.0, utilization, len(by_slot))


class NvmlPoller:
    """NVML's GPU utilization of every GPU, read every ``POLL`` seconds on a thread."""

    def __init__(self) -> None:
        import pynvml

        pynvml.nvmlInit()
        self._nvml = pynvml
        self._handles = [
            pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())
        ]
        self._samples: list[tuple[float, float]] = []  # (time, mean utilization 0-1)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, name="bench-nvml", daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.wait(POLL):
            rates = [self._nvml.nvmlDeviceGetUtilizationRates(h).gpu for h in self._handles]
            self._samples.append((time.time(), statistics.fmean(rates) / 100))

    def mean(self, start: float, end: float) -> float:
        within = [u for t, u in self._samples if start <= t <= end]
        return statistics.fmean(within) if within else float("nan")

    def __enter__(self) -> NvmlPoller:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def polling(kind: str) -> contextlib.AbstractContextManager[NvmlPoller | None]:
    """An NvmlPoller on a GPU machine; nothing on the CPU."""
    return NvmlPoller() if kind == "cuda" else contextlib.nullcontext()


# -- the paths ---------------------------------------------------------------------------------


def run_hpo_nb(args: argparse.Namespace, kind: str, folder: Path, rep: int) -> Measure:
    import hpo_nb

    objective = make_objective(kind, args.work, args.steps, args.size)
    cluster = "cuda" if kind == "cuda" else "local"
    workers = None if kind == "cuda" else args.workers
    info = hpo_nb.cluster(cluster, workers=workers)
    common = {"sampler": args.sampler, "pruner": "none", "cluster": cluster, "wait": True}
    hpo_nb.run(
        objective,
        n_trials=WARMUP * info.workers,
        study="warmup",
        storage=f"sqlite:///{folder / f'hpo_nb-warmup-{rep}.db'}",
        workers=workers,
        **common,
    )
    url = f"sqlite:///{folder / f'hpo_nb-{rep}.db'}"
    with polling(kind) as poller:
        run = hpo_nb.run(
            objective, n_trials=args.trials, study="gpu", storage=url, workers=workers, **common
        )
    if run.state != hpo_nb.RunState.COMPLETED:
        raise RuntimeError(f"hpo_nb run ended {run.state.value}: {run.reason}")
    return read_back(url, "gpu", poller)


def run_optuna(args: argparse.Namespace, kind: str, folder: Path, rep: int) -> Measure:
    from threadpoolctl import threadpool_limits

    objective = make_objective(kind, args.work, args.steps, args.size)
    slots = 1 if kind == "cuda" else args.workers

    def study(name: str) -> optuna.Study:
        sampler = (
            optuna.samplers.TPESampler()
            if args.sampler == "tpe"
            else optuna.samplers.RandomSampler()
        )
        return optuna.create_study(
            study_name=name, storage=url, sampler=sampler, pruner=optuna.pruners.NopPruner()
        )

    url = f"sqlite:///{folder / f'optuna-{rep}.db'}"
    with threadpool_limits(1):  # one BLAS thread per slot, as on a dask worker
        study("warmup").optimize(objective, n_trials=WARMUP * slots, n_jobs=slots)
        timed = study("gpu")
        with polling(kind) as poller:
            timed.optimize(objective, n_trials=args.trials, n_jobs=slots)
    return read_back(url, "gpu", poller)


PATHS: dict[str, Callable[[argparse.Namespace, str, Path, int], Measure]] = {
    "hpo_nb": run_hpo_nb,
    "optuna": run_optuna,
}


# -- the report --------------------------------------------------------------------------------


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def report(args: argparse.Namespace, kind: str, results: dict[str, list[Measure]]) -> str:
    where = (
        "GPU: dask-cuda LocalCUDACluster, one worker per GPU"
        if kind == "cuda"
        else f"**no GPU here** (NVML finds none, or PyTorch sees no CUDA): the CPU stand-in, "
        f"numpy matmuls ({args.size}x{args.size}) on a LocalCluster of {args.workers} workers"
    )
    lines = [
        "## GPU use between back-to-back trials",
        "",
        f"{args.trials} trials of {args.work:g} s of device work in {args.steps} steps each, "
        f"sampler {args.sampler}, no pruner, SQLite; {where}; median of {args.repeat} "
        "repetition(s). Idle gap: from a trial's work end to the next trial's work start on "
        "the same slot; busy: work seconds over the slots' spans.",
        "",
        "| path | trials stored | slots | idle gap p50 ms | p95 ms | max ms | busy | NVML util |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, runs in results.items():
        gaps = [g for m in runs for g in m.gaps]
        nvml = [m.nvml for m in runs if m.nvml is not None]
        util = f"{statistics.median(nvml):.1%}" if nvml else "-"
        p50 = statistics.median(statistics.median(m.gaps) for m in runs)
        lines.append(
            f"| {name} | {statistics.median(m.done for m in runs):.0f} of {args.trials} "
            f"| {runs[0].slots} | {_ms(p50)} "
            f"| {_ms(_p(gaps, 0.95))} | {_ms(max(gaps))} "
            f"| {statistics.median(m.busy for m in runs):.1%} | {util} |"
        )
    if {"hpo_nb", "optuna"} <= set(results):
        ratio = statistics.median(
            statistics.median(o.gaps) / statistics.median(h.gaps)
            for h, o in zip(results["hpo_nb"], results["optuna"], strict=True)
        )
        lines += ["", f"Idle gap p50, raw Optuna on SQLite / hpo_nb: {ratio:.2f}x."]
    if kind != "cuda":
        lines += [
            "",
            "The GPU figures need a GPU machine: `python benchmarks/run_all.py --only bench_gpu`.",
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20, help="timed trials per path")
    parser.add_argument("--work", type=float, default=2.0, help="seconds of work per trial")
    parser.add_argument("--steps", type=int, default=10, help="reported steps per trial")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2, help="CPU slots without a GPU")
    parser.add_argument("--sampler", choices=["tpe", "random"], default="tpe")
    parser.add_argument("--size", type=int, default=None, help="matmul size (GPU 4096, CPU 256)")
    parser.add_argument("--paths", nargs="*", choices=list(PATHS), default=list(PATHS))
    args = parser.parse_args(argv)
    kind = device_kind()
    args.size = args.size or (4096 if kind == "cuda" else 256)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    results: dict[str, list[Measure]] = {name: [] for name in args.paths}
    import hpo_nb

    try:
        with tempfile.TemporaryDirectory() as tmp:
            for rep in range(args.repeat):
                order = args.paths[rep % len(args.paths) :] + args.paths[: rep % len(args.paths)]
                for name in order:
                    results[name].append(PATHS[name](args, kind, Path(tmp), rep))
    finally:
        hpo_nb.close_clusters()
    text = report(args, kind, results)
    print(text)
    return text


if __name__ == "__main__":
    main()
