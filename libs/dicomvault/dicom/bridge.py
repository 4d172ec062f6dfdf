"""The one place where pynetdicom's threads cross into a service's asyncio loop.

pynetdicom runs every association in its own threads; the DIMSE handlers of the gateway and
of the commitment service reach the service's asyncio parts (publisher, catalogue client, job
queues) only through ``Bridge.call``, never through an ad hoc ``run_coroutine_threadsafe``."""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class BridgeTimeout(TimeoutError):
    """The coroutine did not finish within the bridge's timeout (it has been cancelled)."""


class Bridge:
    """Runs coroutines on ``loop`` from other threads and waits for them, bounded."""

    def __init__(self, loop: asyncio.AbstractEventLoop, timeout_s: float) -> None:
        self.loop = loop
        self.timeout_s = timeout_s

    def call(self, coro: Coroutine[Any, Any, T], timeout_s: float | None = None) -> T:
        """Run ``coro`` on the loop; return its result or raise its exception.

        Raises BridgeTimeout (after cancelling it) when it takes longer than the timeout, and
        RuntimeError when the loop is gone (the service is stopping).
        """
        try:
            future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        except RuntimeError:
            coro.close()
            raise
        try:
            return future.result(timeout_s if timeout_s is not None else self.timeout_s)
        except concurrent.futures.TimeoutError as exc:
            future.cancel()
            raise BridgeTimeout("the service did not answer in time") from exc
