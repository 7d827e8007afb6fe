"""The GPU path end to end on CPU: dask-cuda's cluster, one trial per GPU, GPU monitoring, and a
GPU whose memory does not come back after a kill taken out of rotation, with a fake NVML
(``tests/fake_nvml/pynvml.py``) that simulates two GPUs for every process.

The study runs in a subprocess (``gpu_stub_run.py``) so that the fake ``pynvml`` shadows the
real one in that process and in its dask workers, and its cluster is not this session's.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
FAKE_NVML = HERE / "fake_nvml"
SCRIPT = HERE / "gpu_stub_run.py"


@pytest.fixture(scope="module")
def summary(tmp_path_factory) -> dict[str, Any]:
    """What ``gpu_stub_run.py`` saw (its last line of stdout), run once for this module."""
    assert importlib.util.find_spec("dask_cuda") is not None, (
        "dask-cuda is a test dependency (the GPU path runs on LocalCUDACluster): "
        "pip install -e '.[gpu,test]'"
    )
    paths = [str(FAKE_NVML), str(HERE), os.environ.get("PYTHONPATH")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, paths)), "FAKE_NVML_GPUS": "2"}
    env.pop("CUDA_VISIBLE_DEVICES", None)  # the fake's devices are 0 and 1
    done = subprocess.run(
        [sys.executable, str(SCRIPT)],
        env=env,
        cwd=tmp_path_factory.mktemp("gpu_stub"),
        capture_output=True,
        text=True,
        timeout=240,
    )
    lines = done.stdout.strip().splitlines()
    assert done.returncode == 0 and lines, (
        f"gpu_stub_run.py exited with {done.returncode}\n"
        f"stdout:\n{done.stdout[-4000:]}\nstderr:\n{done.stderr[-8000:]}"
    )
    return json.loads(lines[-1])


def test_the_default_cluster_is_dask_cuda_with_a_worker_per_gpu(summary):
    assert summary["cluster"] == {"kind": "cuda", "workers": 2, "gpus": 2}
    # each worker sees its own GPU first (dask-cuda's rotation of CUDA_VISIBLE_DEVICES)
    assert summary["visible"] == ["0,1", "1,0"]


def test_trials_run_one_per_gpu_on_both_gpus(summary):
    gpu = summary["gpu"]
    assert gpu["state"] == "completed", gpu
    assert gpu["complete"] == 16
    assert gpu["devices"] == ["0", "1"]
    assert gpu["clashes"] == [], "two trials ran at the same time on one GPU"


def test_monitoring_reports_each_workers_gpu(summary):
    figures = summary["gpu"]["gpu"]
    assert sorted(figures) == ["0", "1"], figures
    for worker, f in figures.items():
        assert f["with_gpu"] > 0, f"worker {worker}: no GPU figures in run.progress.resources: {f}"
        assert f["utilization"] == 90, (worker, f)  # the fake's figure for a device in use
        assert f["memory_used"] >= 2**30, (worker, f)  # each trial holds 1 GiB


def test_a_gpu_whose_memory_does_not_come_back_leaves_the_rotation(summary):
    leaky = summary["leaky"]
    (leaked,) = leaky["leaked"]
    assert leaked["state"] == "FAIL" and leaked["reason"] == "timeout after 2 s", leaked
    gpu = f"GPU-fake-{leaked['device']}"
    events = leaky["events"]
    assert any("timed out after 2 s" in e for e in events), events
    assert any("restarting worker" in e for e in events), events
    assert any(f"GPU {gpu} taken out of rotation" in e for e in events), events
    # the worker of the other GPU is the one left, and it ran every later trial
    other = "1" if leaked["device"] == "0" else "0"
    assert summary["visible_after"] == [f"{other},{leaked['device']}"]
    after = leaky["after_retire"]
    assert len(after) >= 3, leaky
    assert all(t["device"] == other and t["state"] == "COMPLETE" for t in after), after


def test_no_trial_is_left_running_when_a_gpu_leaves_the_rotation(summary):
    """A trial that ran on the retired worker ends (FAIL) instead of staying RUNNING."""
    leaky = summary["leaky"]
    assert leaky["state"] == "stopped" and leaky["reason"] == "seen enough", leaky
    assert leaky["unfinished"] == [], leaky["unfinished"]
