"""HTTP: /metrics, /healthz, /readyz, GET /api/v1/archives (readiness and queue state) and
POST /api/v1/studies/{uid}/evict (evict one study from the cache tier now).

Every route under ``/api/v1`` needs a bearer token: GET/HEAD the read scope, any other method
the admin scope (``TokenVerifier.guard_api``, on the app, so routes added later inherit it).
/metrics, /healthz and /readyz stay open."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from dicomvault.auth import AuthSettings, TokenVerifier
from dicomvault.health import health_router
from dicomvault.metrics import metrics_app
from hsm_archiver.metrics import REGISTRY
from hsm_archiver.on_demand import (
    CATALOGUE_UNAVAILABLE,
    EVICTED,
    INVALID_UID,
    UNKNOWN_STUDY,
    EvictionResult,
)
from hsm_archiver.policies import Hosted

# Outcome of an eviction request -> HTTP status; every refusal not listed is 409 (conflict:
# the study is not in the cache, or not safe enough elsewhere to leave it).
EVICTION_HTTP = {EVICTED: 200, INVALID_UID: 400, UNKNOWN_STUDY: 404,
                 CATALOGUE_UNAVAILABLE: 503}

Evict = Callable[[str, str, str], Awaitable[EvictionResult]]  # study, who, peer address


def build_app(archives: list[Hosted], ready: Callable[[], str | None],
              verifier: TokenVerifier | None = None, evict: Evict | None = None) -> FastAPI:
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

    if evict is not None:
        @app.post("/api/v1/studies/{uid}/evict")
        async def evict_study(uid: str, request: Request) -> JSONResponse:
            principal = getattr(request.state, "principal", None)
            peer = f"{request.client.host}:{request.client.port}" if request.client else ""
            result = await evict(uid, getattr(principal, "subject", "") or "anonymous", peer)
            code = EVICTION_HTTP.get(result.status, 409)
            body = {"study_instance_uid": uid, "status": result.status,
                    "instances": result.instances, "freed_bytes": result.freed_bytes,
                    "copies": list(result.copies)}
            if code == 200:
                return JSONResponse({**body, "reason": result.reason})
            return JSONResponse({**body, "detail": result.reason}, status_code=code)

    return app
