"""A fake ``pynvml`` (nvidia-ml-py) for CPU machines: N simulated GPUs whose memory holders live
in a JSON file, so that every process (the kernel side and each dask worker) sees the same
devices. Put this folder first on ``PYTHONPATH`` to shadow the real module everywhere.

Environment:

- ``FAKE_NVML_GPUS``: how many GPUs (default 2; 0 behaves like a machine without a driver).
- ``FAKE_NVML_STATE``: the JSON file, ``{"<index>": [{"pid", "used", "leak"}, ...]}``.

A holder is listed by ``nvmlDeviceGetComputeRunningProcesses`` while its process lives, or
forever when it ``leak``s (memory that never came back). Objectives call :func:`fake_allocate`
to "use the GPU" this process sees (the first of ``CUDA_VISIBLE_DEVICES``).

Only what distributed, dask-cuda and hpo_nb call is here.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from types import SimpleNamespace
from typing import Any

TOTAL_MEMORY = 16 * 2**30
BUSY_UTILIZATION = 90  # percent, while a live process holds memory on the device

NVML_DEVICE_MIG_DISABLE = 0
NVML_DEVICE_MIG_ENABLE = 1
NVML_SUCCESS = 0
NVML_ERROR_UNINITIALIZED = 1
NVML_ERROR_INVALID_ARGUMENT = 2
NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_NOT_FOUND = 6
NVML_ERROR_DRIVER_NOT_LOADED = 9
NVML_ERROR_LIBRARY_NOT_FOUND = 12
NVML_ERROR_UNKNOWN = 999


class NVMLError(Exception):
    value = NVML_ERROR_UNKNOWN

    def __init__(self, value: int | None = None) -> None:
        if value is not None:
            self.value = value
        super().__init__(f"fake NVML error {self.value}")


class NVMLError_Uninitialized(NVMLError):  # pynvml's names, from here on
    value = NVML_ERROR_UNINITIALIZED


class NVMLError_InvalidArgument(NVMLError):
    value = NVML_ERROR_INVALID_ARGUMENT


class NVMLError_NotSupported(NVMLError):
    value = NVML_ERROR_NOT_SUPPORTED


class NVMLError_NotFound(NVMLError):
    value = NVML_ERROR_NOT_FOUND


class NVMLError_DriverNotLoaded(NVMLError):
    value = NVML_ERROR_DRIVER_NOT_LOADED


class NVMLError_LibraryNotFound(NVMLError):
    value = NVML_ERROR_LIBRARY_NOT_FOUND


class NVMLError_Unknown(NVMLError):
    value = NVML_ERROR_UNKNOWN


class _Handle:
    def __init__(self, index: int) -> None:
        self.index = index

    def __repr__(self) -> str:
        return f"<fake NVML device {self.index}>"


def _count() -> int:
    return int(os.environ.get("FAKE_NVML_GPUS", "2"))


# -- the shared state ------------------------------------------------------------------------


@contextlib.contextmanager
def _locked_state(write: bool = False):
    """The state, under an exclusive lock; written back (atomically) with ``write``."""
    path = os.environ.get("FAKE_NVML_STATE")
    if not path:  # no state file: idle devices
        if write:
            raise RuntimeError("fake pynvml: set FAKE_NVML_STATE to allocate memory")
        yield {}
        return
    with open(path + ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            with open(path) as f:
                state = json.load(f)
        except (FileNotFoundError, json.JSONDecodeError):
            state = {}
        yield state
        if write:
            with open(path + ".tmp", "w") as f:
                json.dump(state, f)
            os.replace(path + ".tmp", path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError), open(f"/proc/{pid}/stat") as f:  # a zombie holds nothing
        return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    return True


def _holders(handle: _Handle) -> list[dict[str, Any]]:
    with _locked_state() as state:
        entries = state.get(str(handle.index), [])
    return [h for h in entries if h.get("leak") or _alive(int(h["pid"]))]


def fake_allocate(nbytes: int, leak: bool = False) -> int:
    """Hold ``nbytes`` on this process's GPU (until it exits; forever with ``leak``)."""
    first = os.environ.get("CUDA_VISIBLE_DEVICES", "0").split(",")[0].strip()
    index = _handle_of(first).index
    pid = os.getpid()
    with _locked_state(write=True) as state:
        entries = [h for h in state.get(str(index), []) if h["pid"] != pid]
        state[str(index)] = [*entries, {"pid": pid, "used": int(nbytes), "leak": bool(leak)}]
    return index


def _handle_of(device: str) -> _Handle:
    if device.startswith("GPU-"):
        return nvmlDeviceGetHandleByUUID(device)
    return nvmlDeviceGetHandleByIndex(int(device))


# -- the NVML API ----------------------------------------------------------------------------


def nvmlInit() -> None:
    if _count() <= 0:
        raise NVMLError_DriverNotLoaded()


def nvmlShutdown() -> None:
    pass


def nvmlSystemGetDriverVersion() -> str:
    return "999.99"


def nvmlDeviceGetCount() -> int:
    return _count()


def nvmlDeviceGetHandleByIndex(index: int) -> _Handle:
    if not 0 <= int(index) < _count():
        raise NVMLError_InvalidArgument()
    return _Handle(int(index))


def nvmlDeviceGetHandleByUUID(uuid: str | bytes) -> _Handle:
    text = uuid.decode() if isinstance(uuid, bytes) else str(uuid)
    for index in range(_count()):
        if text == f"GPU-fake-{index}":
            return _Handle(index)
    raise NVMLError_NotFound()


def nvmlDeviceGetUUID(handle: _Handle) -> str:
    return f"GPU-fake-{handle.index}"


def nvmlDeviceGetIndex(handle: _Handle) -> int:
    return handle.index


def nvmlDeviceGetName(handle: _Handle) -> str:
    return "Fake GPU"


def nvmlDeviceGetCpuAffinity(handle: _Handle, cpu_set_size: int) -> list[int]:
    masks = [0] * cpu_set_size  # every CPU this process may use, in 64-bit words
    for cpu in os.sched_getaffinity(0):
        if cpu // 64 < cpu_set_size:
            masks[cpu // 64] |= 1 << (cpu % 64)
    return masks


def nvmlDeviceGetMemoryInfo(handle: _Handle) -> SimpleNamespace:
    used = sum(int(h["used"]) for h in _holders(handle))
    return SimpleNamespace(total=TOTAL_MEMORY, used=used, free=TOTAL_MEMORY - used)


def nvmlDeviceGetUtilizationRates(handle: _Handle) -> SimpleNamespace:
    busy = any(_alive(int(h["pid"])) for h in _holders(handle))
    return SimpleNamespace(gpu=BUSY_UTILIZATION if busy else 0, memory=30 if busy else 0)


def nvmlDeviceGetComputeRunningProcesses(handle: _Handle) -> list[SimpleNamespace]:
    return [
        SimpleNamespace(pid=int(h["pid"]), usedGpuMemory=int(h["used"])) for h in _holders(handle)
    ]


nvmlDeviceGetComputeRunningProcesses_v2 = nvmlDeviceGetComputeRunningProcesses
nvmlDeviceGetComputeRunningProcesses_v3 = nvmlDeviceGetComputeRunningProcesses


# No device here supports MIG.
def nvmlDeviceGetMigMode(handle: _Handle) -> list[int]:
    raise NVMLError_NotSupported()


def nvmlDeviceGetMaxMigDeviceCount(handle: _Handle) -> int:
    return 0


def nvmlDeviceGetMigDeviceHandleByIndex(device: _Handle, index: int) -> _Handle:
    raise NVMLError_NotFound()


def nvmlDeviceIsMigDeviceHandle(handle: _Handle) -> bool:
    return False


def nvmlDeviceGetDeviceHandleFromMigDeviceHandle(handle: _Handle) -> _Handle:
    raise NVMLError_InvalidArgument()
