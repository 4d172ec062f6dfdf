"""HTTP: /metrics, /healthz, /readyz and GET /api/v1/archives (readiness and queue state)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import contextmanager

import uvicorn
from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from dicomvault.metrics import metrics_app
from hsm_archiver.handlers import Hosted
from hsm_archiver.metrics import REGISTRY


def build_app(archives: list[Hosted], ready: Callable[[], str | None]) -> FastAPI:
    app = FastAPI(title="DICOM Vault hsm-archiver", docs_url=None, redoc_url=None)
    app.mount("/metrics/", metrics_app(REGISTRY))

    @app.get("/metrics")
    async def metrics() -> Response:  # no redirect to /metrics/ for scrapers
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz")
    async def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        reason = ready()
        if reason:
            return JSONResponse({"status": "not ready", "reason": reason}, status_code=503)
        return JSONResponse({"status": "ready"})

    @app.get("/api/v1/archives")
    async def list_archives() -> list[dict]:
        async def one(h: Hosted) -> dict:
            cfg = h.archive.config
            try:
                reason = await asyncio.wait_for(h.archive.readiness(), timeout=15)
            except TimeoutError:
                reason = "readiness check timed out"
            return {
                "id": cfg.id, "kind": cfg.kind, "ready": reason is None, "reason": reason or "",
                "free_bytes": h.archive.free_bytes,
                "location": (str(cfg.hsm.folder) if cfg.hsm else
                             f"{cfg.pacs.ae_title}@{cfg.pacs.host}:{cfg.pacs.port}"
                             if cfg.pacs else ""),
                "queues": [{"name": q.name, "kind": q.kind, "state": q.state.value,
                            "reason": q.reason, "depth": q.depth(), "counts": q.counts()}
                           for q in (h.store, h.retrieve)],
            }

        return list(await asyncio.gather(*(one(h) for h in archives)))

    return app


class Server(uvicorn.Server):
    """uvicorn without its own signal handling: the service's stop event rules."""

    @contextmanager
    def capture_signals(self):
        yield
