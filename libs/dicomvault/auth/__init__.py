"""Bearer-token (JWT) authorisation for the HTTP surfaces (DICOMweb first; any FastAPI app).

A token is accepted when its signature verifies against the configured JWKS file or issuer
public key file (RS256/ES256 by default), and its ``iss``, ``aud`` and ``exp`` are right.
Its scopes (``scope``: space-separated, or ``scp``/``scopes``: a list) grant ``read``,
``write`` or ``admin`` (admin implies the other two); the scope names are settings.

    verifier = TokenVerifier(settings.auth)
    read = verifier.require("read")            # a FastAPI dependency
    @router.get("/x", dependencies=[Depends(read)]) ...
    verifier.guard(app, "/api/v1", "read")     # every route under a prefix, present or later
    verifier.guard_api(app)                    # /api/v1: GET/HEAD read, other methods admin

Missing, malformed, expired or wrongly issued tokens: 401 with ``WWW-Authenticate: Bearer``
(RFC 6750); a valid token without the scope: 403 (``error="insufficient_scope"``).
With ``enabled: false`` every request passes (the embedded laptop default; warned at start).
Key files are re-read when they change (key rotation without a restart).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import jwt
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from dicomvault.files import WatchedFile

log = logging.getLogger(__name__)

Need = Literal["read", "write", "admin"]


class AuthSettings(BaseModel):
    """Bearer tokens (JWT) on the HTTP API."""

    enabled: bool = Field(
        True, description="Require a bearer token. false: anyone reaching the port may read "
        "and write (embedded laptop default only; logged loudly at start-up).")
    jwks_file: Path | None = Field(
        None, description="A JWKS document (JSON) with the issuer's public keys; the token's "
        "'kid' picks the key (or the only key).")
    public_key_file: Path | None = Field(
        None, description="The issuer's public key (PEM), when there is no JWKS file.")
    issuer: str = Field("", description="Required 'iss' claim (empty: not checked).")
    audience: str = Field("dicomvault", description="Required 'aud' claim.")
    algorithms: list[str] = Field(
        default_factory=lambda: ["RS256", "ES256"], description="Accepted signature algorithms.")
    leeway_s: float = Field(30.0, ge=0, description="Clock skew allowed on exp/nbf/iat.")
    read_scope: str = Field("dicomvault.read", description="Scope that grants reading.")
    write_scope: str = Field("dicomvault.write", description="Scope that grants storing.")
    admin_scope: str = Field("dicomvault.admin", description="Scope that grants everything.")
    realm: str = Field("dicomvault", description="Realm named in WWW-Authenticate.")


@dataclass(frozen=True)
class Principal:
    """Who called: the token's subject and scopes (``anonymous`` when auth is disabled)."""

    subject: str
    scopes: frozenset[str] = field(default_factory=frozenset)


class _Keys:
    """The verification keys, re-read when the key file changes."""

    def __init__(self, settings: AuthSettings) -> None:
        self.path = settings.jwks_file or settings.public_key_file
        self.jwks = settings.jwks_file is not None
        self._file = WatchedFile(self.path) if self.path is not None else None
        self._version = -1  # the file version self._keys was parsed from
        self._keys: dict[str, object] = {}
        self._lock = threading.Lock()

    def get(self, kid: str | None) -> object:
        if self._file is None:
            raise jwt.InvalidKeyError("no issuer key is configured on this server")
        with self._lock:
            try:
                text = self._file.text()
            except OSError as exc:
                raise jwt.InvalidKeyError(f"issuer key file unreadable: {exc}") from exc
            if self._file.version != self._version:
                self._keys = self._parse(text)
                self._version = self._file.version
            keys = self._keys
        if kid is not None and kid in keys:
            return keys[kid]
        if len(keys) == 1 and (kid is None or not self.jwks or "" in keys):
            return next(iter(keys.values()))
        raise jwt.InvalidKeyError(f"no key with kid {kid!r}")

    def _parse(self, text: str) -> dict[str, object]:
        if not self.jwks:
            return {"": text}
        try:
            keyset = jwt.PyJWKSet.from_dict(json.loads(text))
        except (ValueError, jwt.PyJWKSetError) as exc:
            raise jwt.InvalidKeyError(f"bad JWKS file: {exc}") from exc
        return {(k.key_id or ""): k.key for k in keyset.keys}


class TokenVerifier:
    def __init__(self, settings: AuthSettings) -> None:
        self.settings = settings
        self._keys = _Keys(settings)

    def announce(self, surface: str) -> None:
        """Log, loudly, how this surface is protected (once, at start-up)."""
        s = self.settings
        if not s.enabled:
            log.warning(f"AUTHENTICATION DISABLED on {surface}: anyone who reaches the port can "
                        "read and store images. Set DICOMVAULT_AUTH__ENABLED=true with a "
                        "JWKS or public key file in production.")
        elif s.jwks_file is None and s.public_key_file is None:
            log.error(f"{surface}: bearer tokens required but no DICOMVAULT_AUTH__JWKS_FILE or "
                      "DICOMVAULT_AUTH__PUBLIC_KEY_FILE is set: every request is refused (401)")
        else:
            log.info(f"{surface}: bearer tokens required",
                     extra={"issuer": s.issuer, "audience": s.audience})

    def _unauthorized(self, description: str, error: str = "invalid_token") -> HTTPException:
        header = f'Bearer realm="{self.settings.realm}"'
        if error:
            header += f', error="{error}", error_description="{description}"'
        return HTTPException(401, description, headers={"WWW-Authenticate": header})

    def verify(self, authorization: str | None) -> Principal:
        """The principal of an ``Authorization`` header value; HTTPException 401 otherwise."""
        s = self.settings
        if not s.enabled:
            return Principal("anonymous", frozenset({s.admin_scope}))
        if not authorization:
            raise self._unauthorized("a bearer token is required", error="")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise self._unauthorized("the Authorization header is not a bearer token",
                                     error="invalid_request")
        token = token.strip()
        try:
            kid = jwt.get_unverified_header(token).get("kid")
            claims = jwt.decode(
                token, key=self._keys.get(kid), algorithms=s.algorithms,
                audience=s.audience or None, issuer=s.issuer or None, leeway=s.leeway_s,
                options={"require": ["exp", *(["iss"] if s.issuer else []),
                                     *(["aud"] if s.audience else [])]})
        except jwt.ExpiredSignatureError as exc:
            raise self._unauthorized("the token has expired") from exc
        except jwt.InvalidIssuerError as exc:
            raise self._unauthorized("the token was not issued by the trusted issuer") from exc
        except jwt.InvalidAudienceError as exc:
            raise self._unauthorized("the token is not meant for this audience") from exc
        except jwt.InvalidKeyError as exc:
            raise self._unauthorized(f"the token cannot be verified: {exc}") from exc
        except jwt.PyJWTError as exc:
            raise self._unauthorized(f"invalid token: {exc}") from exc
        return Principal(str(claims.get("sub", "")), _scopes(claims))

    def allows(self, principal: Principal, need: Need) -> bool:
        s = self.settings
        wanted = {"read": s.read_scope, "write": s.write_scope, "admin": s.admin_scope}[need]
        return wanted in principal.scopes or s.admin_scope in principal.scopes

    def check(self, authorization: str | None, need: Need) -> Principal:
        """The principal of an ``Authorization`` header value granted ``need``;
        HTTPException 401 (no or bad token) or 403 (no scope) otherwise."""
        return self.check_scope(self.verify(authorization), need)

    def check_scope(self, principal: Principal, need: Need) -> Principal:
        """``principal`` when granted ``need``; HTTPException 403 otherwise."""
        s = self.settings
        scope = {"read": s.read_scope, "write": s.write_scope, "admin": s.admin_scope}[need]
        if not self.allows(principal, need):
            raise HTTPException(403, f"the token lacks the scope {scope!r}", headers={
                "WWW-Authenticate": f'Bearer realm="{s.realm}", error="insufficient_scope",'
                                    f' scope="{scope}"'})
        return principal

    def require(self, need: Need):
        """A FastAPI dependency: the caller's Principal, or 401/403."""

        async def dependency(request: Request) -> Principal:
            principal = self.verify(request.headers.get("authorization"))
            request.state.principal = principal  # also when refused below (audit: who)
            return self.check_scope(principal, need)

        return dependency

    def guard(self, app: FastAPI, prefix: str, need: Need) -> None:
        """Require ``need`` on every request under ``prefix`` (``/api/v1`` covers
        ``/api/v1/...``), whatever router serves it, including routers added later; the
        answer to a refused request is the 401/403 of ``check`` as JSON ``{"detail": …}``."""
        self._guard(app, prefix, lambda _method: need)

    def guard_api(self, app: FastAPI, prefix: str = "/api/v1") -> None:
        """Like ``guard``, by method: GET and HEAD under ``prefix`` need the read scope, every
        other method (POST, PUT, PATCH, DELETE, …) the admin scope. For a service's own
        REST API, where reading is GET and every change is an administrator's command.
        Paths outside ``prefix`` (/metrics, /healthz, /readyz) stay open."""
        self._guard(app, prefix, method_need)

    def _guard(self, app: FastAPI, prefix: str, need_of: Callable[[str], Need]) -> None:
        base = prefix.rstrip("/")

        @app.middleware("http")
        async def bearer_guard(request: Request, call_next):
            path = request.url.path
            if path == base or path.startswith(base + "/"):
                try:
                    principal = self.verify(request.headers.get("authorization"))
                    request.state.principal = principal  # also when refused (audit: who)
                    self.check_scope(principal, need_of(request.method))
                except HTTPException as exc:
                    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code,
                                        headers=exc.headers)
            return await call_next(request)


def method_need(method: str) -> Need:
    """The scope ``guard_api`` asks of an HTTP method: read for GET/HEAD, admin otherwise."""
    return "read" if method.upper() in ("GET", "HEAD") else "admin"


def _scopes(claims: dict) -> frozenset[str]:
    out: set[str] = set()
    for name in ("scope", "scp", "scopes"):
        value = claims.get(name)
        if isinstance(value, str):
            out |= set(value.split())
        elif isinstance(value, list):
            out |= {str(v) for v in value}
    return frozenset(out)
