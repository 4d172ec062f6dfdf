"""HTTP: /metrics, /healthz, /readyz and GET /api/v1/audit (administrators only).

``GET /api/v1/audit?study=&actor=&since=&limit=`` lists kept audit messages, newest first:
``study`` a Study Instance UID, ``actor`` a UserID (calling AE title, token subject, …),
``since`` an ISO 8601 time (messages at or after it), ``limit`` (default 100). Every route
under /api/v1 needs a bearer token with the admin scope.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from fastapi import FastAPI, HTTPException, Query

from audit.messages import EVENTS, to_xml
from audit.metrics import REGISTRY
from audit.record import iso
from audit.settings import AuditSection
from audit.store import Store
from dicomvault.auth import AuthSettings, TokenVerifier
from dicomvault.health import health_router
from dicomvault.store.uids import is_valid_uid


def build_app(store: Store, cfg: AuditSection, hostname: str, ready: Callable[[], str | None],
              verifier: TokenVerifier | None = None) -> FastAPI:
    app = FastAPI(title="DICOM Vault audit", docs_url=None, redoc_url=None)
    (verifier or TokenVerifier(AuthSettings(enabled=False))).guard(app, "/api/v1", "admin")
    app.include_router(health_router(REGISTRY, ready))

    @app.get("/api/v1/audit")
    async def list_audit(study: str = "", actor: str = "", since: str = "",
                         limit: int = Query(100, ge=1)) -> list[dict]:
        if study and not is_valid_uid(study):
            raise HTTPException(400, "study must be a Study Instance UID")
        if since:
            try:
                moment = datetime.fromisoformat(since.replace("Z", "+00:00"))
            except ValueError as exc:
                raise HTTPException(400, "since must be an ISO 8601 date and time") from exc
            since = iso(moment if moment.tzinfo else moment.replace(tzinfo=UTC))
        kept = await store.find(study, actor, since, min(limit, cfg.max_limit))
        return [{
            "id": k.id, "event": EVENTS[k.record.event][1], "event_id": EVENTS[k.record.event][0],
            "action": k.record.action, "outcome": k.record.outcome, "time": k.record.time,
            "actor": k.record.user_id or k.record.calling_ae,
            "peer_address": k.record.peer_address, "studies": k.record.studies,
            "instances": k.record.instances, "service": k.record.service,
            "description": k.record.description, "delivered": k.delivered_at is not None,
            "xml": to_xml(k.record, cfg.source_id, cfg.enterprise_site_id,
                          hostname).decode(),
        } for k in kept]

    return app
