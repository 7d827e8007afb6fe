"""hpo_nb's GPU path end to end on a CPU machine, with the fake NVML of ``tests/fake_nvml``.

Run by ``test_gpu_path.py`` in a subprocess whose ``PYTHONPATH`` starts with ``tests/fake_nvml``
(so this process and every dask worker imports the fake ``pynvml``) and ``tests``. It runs two
studies on the default cluster, which must be dask-cuda's (NVML reports two GPUs), and prints
what it saw as JSON on its last line of stdout; the test asserts on that.

1. ``gpu``: 16 trials, each "using" its worker's GPU; one trial per GPU at a time, monitored.
2. ``leaky``: the first trial leaks GPU memory and hangs; ``trial_timeout=2`` kills it, its
   worker is restarted, the memory does not come back, and that GPU leaves the rotation. The
   run is stopped (gracefully) a few seconds after that, to see where later trials ran.
"""

from __future__ import annotations

import collections
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# Each trial: the devices its worker sees, its span, and a GPU allocation of 1 GiB.
USES_THE_GPU = """
x = trial.suggest_float("x", 0, 1)
trial.set_user_attr("devices", os.environ["CUDA_VISIBLE_DEVICES"])
trial.set_user_attr("start", time.time())
pynvml.fake_allocate(2**30)
time.sleep(pause)
trial.set_user_attr("end", time.time())
x
"""

# The first trial to start (of all workers: the marker is created atomically) leaks 2 GiB on
# its GPU and never returns.
LEAKS_ONCE = """
x = trial.suggest_float("x", 0, 1)
trial.set_user_attr("devices", os.environ["CUDA_VISIBLE_DEVICES"])
trial.set_user_attr("start", time.time())
try:
    os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
except FileExistsError:
    pass
else:
    trial.set_user_attr("leaked", True)
    pynvml.fake_allocate(2**31, leak=True)
    time.sleep(10**6)
pynvml.fake_allocate(2**30)
time.sleep(pause)
trial.set_user_attr("end", time.time())
x
"""

RETIRED = "taken out of rotation"


def first_device(trial: Any) -> str | None:
    devices = trial.user_attrs.get("devices")
    return devices.split(",")[0] if devices else None


def trial_rows(study: Any) -> list[dict[str, Any]]:
    from hpo_nb.engine.records import FAIL_REASON_KEY

    return [
        {
            "number": t.number,
            "state": t.state.name,
            "device": first_device(t),
            "start": t.user_attrs.get("start"),
            "end": t.user_attrs.get("end"),
            "leaked": bool(t.user_attrs.get("leaked")),
            "reason": t.system_attrs.get(FAIL_REASON_KEY),
        }
        for t in study.trials
    ]


def clashes(rows: list[dict[str, Any]]) -> list[list[int]]:
    """Pairs of trials that ran at the same time on the same GPU."""
    done = [r for r in rows if r["end"] is not None]
    return [
        [a["number"], b["number"]]
        for i, a in enumerate(done)
        for b in done[i + 1 :]
        if a["device"] == b["device"] and a["start"] < b["end"] and b["start"] < a["end"]
    ]


def gpu_figures(seen: list[dict[str, Any]]) -> dict[str, Any]:
    """Per worker: how many readings carried GPU figures, and the largest of each."""
    out: dict[str, Any] = {}
    for r in seen:
        w = out.setdefault(
            r["worker"], {"readings": 0, "with_gpu": 0, "utilization": 0, "memory_used": 0}
        )
        w["readings"] += 1
        if "gpu_utilization" in r and "gpu_memory_used" in r:
            w["with_gpu"] += 1
            w["utilization"] = max(w["utilization"], r["gpu_utilization"] or 0)
            w["memory_used"] = max(w["memory_used"], r["gpu_memory_used"] or 0)
            w["memory_total"] = r.get("gpu_memory_total")
    return out


def visible_devices(client: Any) -> list[str]:
    return sorted(client.run(lambda: os.environ["CUDA_VISIBLE_DEVICES"]).values())


def run_gpu_study(hpo_nb: Any, db: str, namespace: dict[str, Any]) -> dict[str, Any]:
    objective = hpo_nb.objective_from_cell("gpu", USES_THE_GPU, namespace)
    seen: list[dict[str, Any]] = []
    run = hpo_nb.run(objective, n_trials=16, storage=db, sampler="random")
    run.subscribe(lambda p: seen.extend(p.resources))
    run.wait(120)
    rows = trial_rows(run.study)
    return {
        "state": run.state.value,
        "reason": run.reason,
        "complete": sum(r["state"] == "COMPLETE" for r in rows),
        "devices": sorted({r["device"] for r in rows if r["device"] is not None}),
        "clashes": clashes(rows),
        "gpu": gpu_figures(seen),
        "log": run.log,
    }


def run_leaky_study(hpo_nb: Any, db: str, namespace: dict[str, Any]) -> dict[str, Any]:
    objective = hpo_nb.objective_from_cell("leaky", LEAKS_ONCE, namespace)
    retired_at: list[float] = []

    def watch(progress: Any) -> None:
        if not retired_at and any(RETIRED in e for e in progress.events):
            retired_at.append(time.time())

    started = time.time()
    run = hpo_nb.run(objective, n_trials=1000, storage=db, sampler="random", trial_timeout=2)
    run.subscribe(watch)
    # timeout 2 s + grace 1 s + restart + 15 s for the memory to come back, then retired
    deadline = time.monotonic() + 90
    while not retired_at and not run.done and time.monotonic() < deadline:
        time.sleep(0.1)
    if retired_at:
        time.sleep(4)  # trials on the GPU left in rotation only
    run.stop(graceful=True, reason="seen enough").wait(60)
    rows = trial_rows(run.study)
    retired = retired_at[0] if retired_at else None
    brief = ("number", "state", "device", "reason")
    return {
        "state": run.state.value,
        "reason": run.reason,
        "events": list(run.progress.events),
        "seconds_to_retire": None if retired is None else round(retired - started, 1),
        "leaked": [{k: r[k] for k in brief} for r in rows if r["leaked"]],
        "after_retire": [
            {k: r[k] for k in brief}
            for r in rows
            if retired is not None and r["start"] is not None and r["start"] > retired
        ],
        "unfinished": [{k: r[k] for k in brief} for r in rows if r["state"] == "RUNNING"],
        "states": dict(collections.Counter(r["state"] for r in rows)),
        "log": run.log,
    }


def main() -> None:
    import pynvml

    if "fake_nvml" not in (pynvml.__file__ or ""):
        sys.exit(f"expected the fake pynvml of tests/fake_nvml first on PYTHONPATH, got {pynvml}")
    try:
        import dask_cuda  # noqa: F401
    except ImportError as e:
        sys.exit(f"dask-cuda is a test dependency of the GPU path: {e}")

    import hpo_nb
    from hpo_nb.execution.cluster import get_client

    summary: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="hpo_nb_gpu_stub_") as tmp:
        os.environ["FAKE_NVML_STATE"] = str(Path(tmp) / "nvml.json")  # workers inherit it
        db = f"sqlite:///{Path(tmp) / 'hpo.db'}"
        namespace = {"os": os, "time": time, "pynvml": pynvml, "pause": 0.3}
        start = time.monotonic()
        try:
            info = hpo_nb.cluster()
            summary["cluster"] = {"kind": info.kind, "workers": info.workers, "gpus": info.gpus}
            summary["visible"] = visible_devices(get_client())
            summary["gpu"] = run_gpu_study(hpo_nb, db, namespace)
            namespace["marker"] = str(Path(tmp) / "leaked")
            summary["leaky"] = run_leaky_study(hpo_nb, db, namespace)
            summary["visible_after"] = visible_devices(get_client())
            summary["nvml_state"] = json.loads(Path(os.environ["FAKE_NVML_STATE"]).read_text())
        finally:
            hpo_nb.stop_all()
            hpo_nb.close_clusters()
        summary["seconds"] = round(time.monotonic() - start, 1)
    print(json.dumps(summary, default=str))


if __name__ == "__main__":
    main()
