"""The HTTP routes every service serves for Kubernetes and Prometheus, and their one JSON shape.

``GET /metrics`` (the service's registry, no redirect to ``/metrics/`` for scrapers),
``GET /healthz`` (the process answers: 200 ``{"status": "ok"}``) and ``GET /readyz``:
200 ``{"status": "ready", "reasons": []}``, or 503 ``{"status": "not ready", "reasons":
[...]}`` with every reason the service gives (broker, database, consumers, listeners). A
service may add fields of its own beside these (the gateway: ``dimse_port``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest


def alive() -> dict:
    """The body of ``GET /healthz``."""
    return {"status": "ok"}


def readiness(reasons: Iterable[str | None], **extra: object) -> JSONResponse:
    """The answer of ``GET /readyz``: 200 when ``reasons`` holds none, else 503 with them."""
    why = [r for r in reasons if r]
    if why:
        return JSONResponse({"status": "not ready", "reasons": why, **extra}, status_code=503)
    return JSONResponse({"status": "ready", "reasons": [], **extra})


def health_router(registry: CollectorRegistry, not_ready: Callable[[], str | None]) -> APIRouter:
    """The three routes; ``not_ready()`` returns why the service is not ready, or None/''."""
    router = APIRouter()

    @router.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @router.get("/healthz")
    async def healthz() -> dict:
        return alive()

    @router.get("/readyz")
    async def readyz() -> JSONResponse:
        return readiness([not_ready()])

    return router
