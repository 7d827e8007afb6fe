"""The local clusters' dask scheduler, in a process of its own.

A scheduler in the kernel's process would run its event loop there, and every message of every
trial would take the kernel's interpreter lock from the trial loop (sampler, storage writer).
In its own process it takes its own core instead. The process starts in a session of its own,
so that Jupyter's signals to the kernel's process group (SIGINT on interrupt, SIGTERM on
shutdown) do not reach it, and it exits by itself within a second if the kernel goes away.

The process runs this file (not ``-m hpo_nb.execution.scheduler``, which would import all of hpo_nb
first: about 1 s and 60 MiB more), given the scheduler's options and dask config as JSON; it
prints its address once it listens. Nothing here imports hpo_nb.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import os
import subprocess
import sys
from typing import Any

import dask
from distributed import Scheduler
from distributed.deploy.spec import ProcessInterface

__all__ = ["SchedulerProcess"]

_START_TIMEOUT = 60.0  # seconds for the process to start and listen
_CLOSE_TIMEOUT = 10.0  # seconds for it to exit once told to, before it is killed
_PARENT_CHECK = 1.0  # seconds between checks that the kernel is still there
_RUN_THIS_FILE = "import runpy, sys; runpy.run_path(sys.argv[1], run_name='__main__')"


class SchedulerProcess(ProcessInterface):
    """A ``SpecCluster`` scheduler that runs in a subprocess; ``options`` go to ``Scheduler``,
    ``config`` to ``dask.config.set`` there. Both must be JSON."""

    def __init__(self, config: dict[str, Any] | None = None, **options: Any) -> None:
        super().__init__()
        self.options = options
        self.config = config or {}
        self.process: asyncio.subprocess.Process | None = None
        self._stderr: collections.deque[str] = collections.deque(maxlen=20)
        self._drain: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _RUN_THIS_FILE,
            __file__,
            json.dumps({"options": self.options, "config": self.config}),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        assert self.process.stdout is not None and self.process.stderr is not None
        # Read stderr for as long as the process lives: a full pipe would block its logging.
        self._drain = asyncio.ensure_future(self._keep_stderr(self.process.stderr))
        try:
            line = await asyncio.wait_for(self.process.stdout.readline(), _START_TIMEOUT)
        except asyncio.TimeoutError:
            line = b""
        if not line.strip():
            await self.close()
            last = self._stderr[-1] if self._stderr else "no output"
            raise RuntimeError(f"the dask scheduler process did not start: {last}")
        self.address = line.decode().strip()
        await super().start()

    async def _keep_stderr(self, stream: asyncio.StreamReader) -> None:
        while line := await stream.readline():
            self._stderr.append(line.decode(errors="replace").rstrip())

    async def close(self) -> None:
        process = self.process
        if process is not None and process.returncode is None:
            try:
                await asyncio.wait_for(process.wait(), _CLOSE_TIMEOUT)
            except asyncio.TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        if self._drain is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._drain
        await super().close()


async def _serve(options: dict[str, Any]) -> None:
    parent = os.getppid()
    async with Scheduler(**options) as scheduler:
        print(scheduler.address, flush=True)
        finished = asyncio.ensure_future(scheduler.finished())
        while not finished.done():
            await asyncio.wait([finished], timeout=_PARENT_CHECK)
            if os.getppid() != parent:  # the kernel died without closing us
                await scheduler.close()
        await finished


def main() -> None:
    given = json.loads(sys.argv[-1])
    dask.config.set(given["config"])
    logging.getLogger("distributed").setLevel(logging.ERROR)
    asyncio.run(_serve(given["options"]))


if __name__ == "__main__":
    main()
