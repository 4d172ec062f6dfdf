"""HTTP: /metrics, /healthz, /readyz; GET /api/v1/exports (queued and finished exports),
GET /api/v1/exporters, POST /api/v1/exports (manual export request).

Every route under ``/api/v1`` needs a bearer token: GET/HEAD the read scope, POST (and any
other method) the admin scope (``TokenVerifier.guard_api``, on the app, so routes added later
inherit it). /metrics, /healthz and /readyz stay open."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel, Field

from dicomvault.auth import AuthSettings, TokenVerifier
from dicomvault.health import health_router
from dicomvault.store import InvalidUID, validate_uid
from stow_exporter.metrics import REGISTRY
from stow_exporter.policies import Hosted


class ExportRequest(BaseModel):
    study_instance_uid: str = Field(description="The study to export.")
    exporter_id: str = Field(description="The Exporter to send it with.")
    immediate: bool = Field(False, description="Ignore the exporter's schedule windows.")


def build_app(hosted: list[Hosted], ready: Callable[[], str | None],
              verifier: TokenVerifier | None = None) -> FastAPI:
    """Without a ``verifier`` nothing needs a token (tests that build the app directly)."""
    by_id = {h.id: h for h in hosted}
    app = FastAPI(title="DICOM Vault stow-exporter", docs_url=None, redoc_url=None)
    (verifier or TokenVerifier(AuthSettings(enabled=False))).guard_api(app)

    app.include_router(health_router(REGISTRY, ready))

    @app.get("/api/v1/exporters")
    async def exporters() -> list[dict]:
        return [{"exporter_id": h.id, "uri": h.exporter.uri, "description":
                 h.exporter.description, "queue": h.exporter.queue_name,
                 "destination": h.sender.destination, "schedules": h.exporter.schedules,
                 "suspended": h.exporter.suspended,
                 "counts": h.queue.counts() if h.queue else {}} for h in hosted]

    @app.get("/api/v1/exports")
    async def list_exports(exporter_id: str | None = None, state: str | None = None,
                           study_instance_uid: str | None = None) -> list[dict]:
        out = []
        for h in hosted:
            if exporter_id and h.id != exporter_id or h.queue is None:
                continue
            for e in h.queue.exports():
                if state and e.state != state:
                    continue
                if study_instance_uid and e.study_instance_uid != study_instance_uid:
                    continue
                out.append(e.view())
        return out

    @app.get("/api/v1/exports/{export_id}")
    async def get_export(export_id: str) -> dict:
        for h in hosted:
            e = h.queue.get(export_id) if h.queue else None
            if e is not None:
                return e.view()
        raise HTTPException(404, f"no export {export_id}")

    @app.post("/api/v1/exports", status_code=202)
    async def request_export(req: ExportRequest) -> dict:
        h = by_id.get(req.exporter_id)
        if h is None or h.queue is None:
            raise HTTPException(404, f"no exporter {req.exporter_id!r} in this process")
        try:
            validate_uid(req.study_instance_uid, "Study Instance UID")
        except InvalidUID as exc:
            raise HTTPException(422, str(exc)) from exc
        return (await h.queue.submit(req.study_instance_uid, trigger="manual",
                                     immediate=req.immediate)).view()

    return app
