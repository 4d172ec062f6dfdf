"""HTTP on the gateway's port: /metrics, /healthz, /readyz. DICOMweb (/dicomweb: STOW-RS,
QIDO-RS, WADO-RS) is a later issue: it becomes a router mounted here."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

if TYPE_CHECKING:
    from dicom_gateway.service import Gateway


def build_app(gateway: Gateway) -> FastAPI:
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

    return app


