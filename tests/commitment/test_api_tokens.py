"""The commitment service's REST API needs bearer tokens (a real `dicomvault run commitment`,
real signed JWTs): asking for a commitment needs the admin scope, listing them the read scope."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from dicomvault.bus.broker import free_port
from dicomvault.settings import BusSettings
from tests.peers.services import FAST_BUS_ENV, ServiceProcess, bus_env
from tests.peers.tokens import ADMIN, READ, Issuer, assert_refused, auth_env

STUDY = "1.2.826.0.1.3680043.8.498.1"
CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"


def test_commitment_requests_need_the_admin_scope(bus_settings: BusSettings,
                                                  tmp_path: Path) -> None:
    issuer = Issuer(tmp_path)
    port = free_port()
    service = ServiceProcess("commitment", {
        **bus_env(bus_settings), **FAST_BUS_ENV, **auth_env(issuer),
        "DICOMVAULT_HTTP__HOST": "127.0.0.1", "DICOMVAULT_HTTP__PORT": str(port),
        "DICOMVAULT_CACHE__ROOT": str(tmp_path / "cache"),
        "DICOMVAULT_COMMITMENT__DIMSE_HOST": "127.0.0.1",
        "DICOMVAULT_COMMITMENT__DIMSE_PORT": str(free_port()),
        "DICOMVAULT_COMMITMENT__CATALOGUE_URL": f"http://127.0.0.1:{free_port()}",
        "DICOMVAULT_COMMITMENT__MODALITIES": json.dumps(
            {"PACS1": {"host": "127.0.0.1", "port": free_port()}}),
    }, tmp_path, ready_url=f"http://127.0.0.1:{port}/readyz")
    service.start(timeout_s=90)
    body = {"study_instance_uid": STUDY, "remote_ae": "PACS1",
            "instances": [{"sop_class_uid": CT_IMAGE, "sop_instance_uid": f"{STUDY}.1.1"}]}
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            assert http.get("/healthz").status_code == 200
            assert_refused(http.get("/api/v1/commitments"), 401)
            assert_refused(http.post("/api/v1/commitments", json=body), 401)
            read = issuer.bearer(READ)
            assert http.get("/api/v1/commitments", headers=read).status_code == 200
            assert_refused(http.post("/api/v1/commitments", json=body, headers=read), 403)
            accepted = http.post("/api/v1/commitments", json=body,
                                 headers=issuer.bearer(ADMIN))
            assert accepted.status_code == 202, accepted.text
            assert accepted.json()["instances"] == 1
    finally:
        service.stop()
