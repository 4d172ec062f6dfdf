"""Stopping a child process the one way: SIGTERM, wait a bounded time for it to finish what
it holds, then SIGKILL and reap it. For the embedded broker, the gateway's DIMSE workers, the
embedded supervisor's services, and the tests' peers."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterable


def stop_process(process: subprocess.Popen, timeout_s: float) -> int | None:
    """Stop ``process`` (already ended: nothing to do); its exit code."""
    return stop_processes([process], timeout_s)[0]


def stop_processes(processes: Iterable[subprocess.Popen], timeout_s: float
                   ) -> list[int | None]:
    """Send SIGTERM to every one still running first, then wait for each, up to
    ``timeout_s`` each, and kill the ones that do not end; their exit codes, in order."""
    processes = list(processes)
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return [process.returncode for process in processes]
