"""The hsm-archiver's REST API needs bearer tokens (a real `dicomvault run hsm-archiver`,
real signed JWTs): GET /api/v1/archives needs the read scope, any other method the admin
scope; /healthz stays open."""

from __future__ import annotations

from pathlib import Path

import httpx

from dicomvault.settings import BusSettings
from tests.archiver.conftest import env_of, hsm_archive, make_settings
from tests.peers.catalogue import CatalogueService
from tests.peers.services import ServiceProcess
from tests.peers.tokens import ADMIN, READ, Issuer, assert_refused, auth_env


def test_archives_listing_needs_the_read_scope(bus_settings: BusSettings, hsm_mount: Path,
                                              catalogue: CatalogueService,
                                              tmp_path: Path) -> None:
    issuer = Issuer(tmp_path)
    settings = make_settings(bus_settings, tmp_path / "cache", catalogue.url,
                             [hsm_archive(hsm_mount)])
    url = f"http://127.0.0.1:{settings.http.port}"
    service = ServiceProcess("hsm-archiver", {**env_of(settings), **auth_env(issuer)},
                             tmp_path, ready_url=f"{url}/readyz")
    try:
        service.start(timeout_s=90)
        with httpx.Client(base_url=url, timeout=30) as http:
            assert http.get("/healthz").status_code == 200
            assert_refused(http.get("/api/v1/archives"), 401)
            assert_refused(http.get("/api/v1/archives", headers=issuer.bearer(
                READ, expires_in=-120)), 401)
            (archive,) = http.get("/api/v1/archives", headers=issuer.bearer(READ)).json()
            assert archive["id"] == "HSM1" and archive["ready"] is True
            assert_refused(http.post("/api/v1/archives", headers=issuer.bearer(READ)), 403)
            # Admin passes the guard (the route itself only answers GET).
            assert http.post("/api/v1/archives", headers=issuer.bearer(ADMIN)
                             ).status_code == 405
    finally:
        service.stop()
