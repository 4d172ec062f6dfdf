"""Entry point: ``dicomvault run optical-burner`` (or ``python -m optical_burner``)."""

from __future__ import annotations

import asyncio
import signal

from dicomvault.logs import configure
from optical_burner.service import run
from optical_burner.settings import OpticalSettings


def main() -> None:
    settings = OpticalSettings()
    configure(settings.log, "optical-burner")

    async def _main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await run(settings, stop)

    asyncio.run(_main())


if __name__ == "__main__":
    main()
