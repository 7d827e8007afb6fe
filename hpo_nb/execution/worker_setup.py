"""Preloaded into the local cluster's worker processes (``dask_setup`` runs in their main thread).

Jupyter signals the kernel's whole process group: SIGINT to interrupt, and on shutdown or
restart ipykernel sends SIGTERM to every child in its group before Python's exit handlers run.
Each local worker therefore leaves the kernel's process group, so that a Ctrl-C in the notebook
does not kill it and the kernel's exit handlers can still stop running trials cleanly (the
workers exit when their nanny, in the kernel, closes or dies).
"""

from __future__ import annotations

import contextlib
import os
import signal
from typing import Any


def dask_setup(worker: Any) -> None:
    with contextlib.suppress(OSError):  # not on platforms without process groups
        os.setpgid(0, 0)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
