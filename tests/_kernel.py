"""Drive a real IPython kernel (ipykernel through jupyter_client) from tests."""

from __future__ import annotations

import dataclasses
import os
import queue
import time
from typing import Any

from jupyter_client.manager import KernelManager


@dataclasses.dataclass
class Reply:
    """What one execution produced."""

    status: str
    stdout: str = ""
    stderr: str = ""
    outputs: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    error: dict[str, Any] | None = None
    payload: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    @property
    def text(self) -> str:
        """Every text/plain output (display data and results), joined by newlines."""
        return "\n".join(o["data"].get("text/plain", "") for o in self.outputs if "data" in o)

    @property
    def error_text(self) -> str:
        if self.error is None:
            return ""
        return f"{self.error['ename']}: {self.error['evalue']}"


class Kernel:
    """A kernel started in ``cwd``; ``execute`` runs a cell and returns its :class:`Reply`."""

    def __init__(self, cwd: str, extra_env: dict[str, str] | None = None) -> None:
        self.manager = KernelManager(kernel_name="python3")
        env = {**os.environ, **(extra_env or {})}
        self.manager.start_kernel(cwd=cwd, env=env)
        self.client = self.manager.client()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=60)

    def submit(self, code: str) -> str:
        """Send a cell without waiting; returns its message id."""
        return self.client.execute(code, store_history=True)

    def collect(self, msg_id: str, timeout: float = 120) -> Reply:
        """Gather the outputs of ``msg_id`` until the kernel is idle again."""
        reply = Reply(status="")
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"cell did not finish in {timeout} s")
            try:
                msg = self.client.get_iopub_msg(timeout=remaining)
            except queue.Empty:
                continue
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream":
                if content["name"] == "stdout":
                    reply.stdout += content["text"]
                else:
                    reply.stderr += content["text"]
            elif kind in ("display_data", "execute_result"):
                reply.outputs.append(content)
            elif kind == "error":
                reply.error = content
            elif kind == "status" and content["execution_state"] == "idle":
                break
        shell = self.client.get_shell_msg(timeout=timeout)
        while shell["parent_header"].get("msg_id") != msg_id:
            shell = self.client.get_shell_msg(timeout=timeout)
        reply.status = shell["content"]["status"]
        reply.payload = shell["content"].get("payload", [])
        return reply

    def execute(self, code: str, timeout: float = 120) -> Reply:
        return self.collect(self.submit(code), timeout)

    def ok(self, code: str, timeout: float = 120) -> Reply:
        """Execute and assert that the cell did not raise."""
        reply = self.execute(code, timeout)
        assert reply.status == "ok", reply.error_text or reply.stderr
        return reply

    def usage_error(self, code: str, timeout: float = 120) -> str:
        """Execute ``code``, assert that it failed with one line (``UsageError: ...``) and
        nothing else, and return that line."""
        reply = self.execute(code, timeout)
        lines = [line for line in reply.stderr.splitlines() if line.strip()]
        assert reply.status == "error"
        assert len(lines) == 1 and lines[0].startswith("UsageError: "), reply.stderr
        return lines[0]

    def interrupt(self) -> None:
        self.manager.interrupt_kernel()

    def shutdown(self) -> None:
        self.client.stop_channels()
        self.manager.shutdown_kernel(now=False)
