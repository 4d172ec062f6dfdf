"""REST on the http port: /metrics, /healthz, /readyz, /api/v1/commitments.

Every route under ``/api/v1`` needs a bearer token: GET/HEAD the read scope, POST (and any
other method) the admin scope (``TokenVerifier.guard_api``, on the app, so routes added later
inherit it). /metrics, /healthz and /readyz stay open."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from fastapi import FastAPI, HTTPException, Query, Request
from pydantic import BaseModel, Field

from commitment.metrics import REGISTRY
from dicomvault.auth import AuthSettings, TokenVerifier
from dicomvault.health import health_router
from dicomvault.metrics import metrics_app

if TYPE_CHECKING:
    from commitment.service import Commitment


class InstanceRef(BaseModel):
    sop_class_uid: str
    sop_instance_uid: str


class CommitmentRequest(BaseModel):
    """Ask a remote AE to commit to instances of a study (becomes CommitmentRequested)."""

    study_instance_uid: str
    remote_ae: str = Field(..., description="A key of the modalities table.")
    instances: list[InstanceRef] = Field(
        default_factory=list, description="Empty: every instance the catalogue knows in the study.")
    delete_after_commit: bool | None = Field(
        None, description="Evict the cache copy after a full success (default: the setting).")
    requested_by: str = Field(
        "api", description="Who asks, recorded on the job; with bearer tokens the token's "
        "subject is recorded instead (audit: the caller cannot name someone else).")


def build_app(service: Commitment, not_ready: Callable[[], str],
              verifier: TokenVerifier | None = None) -> FastAPI:
    """``not_ready()``: why /readyz fails ("" when ready). Without a ``verifier`` nothing
    needs a token (tests that build the app directly)."""
    app = FastAPI(title="DICOM Vault commitment", docs_url=None, redoc_url=None)
    (verifier or TokenVerifier(AuthSettings(enabled=False))).guard_api(app)
    app.mount("/metrics/", metrics_app(REGISTRY))

    app.include_router(health_router(REGISTRY, not_ready))

    @app.get("/api/v1/commitments")
    async def list_commitments(role: str | None = Query(None, pattern="^(scp|scu)$"),
                               limit: int = Query(100, ge=1, le=1000)) -> dict:
        return {"commitments": service.recent.list(role, limit),
                "queues": service.queue_summary()}

    @app.post("/api/v1/commitments", status_code=202)
    async def request_commitment(body: CommitmentRequest, request: Request) -> dict:
        principal = getattr(request.state, "principal", None)
        who = principal.subject if principal is not None and principal.subject not in (
            "", "anonymous") else body.requested_by
        peer = f"{request.client.host}:{request.client.port}" if request.client else ""
        try:
            return await service.request(body.study_instance_uid, body.remote_ae,
                                         [(i.sop_class_uid, i.sop_instance_uid)
                                          for i in body.instances],
                                         body.delete_after_commit, who[:128], peer)
        except LookupError as exc:
            raise HTTPException(404, str(exc)) from exc
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from exc
        except RuntimeError as exc:
            raise HTTPException(503, str(exc)) from exc

    return app
