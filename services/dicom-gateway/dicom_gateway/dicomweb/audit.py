"""Audit facts of the DICOMweb doors: QIDO-RS queries, WADO-RS / WADO-URI retrieves.
Requests refused for their token (401/403: User Authentication failures) are recorded by
the shared ``dicomvault.audit.http.AuthFailures``, as on every service's REST API.

A pure ASGI middleware around /dicomweb that looks at the path and the response status once
the response has started; it never delays or changes the answer (``AuditTrail.record`` only
buffers). STOW-RS is not recorded here: its InstanceStored events carry the token's subject
and the client's address, and the audit service builds one message per study per request.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

from dicomvault.audit import MINOR_FAILURE, SERIOUS_FAILURE, SUCCESS, Action, AuditTrail
from dicomvault.audit.http import REFUSED, StatusWatch

PREFIX = "/dicomweb"
QIDO_LEVELS = {"studies", "series", "instances"}


def classify(path: str, method: str) -> tuple[int, str, str] | None:
    """(action, service, study UID) of a /dicomweb request, None when not audited here."""
    parts = [p for p in path[len(PREFIX):].split("/") if p]
    if not parts or method not in ("GET", "HEAD"):
        return None
    if parts == ["wado"]:
        return Action.RETRIEVE_STARTED, "WADO-URI", ""
    study = parts[1] if parts[0] == "studies" and len(parts) > 1 else ""
    if parts[-1] in QIDO_LEVELS:
        return Action.QUERY, "QIDO-RS", study
    if study:
        return Action.RETRIEVE_STARTED, "WADO-RS", study
    return None


def outcome_of(status: int) -> int:
    if status < 400:
        return SUCCESS
    return MINOR_FAILURE if status < 500 else SERIOUS_FAILURE


class DicomWebAudit:
    """Pure ASGI middleware: one audit fact per audited /dicomweb request."""

    def __init__(self, app: Any, trail: AuditTrail, called_ae: str) -> None:
        self.app = app
        self.trail = trail
        self.called_ae = called_ae

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if not (path == PREFIX or path.startswith(PREFIX + "/")):
            return await self.app(scope, receive, send)
        watch = StatusWatch(send)
        try:
            await self.app(scope, receive, watch)
        finally:
            self._record(scope, path, watch.status or 500)  # no answer started: a failure

    def _record(self, scope: dict, path: str, status: int) -> None:
        principal = (scope.get("state") or {}).get("principal")
        user = getattr(principal, "subject", "") or ""
        client = scope.get("client")
        peer = f"{client[0]}:{client[1]}" if client else ""
        query = scope.get("query_string") or b""
        if status in REFUSED:
            return  # AuthFailures records it
        what = classify(path, scope.get("method", ""))
        if what is None:
            return
        action, service, study = what
        if not study and query:  # WADO-URI's studyUID, a QIDO-RS match on the study
            params = parse_qs(query.decode("latin-1"))
            names = ("studyUID",) if service == "WADO-URI" else ("StudyInstanceUID",
                                                                 "0020000D")
            study = next((params[n][0] for n in names if params.get(n)), "")
        self.trail.record(action, outcome=outcome_of(status), user_id=user, peer_address=peer,
                          called_ae=self.called_ae, service=service,
                          study_instance_uids=[study] if study else [],
                          query=(path + ("?" + query.decode("latin-1") if query else "")
                                 ).encode(),
                          description=f"HTTP {status}")
