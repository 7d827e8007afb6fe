"""Preloaded into the local cluster's worker processes (``dask_setup`` runs in their main thread).

Jupyter interrupts a kernel by sending SIGINT to its whole process group, and the local workers
are in that group: without this, Ctrl-C in the notebook would kill every worker.
"""

from __future__ import annotations

import signal
from typing import Any


def dask_setup(worker: Any) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
