"""Entry point: ``dicomvault run catalogue`` (or ``python -m catalogue``)."""

from __future__ import annotations

import asyncio
import signal

from catalogue.service import run
from catalogue.settings import CatalogueSettings
from dicomvault.logs import configure


def main() -> None:
    settings = CatalogueSettings()
    configure(settings.log, "catalogue")

    async def _main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await run(settings, stop)

    asyncio.run(_main())


if __name__ == "__main__":
    main()
