"""The HTTP routes every service serves for Kubernetes and Prometheus.

``GET /metrics`` (the service's registry, no redirect to ``/metrics/`` for scrapers),
``GET /healthz`` (the process answers) and ``GET /readyz`` (200, or 503 with the reason the
service gives: broker, database, consumers, listeners).
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest


def health_router(registry: CollectorRegistry, not_ready: Callable[[], str | None]) -> APIRouter:
    """The three routes; ``not_ready()`` returns why the service is not ready, or None/''."""
    router = APIRouter()

    @router.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @router.get("/healthz")
    async def healthz() -> dict:
        return {"status": "ok"}

    @router.get("/readyz")
    async def readyz() -> JSONResponse:
        reason = not_ready()
        if reason:
            return JSONResponse({"status": "not ready", "reason": reason}, status_code=503)
        return JSONResponse({"status": "ready"})

    return router
