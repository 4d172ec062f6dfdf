"""Entry point: ``dicomvault run stow-exporter`` (or ``python -m stow_exporter``)."""

from __future__ import annotations

import asyncio
import signal

from dicomvault.logs import configure
from stow_exporter.service import run
from stow_exporter.settings import ExporterSettings


def main() -> None:
    settings = ExporterSettings()
    configure(settings.log, "stow-exporter")

    async def _main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await run(settings, stop)

    asyncio.run(_main())


if __name__ == "__main__":
    main()
