"""Where trials run: a local dask cluster (one worker per GPU when there are GPUs), or an
existing scheduler.

The local clusters are dask's ``LocalCluster`` and dask-cuda's ``LocalCUDACluster`` with their
scheduler moved out of the kernel's process (:mod:`hpo_nb.execution.scheduler`); their workers'
nannies stay in the kernel, as dask places them.

Clusters are shared by every run in the process and closed by :func:`close_all` (called when the
extension unloads and when the process exits). Schedulers and dashboards listen on 127.0.0.1.

>>> hpo_nb.cluster()  # doctest: +SKIP
<hpo_nb cluster local: 2 workers, dashboard http://127.0.0.1:8787/status>
"""

from __future__ import annotations

import atexit
import dataclasses
import importlib.util
import logging
import socket
import threading
import time
from typing import Any

import dask
from distributed import Client, LocalCluster
from distributed.comm.addressing import parse_address, parse_host_port
from distributed.deploy.cluster import Cluster

from hpo_nb._errors import HpoError
from hpo_nb._settings import settings
from hpo_nb.execution.gpu import gpu_count
from hpo_nb.execution.scheduler import SchedulerProcess

__all__ = ["ClusterInfo", "check", "close_all", "cluster", "get_client"]

_lock = threading.Lock()
_local: dict[str, tuple[Any, Client]] = {}  # "local" or "cuda" -> (cluster, client)
_remote: dict[str, Client] = {}

# Dask's event-loop watchdog ticks every 20 ms in every server, and each worker samples its
# threads' stacks every 10 ms for the dashboard's profile: an idle local cluster of 2 workers
# took about 0.15 of a core (kernel 48, scheduler 27, each worker 40 ms of CPU per second).
# Coarser, both still work, and it takes about a third of that.
_QUIET = {"distributed.admin.tick.interval": "1s", "distributed.worker.profile.interval": "100ms"}
_COMMON = {
    "threads_per_worker": 1,
    "host": "127.0.0.1",
    "silence_logs": logging.ERROR,
    # Our workers leave the kernel's process group and ignore SIGINT (see worker_setup.py).
    "preload": ["hpo_nb.execution.worker_setup"],
    # A dead worker fails its trial instead of re-running it elsewhere: the controller decides
    # about retries, and the trial's record stays truthful.
    "scheduler_kwargs": {"allowed_failures": 0},
}
# What of a local cluster's scheduler options travels to the scheduler's process (as JSON).
_SCHEDULER_OPTIONS = (
    "host",
    "port",
    "interface",
    "protocol",
    "dashboard",
    "dashboard_address",
    "allowed_failures",
)


class _SchedulerOutside:
    """Mixin for dask's local clusters: start the scheduler in a process of its own, and keep
    every nanny."""

    scheduler: Any
    scheduler_spec: dict[str, Any]

    async def _start(self) -> None:
        if self.scheduler is None:
            options = self.scheduler_spec["options"]
            kept = {k: options[k] for k in _SCHEDULER_OPTIONS if k in options}
            self.scheduler = await SchedulerProcess(config=_QUIET, **kept)
        await super()._start()  # type: ignore[misc]

    def _update_worker_status(self, op: str, msg: Any) -> None:
        # dask's SpecCluster closes the nanny of a worker that left the scheduler when, 15 s
        # later (lost-worker-timeout), no worker of its name is there: a worker restarting
        # again at that moment (killed twice, or restarted to end a trial that timed out)
        # was gone for good, and the cluster shrank, down to no worker at all. A local
        # nanny restarts its worker by itself: it stays.
        Cluster._update_worker_status(self, op, msg)  # type: ignore[arg-type]


class _LocalCluster(_SchedulerOutside, LocalCluster):
    """dask's ``LocalCluster``, its scheduler outside the kernel."""


@dataclasses.dataclass(frozen=True)
class ClusterInfo:
    """A cluster hpo_nb runs trials on."""

    kind: str
    scheduler: str
    workers: int
    gpus: int
    dashboard: str | None

    def __repr__(self) -> str:
        gpus = f" ({self.gpus} GPUs, one trial each)" if self.gpus else ""
        board = f", dashboard {self.dashboard}" if self.dashboard else ""
        return f"<hpo_nb cluster {self.kind}: {self.workers} workers{gpus}{board}>"

    def _repr_html_(self) -> str:
        text = repr(self)[1:-1]
        if self.dashboard:
            text = text.replace(self.dashboard, f'<a href="{self.dashboard}">{self.dashboard}</a>')
        return f"<p>{text}</p>"


def _resolve(kind: str | None) -> str:
    kind = kind or "auto"
    if kind == "auto":
        return "cuda" if gpu_count() > 0 else "local"
    return kind


def check(cluster: str | None, workers: int | None, gpus: str | None) -> str:
    """The kind of cluster asked for (``local``, ``cuda`` or an address), or a one-line error
    for a request this machine cannot meet; cheap (it starts nothing, and connects to a
    scheduler's address only to see that something listens there)."""
    kind = _resolve(cluster)
    if kind == "cuda" and workers is not None:
        raise HpoError(
            "a cuda cluster has one worker per GPU: choose them with --gpus, not --workers"
        )
    if kind != "local" and workers is not None:
        raise HpoError("--workers sizes the local CPU cluster; other clusters keep their workers")
    if gpus is not None and kind != "cuda":
        why = "NVML found no GPU" if cluster in (None, "auto") else f"--cluster {cluster}"
        raise HpoError(
            f"--gpus {gpus} picks the GPUs of a cuda cluster, but this one is {kind} "
            f"({why}): leave --gpus out"
        )
    if kind == "cuda" and gpu_count() == 0:
        raise HpoError("--cluster cuda needs an NVIDIA GPU and its driver; NVML found none")
    if kind not in ("local", "cuda"):
        _probe(kind)
    return kind


_PROBE_TIMEOUT = 3.0  # seconds; dask itself would try for 10 s before it gives up


def _probe(address: str) -> None:
    """A one-line error, in the cell that asked, when nothing listens at a scheduler's TCP
    address (dask would only tell the run, 10 s later)."""
    try:
        scheme, location = parse_address(address)
        if scheme not in ("tcp", "tls", "ws", "wss"):
            return
        host, port = parse_host_port(location)
    except (ValueError, TypeError):
        raise HpoError(
            f"--cluster {address}: not a scheduler address (e.g. tcp://host:8786), nor "
            "auto, local or cuda"
        ) from None
    try:
        socket.create_connection((host, port), timeout=_PROBE_TIMEOUT).close()
    except OSError as e:
        why = "timed out" if isinstance(e, TimeoutError) else (e.strerror or str(e))
        raise HpoError(
            f"cannot reach the dask scheduler at {address} ({why}): start it (dask scheduler) "
            "or fix --cluster"
        ) from None


def get_client(
    cluster: str | None = None, workers: int | None = None, gpus: str | None = None
) -> Client:
    """A client for ``cluster``: ``auto`` (default), ``local``, ``cuda`` or a scheduler address."""
    kind = check(cluster, workers, gpus)
    if kind in ("local", "cuda"):
        return _local_client(kind, workers, gpus)
    return _remote_client(kind)


def _local_client(kind: str, workers: int | None, gpus: str | None) -> Client:
    with _lock:
        current = _local.get(kind)
        if current is not None and current[1].status != "running":
            _close(kind)
            current = None
        # Nannies copy the config they are made with to their workers (and to the workers
        # they restart), so the settings reach every worker process.
        with dask.config.set(_QUIET):
            if current is None:
                try:
                    instance = _start_cuda(gpus) if kind == "cuda" else _start_local(workers)
                except RuntimeError as e:  # e.g. the scheduler's process did not start
                    raise HpoError(f"the local dask cluster did not start: {e}") from None
                current = _local[kind] = (instance, Client(instance, set_as_default=False))
            instance, client = current
            started_on = getattr(instance, "hpo_nb_gpus", None)
            if kind == "cuda" and gpus is not None and gpus != started_on:
                raise HpoError(
                    f"this kernel's cuda cluster runs on GPUs {started_on or 'all'}, not {gpus}: "
                    "close it first (hpo_nb.close_clusters()) to choose other GPUs"
                )
            if kind == "local" and workers is not None and len(instance.workers) != workers:
                instance.scale(workers)
                _wait_for_exactly(client, workers)
        return client


def _wait_for_exactly(client: Client, n: int, timeout: float = 120.0) -> None:
    """``wait_for_workers`` waits for at least ``n``; after scaling down, the retiring workers
    must be gone too, or tasks land on them and wait for data that leaves with them."""
    deadline = time.monotonic() + timeout
    while len(client.scheduler_info().get("workers", {})) != n:
        if time.monotonic() > deadline:
            raise HpoError(f"the local cluster did not reach {n} workers in {timeout:g} s")
        time.sleep(0.1)


def _dashboard() -> str | None:
    return "127.0.0.1:0" if importlib.util.find_spec("bokeh") else None


def _start_local(workers: int | None) -> LocalCluster:
    return _LocalCluster(
        n_workers=workers or settings.workers,
        processes=True,
        dashboard_address=_dashboard(),
        **_COMMON,
    )


def _start_cuda(gpus: str | None) -> Any:
    if gpu_count() == 0:
        raise HpoError("--cluster cuda needs an NVIDIA GPU and its driver; NVML found none")
    try:
        from dask_cuda import LocalCUDACluster
    except ImportError:
        raise HpoError("--cluster cuda needs dask-cuda: pip install 'hpo_nb[gpu]'") from None

    class _LocalCUDACluster(_SchedulerOutside, LocalCUDACluster):
        """dask-cuda's ``LocalCUDACluster``, its scheduler outside the kernel."""

    instance = _LocalCUDACluster(
        CUDA_VISIBLE_DEVICES=gpus,  # one worker per device, each seeing its own first
        dashboard_address=_dashboard(),
        resources={"GPU": 1},  # each trial takes the GPU of its worker
        **_COMMON,
    )
    instance.hpo_nb_gpus = gpus  # what --gpus asked for (None: every GPU)
    return instance


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


def cluster(kind: str = "auto", workers: int | None = None, gpus: str | None = None) -> ClusterInfo:
    """Start (or reuse) the cluster trials run on, and say where its dashboard is."""
    client = get_client(kind, workers, gpus)
    info = client.scheduler_info()
    members = info.get("workers", {})
    n_gpus = sum(1 for w in members.values() if "GPU" in (w.get("resources") or {}))
    return ClusterInfo(
        kind=_resolve(kind) if _resolve(kind) in ("local", "cuda") else "remote",
        scheduler=str(client.scheduler.address),
        workers=len(members),
        gpus=n_gpus,
        dashboard=client.dashboard_link if _dashboard() or kind not in ("auto", "local") else None,
    )


def _close(kind: str) -> None:
    instance, client = _local.pop(kind)
    client.close()
    instance.close()


def close_all() -> None:
    """Close every client and local cluster this process started."""
    with _lock:
        for kind in list(_local):
            _close(kind)
        for client in _remote.values():
            client.close()
        _remote.clear()


atexit.register(close_all)
