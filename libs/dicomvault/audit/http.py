"""Refused HTTP requests as audit facts: every 401/403 of a service's REST API is a User
Authentication failure (PS3.15 A.5.3.11, EventTypeCode Login, outcome 4).

A pure ASGI middleware around the whole app: it looks at the response status once the
response has started and records a fact for a 401 or 403 under one of its ``prefixes``
(``/api/v1`` by default; /healthz, /readyz and /metrics are outside it and never recorded).
It never delays or changes the answer: ``AuditTrail.record`` only buffers.

The actor is the token's subject when the token was valid but lacked the scope (403: the
verifier left the principal in the request state); for a 401 no subject is trusted, and the
``sub`` the token claims (not verified) is named in the description only.

    app = FastAPI(...)
    app.add_middleware(AuthFailures, trail=trail)          # or AuthFailures(app, trail)
"""

from __future__ import annotations

from typing import Any

import jwt

from dicomvault.audit import MINOR_FAILURE, Action, AuditTrail

REFUSED = (401, 403)


class StatusWatch:
    """An ASGI ``send`` that passes every message through and remembers the status the app
    answered (0 until it starts a response): what an auditing middleware records."""

    def __init__(self, send: Any) -> None:
        self._send = send
        self.status = 0

    async def __call__(self, message: dict) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
        await self._send(message)


def peer_of(scope: dict) -> str:
    """host:port of the HTTP client."""
    client = scope.get("client")
    return f"{client[0]}:{client[1]}" if client else ""


def subject_of(scope: dict) -> str:
    """The verified token subject the auth layer left in the request state, if any."""
    principal = (scope.get("state") or {}).get("principal")
    return str(getattr(principal, "subject", "") or "")


def claimed_subject(scope: dict) -> str:
    """The ``sub`` an unverified bearer token claims (a 401); "" when there is none."""
    for name, value in scope.get("headers") or ():
        if name.lower() == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                return ""
            try:
                claims = jwt.decode(token.strip(), options={"verify_signature": False})
            except jwt.PyJWTError:
                return ""
            sub = claims.get("sub", "") if isinstance(claims, dict) else ""
            return "".join(c for c in str(sub) if c.isprintable())[:128]
    return ""


class AuthFailures:
    """Pure ASGI middleware: one User Authentication failure per 401/403 under ``prefixes``."""

    def __init__(self, app: Any, trail: AuditTrail | None,
                 prefixes: tuple[str, ...] = ("/api/v1",), called_ae: str = "") -> None:
        self.app = app
        self.trail = trail
        self.prefixes = tuple(p.rstrip("/") for p in prefixes)
        self.called_ae = called_ae

    def watched(self, path: str) -> bool:
        return any(path == p or path.startswith(p + "/") for p in self.prefixes)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if self.trail is None or scope["type"] != "http" or not self.watched(
                scope.get("path", "")):
            return await self.app(scope, receive, send)
        watch = StatusWatch(send)
        try:
            await self.app(scope, receive, watch)
        finally:
            if watch.status in REFUSED:
                self._record(scope, watch.status)

    def _record(self, scope: dict, status: int) -> None:
        route = f"{scope.get('method', '')} {scope.get('path', '')}"[:300]
        if status == 403:
            user, why = subject_of(scope), "the bearer token lacks the scope"
        else:
            user, why = "", "bearer token missing or refused"
            claimed = claimed_subject(scope)
            if claimed:
                why += f" (it claims sub {claimed!r}, not verified)"
        self.trail.record(Action.AUTHENTICATION, outcome=MINOR_FAILURE, user_id=user,
                          peer_address=peer_of(scope), called_ae=self.called_ae,
                          service=route, description=f"HTTP {status} on {route}: {why}")
