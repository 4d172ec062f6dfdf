"""Entry point: ``dicomvault run operator`` (or ``python -m vault_operator``)."""

from __future__ import annotations

import asyncio
import signal

from dicomvault.logs import configure
from vault_operator.service import run
from vault_operator.settings import OperatorSettings


def main() -> None:
    settings = OperatorSettings()
    configure(settings.log, "operator")

    async def _main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await run(settings, stop)

    asyncio.run(_main())


if __name__ == "__main__":
    main()
