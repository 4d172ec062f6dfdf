"""HTTP on the gateway's port: /metrics, /healthz, /readyz, and DICOMweb under /dicomweb
(STOW-RS, QIDO-RS, WADO-RS; see dicomweb/). HTTPS when ``https.cert_file``/``key_file`` are
set (``uvicorn_tls``)."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from dicom_gateway.bridge import Bridge
from dicom_gateway.dicomweb import DicomWeb, build_router
from dicom_gateway.ingest import Ingest
from dicom_gateway.node import make_store
from dicom_gateway.settings import GatewaySettings
from dicomvault.auth import TokenVerifier
from dicomvault.bus import Publisher
from dicomvault.query import CatalogueClient

if TYPE_CHECKING:
    from dicom_gateway.service import Gateway

log = logging.getLogger(__name__)


def dicomweb(settings: GatewaySettings, publisher: Publisher,
             catalogue: CatalogueClient) -> DicomWeb:
    """The DICOMweb context on the running loop: its own Ingest (same path as C-STORE)."""
    bridge = Bridge(asyncio.get_running_loop(), timeout_s=settings.gateway.store_timeout_s + 5)
    store = make_store(settings)
    return DicomWeb(settings=settings, ingest=Ingest(settings, store, publisher, bridge),
                    store=store, catalogue=catalogue, publisher=publisher,
                    verifier=TokenVerifier(settings.auth))


def uvicorn_tls(settings: GatewaySettings) -> dict:
    """uvicorn's ssl_* options from the ``https`` section ({} for plain HTTP)."""
    cfg = settings.https
    if cfg.cert_file is None and cfg.key_file is None:
        return {}
    if cfg.cert_file is None or cfg.key_file is None:
        raise ValueError("https: set both cert_file and key_file (or neither)")
    options = {"ssl_certfile": str(cfg.cert_file), "ssl_keyfile": str(cfg.key_file)}
    if cfg.key_password_file is not None:
        options["ssl_keyfile_password"] = cfg.key_password_file.read_text().strip()
    log.info("HTTP port speaks HTTPS", extra={"cert_file": str(cfg.cert_file)})
    return options


def build_app(gateway: Gateway, web: DicomWeb | None = None) -> FastAPI:
    app = FastAPI(title="DICOM Vault gateway", docs_url=None, redoc_url=None)

    @app.get("/metrics")
    async def metrics() -> Response:
        body = await gateway.metrics_text()
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz")
    async def healthz() -> dict:
        return {"status": "alive"}

    @app.get("/readyz")
    async def readyz():
        reasons = await gateway.not_ready()
        if reasons:
            return JSONResponse({"status": "not ready", "reasons": reasons}, status_code=503)
        return {"status": "ready", "dimse_port": gateway.dimse_port}

    if web is not None:
        app.include_router(build_router(web))
    return app
