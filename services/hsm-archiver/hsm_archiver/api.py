"""HTTP: /metrics, /healthz, /readyz and GET /api/v1/archives (readiness and queue state).

Every route under ``/api/v1`` needs a bearer token: GET/HEAD the read scope, any other method
the admin scope (``TokenVerifier.guard_api``, on the app, so routes added later inherit it).
/metrics, /healthz and /readyz stay open."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from fastapi import FastAPI

from dicomvault.auth import AuthSettings, TokenVerifier
from dicomvault.health import health_router
from dicomvault.metrics import metrics_app
from hsm_archiver.handlers import Hosted
from hsm_archiver.metrics import REGISTRY


def build_app(archives: list[Hosted], ready: Callable[[], str | None],
              verifier: TokenVerifier | None = None) -> FastAPI:
    """Without a ``verifier`` nothing needs a token (tests that build the app directly)."""
    app = FastAPI(title="DICOM Vault hsm-archiver", docs_url=None, redoc_url=None)
    (verifier or TokenVerifier(AuthSettings(enabled=False))).guard_api(app)
    app.mount("/metrics/", metrics_app(REGISTRY))

    app.include_router(health_router(REGISTRY, ready))

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
