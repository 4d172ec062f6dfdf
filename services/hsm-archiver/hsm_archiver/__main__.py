"""Entry point: ``dicomvault run hsm-archiver`` (or ``python -m hsm_archiver``)."""

from __future__ import annotations

import asyncio
import signal

from dicomvault.logs import configure
from hsm_archiver.service import run
from hsm_archiver.settings import ArchiverSettings


def main() -> None:
    settings = ArchiverSettings()
    configure(settings.log, "hsm-archiver")

    async def _main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await run(settings, stop)

    asyncio.run(_main())


if __name__ == "__main__":
    main()
