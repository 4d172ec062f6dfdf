"""How a service process lives: logs configured, run until SIGTERM/SIGINT, then stop cleanly.

Every service's ``__main__`` loads its settings and hands them here with its ``run``:

    def main() -> None:
        serve("catalogue", CatalogueSettings(), run)

and builds its HTTP listener (HTTP, or HTTPS when the ``http`` section names a certificate
and key) with ``HttpServer.for_app(app, settings.http)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import ssl
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import uvicorn

from dicomvault.lifecycle import heap, malloc
from dicomvault.logs import configure
from dicomvault.settings import HttpSettings

S = TypeVar("S")
log = logging.getLogger(__name__)


class ServiceFailed(RuntimeError):
    """A part of a service ended without being asked to: the process exits non-zero."""


def serve(name: str, settings: S, run: Callable[[S, asyncio.Event], Awaitable[Any]]) -> None:
    """Configure logging as ``name``, then ``run(settings, stop)``; a signal sets ``stop``.
    ``run`` raising ServiceFailed exits with code 1 after one ERROR line with the reason (a
    supervisor or Kubernetes restarts the process and counts it)."""
    configure(settings.log, name)
    malloc.keep_large_buffers()  # large buffers reused, not mapped afresh each time
    heap.settle()  # what the imports built lives as long as the process: set it aside

    async def _main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await run(settings, stop)

    try:
        asyncio.run(_main())
    except ServiceFailed as exc:
        log.error("%s stopped on its own: exiting with code 1", name,
                  extra={"reason": str(exc)[:300]})
        raise SystemExit(1) from None


def uvicorn_tls(http: HttpSettings) -> dict[str, Any]:
    """uvicorn's ``ssl_*`` options of a listener ({} for plain HTTP); ValueError when only
    one of cert_file/key_file is set."""
    if http.cert_file is None and http.key_file is None:
        return {}
    if http.cert_file is None or http.key_file is None:
        raise ValueError("http: set both cert_file and key_file (or neither)")
    options: dict[str, Any] = {"ssl_certfile": str(http.cert_file),
                               "ssl_keyfile": str(http.key_file)}
    if http.key_password_file is not None:
        options["ssl_keyfile_password"] = http.key_password_file.read_text().strip()
    if http.client_ca_file is not None:
        options["ssl_ca_certs"] = str(http.client_ca_file)
        options["ssl_cert_reqs"] = (ssl.CERT_REQUIRED if http.require_client_cert
                                    else ssl.CERT_OPTIONAL)
    elif http.require_client_cert:
        raise ValueError("http: require_client_cert needs client_ca_file")
    return options


class HttpServer(uvicorn.Server):
    """uvicorn without its own signal handlers: the service's stop event rules (``serve``)."""

    @classmethod
    def for_app(cls, app: Any, http: HttpSettings, **options: Any) -> HttpServer:
        """The listener of ``app`` on ``http`` (host, port; HTTPS with cert_file + key_file,
        mutual TLS with client_ca_file); ``options`` override the uvicorn.Config defaults
        (no log config of its own, no access log, no lifespan)."""
        tls = uvicorn_tls(http)
        config = uvicorn.Config(app, host=http.host, port=http.port, **{
            "log_config": None, "access_log": False, "lifespan": "off", **tls, **options})
        log.info("HTTP listener", extra={"port": http.port, "scheme": "https" if tls else "http",
                                         "client_certificates": "required"
                                         if http.require_client_cert else "not required"})
        return cls(config)

    def capture_signals(self):
        return contextlib.nullcontext()
