"""What NVML says about GPUs: how many there are, which one a worker uses, and whether a killed
trial's memory came back. NVML only reads the driver's state; nothing here initializes CUDA.
"""

from __future__ import annotations

import functools
import os
import time
from typing import Any

import psutil

__all__ = ["gpu_count", "memory_released", "this_process_gpu"]


def _nvml() -> Any | None:
    """``pynvml`` (from nvidia-ml-py), initialized; ``None`` without a driver."""
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:  # no library, no driver, no device: a CPU machine
        return None
    return pynvml


def gpu_count() -> int:
    """GPUs NVML reports on this machine (0 without NVML)."""
    nvml = _nvml()
    if nvml is None:
        return 0
    try:
        return int(nvml.nvmlDeviceGetCount())
    except Exception:
        return 0


@functools.lru_cache(maxsize=1)
def this_process_gpu() -> str | None:
    """The UUID of the GPU this process uses (the first of ``CUDA_VISIBLE_DEVICES``)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",")[0].strip()
    nvml = _nvml()
    if not visible or nvml is None:
        return None
    try:
        if visible.startswith(("GPU-", "MIG-")):
            return visible
        handle = nvml.nvmlDeviceGetHandleByIndex(int(visible))
        uuid = nvml.nvmlDeviceGetUUID(handle)
        return uuid.decode() if isinstance(uuid, bytes) else str(uuid)
    except Exception:
        return None


def memory_released(
    uuid: str, pid: int, timeout: float = 15.0, nvml: Any | None = None, poll: float = 0.5
) -> bool:
    """Wait until process ``pid`` holds no memory on GPU ``uuid``; False if it still does."""
    nvml = nvml or _nvml()
    if nvml is None:
        return True
    handle = nvml.nvmlDeviceGetHandleByUUID(uuid)
    deadline = time.monotonic() + timeout
    dead_since: float | None = None
    while True:
        holders = {p.pid for p in nvml.nvmlDeviceGetComputeRunningProcesses(handle)}
        if pid not in holders:
            return True
        now = time.monotonic()
        if dead_since is None and not psutil.pid_exists(pid):
            dead_since = now
        # The driver frees a dead process's memory at once: still listed soon after, it leaked.
        if now >= deadline or (dead_since is not None and now - dead_since > 2.0):
            return False
        time.sleep(poll)
