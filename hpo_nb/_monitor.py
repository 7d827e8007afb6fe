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
    gpu = metrics.get("gpu")
    if isinstance(gpu, dict):
        stats["gpu_utilization"] = gpu.get("utilization")
        stats["gpu_memory_used"] = gpu.get("memory-used")
        stats["gpu_memory_total"] = (info.get("gpu") or {}).get("memory-total")
    return stats
