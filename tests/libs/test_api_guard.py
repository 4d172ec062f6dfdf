"""``TokenVerifier.guard_api``: the method-aware guard on a service's own REST API.

GET and HEAD under the prefix need the read scope, every other method the admin scope; a
refused request never reaches its route (nothing changes); paths outside the prefix
(/metrics, /healthz, /readyz) stay open. Real keys and signed JWTs (tests/peers/tokens.py);
the services' own checks with real processes are tests/{optical,commitment,exporter,
archiver}/test_api_tokens.py.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI, Request
from prometheus_client import CollectorRegistry

from dicomvault.auth import AuthSettings, TokenVerifier, method_need
from dicomvault.health import health_router
from tests.peers.tokens import ADMIN, AUDIENCE, ISSUER, READ, WRITE, Issuer, assert_refused

CHANGES = ("POST", "PUT", "PATCH", "DELETE")


def _app(verifier: TokenVerifier, calls: list[str], **guard) -> FastAPI:
    app = FastAPI()
    verifier.guard_api(app, **guard)
    app.include_router(health_router(CollectorRegistry(), lambda: None))

    @app.api_route("/api/v1/things", methods=["GET", "HEAD", *CHANGES])
    async def things(request: Request) -> dict:  # reached only when the guard lets it through
        calls.append(f"{request.method} {request.url.path}")
        return {"ok": True}

    @app.get("/api/v1x")
    async def beside() -> dict:
        return {"outside": True}

    return app


@pytest.fixture
def issuer(tmp_path: Path) -> Issuer:
    return Issuer(tmp_path)


@pytest.fixture
def verifier(issuer: Issuer) -> TokenVerifier:
    return TokenVerifier(AuthSettings(jwks_file=issuer.jwks_file, issuer=ISSUER,
                                      audience=AUDIENCE))


def _client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://svc")


def test_method_need() -> None:
    assert [method_need(m) for m in ("GET", "head", "POST", "PUT", "PATCH", "DELETE",
                                     "OPTIONS")] == ["read", "read", *["admin"] * 5]


async def test_reads_need_read_and_changes_need_admin(issuer: Issuer,
                                                       verifier: TokenVerifier) -> None:
    calls: list[str] = []
    async with _client(_app(verifier, calls)) as http:
        # No token, a malformed header, an expired or foreign token: 401, the route untouched.
        for headers in ({}, {"Authorization": "Basic YWxpY2U6c2VjcmV0"},
                        issuer.bearer(ADMIN, expires_in=-120),
                        issuer.bearer(ADMIN, issuer="https://evil.test")):
            for method in ("GET", *CHANGES):
                assert_refused(await http.request(method, "/api/v1/things", headers=headers),
                               401)
        assert calls == []
        # The read scope reads, and changes nothing: 403 naming the admin scope.
        read = issuer.bearer(READ)
        assert (await http.get("/api/v1/things", headers=read)).json() == {"ok": True}
        assert (await http.head("/api/v1/things", headers=read)).status_code == 200
        for method in CHANGES:
            r = await http.request(method, "/api/v1/things", headers=read)
            assert_refused(r, 403)
            assert 'scope="dicomvault.admin"' in r.headers["www-authenticate"]
        assert calls == ["GET /api/v1/things", "HEAD /api/v1/things"]
        # Write (the DICOMweb storing scope) neither reads nor administers here.
        write = issuer.bearer(WRITE)
        assert_refused(await http.get("/api/v1/things", headers=write), 403)
        assert_refused(await http.post("/api/v1/things", headers=write), 403)
        # Admin does everything (it implies read).
        calls.clear()
        admin = issuer.bearer(ADMIN)
        for method in ("GET", "HEAD", *CHANGES):
            assert (await http.request(method, "/api/v1/things", headers=admin)
                    ).status_code == 200, method
        assert len(calls) == 6
        # Outside the prefix: health, metrics and a path that merely starts alike are open.
        for path in ("/healthz", "/readyz", "/metrics", "/api/v1x"):
            assert (await http.get(path)).status_code == 200, path
        # The prefix itself is guarded (404 only for a caller allowed to ask).
        assert_refused(await http.get("/api/v1"), 401)
        assert (await http.get("/api/v1", headers=read)).status_code == 404


async def test_routes_added_later_and_another_prefix_are_guarded(
        issuer: Issuer, verifier: TokenVerifier) -> None:
    calls: list[str] = []
    app = _app(verifier, calls, prefix="/api/v2/")

    @app.delete("/api/v2/volumes/{label}")
    async def delete(label: str) -> dict:
        return {"deleted": label}

    async with _client(app) as http:
        assert_refused(await http.delete("/api/v2/volumes/DVD-1"), 401)
        assert_refused(await http.delete("/api/v2/volumes/DVD-1", headers=issuer.bearer(READ)),
                       403)
        assert (await http.delete("/api/v2/volumes/DVD-1", headers=issuer.bearer(ADMIN))
                ).json() == {"deleted": "DVD-1"}
        # /api/v1 is not this app's prefix.
        assert (await http.post("/api/v1/things")).status_code == 200


async def test_disabled_lets_everyone_in_and_no_key_refuses_everyone(issuer: Issuer) -> None:
    calls: list[str] = []
    async with _client(_app(TokenVerifier(AuthSettings(enabled=False)), calls)) as http:
        assert (await http.delete("/api/v1/things")).status_code == 200
    async with _client(_app(TokenVerifier(AuthSettings(issuer=ISSUER)), calls)) as http:
        assert_refused(await http.get("/api/v1/things", headers=issuer.bearer(ADMIN)), 401)
        assert (await http.get("/healthz")).status_code == 200
