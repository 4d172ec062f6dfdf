"""HTTP on the gateway's port: /metrics, /healthz, /readyz, and DICOMweb under /dicomweb
(STOW-RS, QIDO-RS, WADO-RS; see dicomweb/) and the OHIF viewer at /viewer (viewer.py).
HTTPS when ``http.cert_file``/``key_file`` are set, as on every service (``http_settings``
also honours the deprecated ``https`` section)."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from fastapi import APIRouter, FastAPI
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from dicom_gateway import viewer
from dicom_gateway.dicomweb import DicomWeb, build_router
from dicom_gateway.dicomweb.audit import DicomWebAudit
from dicom_gateway.ingest import Ingest
from dicom_gateway.limits import RequestLimits
from dicom_gateway.node import make_store
from dicom_gateway.settings import GatewaySettings
from dicomvault.audit import AuditTrail
from dicomvault.audit.http import AuthFailures
from dicomvault.auth import TokenVerifier
from dicomvault.bus import Publisher
from dicomvault.dicom.bridge import Bridge
from dicomvault.health import alive, readiness
from dicomvault.query import CatalogueClient
from dicomvault.settings import HttpSettings

if TYPE_CHECKING:
    from dicom_gateway.service import Gateway

log = logging.getLogger(__name__)


def dicomweb(settings: GatewaySettings, publisher: Publisher,
             catalogue: CatalogueClient, audit: AuditTrail | None = None) -> DicomWeb:
    """The DICOMweb context on the running loop: its own Ingest (same path as C-STORE)."""
    bridge = Bridge(asyncio.get_running_loop(), timeout_s=settings.gateway.store_timeout_s + 5)
    store = make_store(settings)
    return DicomWeb(settings=settings, ingest=Ingest(settings, store, publisher, bridge),
                    store=store, catalogue=catalogue, publisher=publisher,
                    verifier=TokenVerifier(settings.auth), audit=audit)


def http_settings(settings: GatewaySettings) -> HttpSettings:
    """The HTTP listener's settings: ``http``, or with the deprecated ``https`` section's
    certificate when ``http`` names none (warned)."""
    old = settings.https
    if settings.http.tls or (old.cert_file is None and old.key_file is None):
        return settings.http
    log.warning("DICOMVAULT_HTTPS__* is deprecated: use DICOMVAULT_HTTP__CERT_FILE, "
                "DICOMVAULT_HTTP__KEY_FILE and DICOMVAULT_HTTP__KEY_PASSWORD_FILE")
    return settings.http.model_copy(update={
        "cert_file": old.cert_file, "key_file": old.key_file,
        "key_password_file": old.key_password_file or settings.http.key_password_file})


def build_app(gateway: Gateway, web: DicomWeb | None = None) -> FastAPI:
    app = FastAPI(title="DICOM Vault gateway", docs_url=None, redoc_url=None)
    limits = gateway.settings.dicomweb
    app.add_middleware(RequestLimits, max_url_bytes=limits.max_url_bytes,
                       max_header_bytes=limits.max_header_bytes)

    @app.get("/metrics")
    async def metrics() -> Response:
        body = await gateway.metrics_text()
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz")
    async def healthz() -> dict:
        return alive()

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        return readiness(await gateway.not_ready(), dimse_port=gateway.dimse_port)

    if web is not None:
        if web.audit is not None:
            app.add_middleware(DicomWebAudit, trail=web.audit,
                               called_ae=gateway.settings.gateway.ae_title)
            app.add_middleware(AuthFailures, trail=web.audit, prefixes=("/dicomweb", "/api/v1"),
                               called_ae=gateway.settings.gateway.ae_title)
        app.include_router(build_router(web))
        viewer_router = APIRouter()
        viewer.routes(viewer_router, web)
        app.include_router(viewer_router)
    return app
