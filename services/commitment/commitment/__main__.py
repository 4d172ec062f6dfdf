"""Entry point: `dicomvault run commitment` or `python -m commitment`."""

from __future__ import annotations

import asyncio
import signal

from commitment.service import run
from commitment.settings import CommitmentSettings
from dicomvault.logs import configure


def main() -> None:
    settings = CommitmentSettings()
    configure(settings.log, "commitment")

    async def _main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await run(settings, stop)

    asyncio.run(_main())


if __name__ == "__main__":
    main()
