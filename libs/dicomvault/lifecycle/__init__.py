"""How a service process lives: logs configured, run until SIGTERM/SIGINT, then stop cleanly.

Every service's ``__main__`` loads its settings and hands them here with its ``run``:

    def main() -> None:
        serve("catalogue", CatalogueSettings(), run)
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import uvicorn

from dicomvault.logs import configure

S = TypeVar("S")


def serve(name: str, settings: S, run: Callable[[S, asyncio.Event], Awaitable[Any]]) -> None:
    """Configure logging as ``name``, then ``run(settings, stop)``; a signal sets ``stop``."""
    configure(settings.log, name)

    async def _main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await run(settings, stop)

    asyncio.run(_main())


class HttpServer(uvicorn.Server):
    """uvicorn without its own signal handlers: the service's stop event rules (``serve``)."""

    def capture_signals(self):
        return contextlib.nullcontext()
