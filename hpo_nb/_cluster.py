"""Where trials run: a local dask cluster started on demand, or an existing scheduler.

Clusters are shared by every run in the process and closed by :func:`close_all` (called when the
extension unloads and when the process exits).
"""

from __future__ import annotations

import atexit
import importlib.util
import logging
import threading

import dask
from distributed import Client, LocalCluster

from ._errors import HpoError
from ._settings import settings

__all__ = ["close_all", "get_client"]

_lock = threading.Lock()
_local: tuple[LocalCluster, Client] | None = None
_remote: dict[str, Client] = {}


def get_client(cluster: str | None = None, workers: int | None = None) -> Client:
    """A client for ``cluster``: ``None``/``"local"`` for the local cluster, else an address."""
    if cluster in (None, "local"):
        return _local_client(workers)
    return _remote_client(str(cluster))


def _local_client(workers: int | None) -> Client:
    global _local
    with _lock:
        if _local is not None and _local[1].status != "running":
            _close_local()
        if _local is None:
            n = workers or settings.workers
            # A dead worker fails its trial instead of re-running it elsewhere: the controller
            # decides about retries, and the trial's record stays truthful.
            with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
                cluster = LocalCluster(
                    n_workers=n,
                    threads_per_worker=1,
                    processes=True,
                    host="127.0.0.1",
                    dashboard_address="127.0.0.1:0" if _has_bokeh() else None,
                    silence_logs=logging.ERROR,
                    preload=["hpo_nb._worker_setup"],
                )
            _local = (cluster, Client(cluster, set_as_default=False))
        cluster, client = _local
        if workers is not None and len(cluster.workers) != workers:
            cluster.scale(workers)
            client.wait_for_workers(workers, timeout=120)
        return client


def _remote_client(address: str) -> Client:
    with _lock:
        client = _remote.get(address)
        if client is not None and client.status == "running":
            return client
        try:
            client = Client(address, timeout=10, set_as_default=False)
        except (OSError, TimeoutError, ValueError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise HpoError(f"cannot connect to the dask scheduler at {address}: {first}") from None
        _remote[address] = client
        return client


def _has_bokeh() -> bool:
    return importlib.util.find_spec("bokeh") is not None


def _close_local() -> None:
    global _local
    if _local is not None:
        cluster, client = _local
        _local = None
        client.close()
        cluster.close()


def close_all() -> None:
    """Close every client and the local cluster this process started."""
    with _lock:
        _close_local()
        for client in _remote.values():
            client.close()
        _remote.clear()


atexit.register(close_all)
