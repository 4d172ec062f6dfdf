"""Entry point: `dicomvault run gateway` or `python -m dicom_gateway`."""

from __future__ import annotations

import asyncio
import signal

from dicom_gateway.service import run
from dicom_gateway.settings import GatewaySettings
from dicomvault.logs import configure


def main() -> None:
    settings = GatewaySettings()
    configure(settings.log, "dicom-gateway")

    async def _main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await run(settings, stop)

    asyncio.run(_main())


if __name__ == "__main__":
    main()
