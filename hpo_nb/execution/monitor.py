"""Per-worker resource figures, read from what dask workers already report in their heartbeats
(CPU, memory, and NVML's GPU utilization and memory when the worker sees a GPU)."""

from __future__ import annotations

from typing import Any

__all__ = ["worker_stats"]


def worker_stats(address: str, info: dict[str, Any], trial: int | None) -> dict[str, Any]:
    """One worker's latest figures as plain JSON: name, CPU %, RSS, GPU (if any), its trial."""
    metrics = info.get("metrics", {})
    stats: dict[str, Any] = {
        "worker": str(info.get("name", address)),
        "address": address,
        "trial": trial,
        "cpu": float(metrics.get("cpu", 0.0)),
        "rss": int(metrics.get("memory", 0)),
    }
    if "gpu_utilization" in metrics:  # the worker's system monitor, when NVML sees a GPU
        stats["gpu_utilization"] = metrics.get("gpu_utilization")
        stats["gpu_memory_used"] = metrics.get("gpu_memory_used")
        stats["gpu_memory_total"] = metrics.get("gpu-memory-total")
    return stats
