"""The stow-exporter's REST API needs bearer tokens (a real `dicomvault run stow-exporter` on
the test's broker and catalogue, real signed JWTs): a manual export needs the admin scope
(refused, nothing is queued), the listings the read scope."""

from __future__ import annotations

from pathlib import Path

import httpx
import yaml

from dicomvault.bus.broker import free_port
from dicomvault.settings import BusSettings
from tests.peers.catalogue import CatalogueService
from tests.peers.services import FAST_BUS_ENV, ServiceProcess, bus_env
from tests.peers.tokens import ADMIN, READ, Issuer, assert_refused, auth_env

STUDY = "1.2.826.0.1.3680043.8.498.2"
# Suspended: a queued export stays queued (nothing is sent anywhere).
EXPORTERS = [{"apiVersion": "dicomvault.io/v1", "kind": "Exporter", "metadata": {"name": "exp1"},
              "spec": {"exporterID": "EXP1", "uri": "stowrs:webapp", "suspended": True,
                       "webApplication": {"name": "webapp",
                                          "url": "http://127.0.0.1:9/dicom-web"}}}]


def test_manual_exports_need_the_admin_scope(bus_settings: BusSettings, tmp_path: Path) -> None:
    catalogue = CatalogueService(bus_settings, tmp_path / "catalogue").start()
    issuer = Issuer(tmp_path)
    spec_file = tmp_path / "exporters.yaml"
    spec_file.write_text(yaml.safe_dump(EXPORTERS))
    port = free_port()
    service = ServiceProcess("stow-exporter", {
        **bus_env(bus_settings), **FAST_BUS_ENV, **auth_env(issuer),
        "DICOMVAULT_HTTP__HOST": "127.0.0.1", "DICOMVAULT_HTTP__PORT": str(port),
        "DICOMVAULT_CACHE__ROOT": str(tmp_path / "cache"),
        "DICOMVAULT_EXPORTER__SPEC_FILE": str(spec_file),
        "DICOMVAULT_EXPORTER__SECRETS_DIR": str(tmp_path / "secrets"),
        "DICOMVAULT_EXPORTER__CATALOGUE_URL": catalogue.url,
        "DICOMVAULT_EXPORTER__ADOPT_RETRY_S": "0.5",
    }, tmp_path, ready_url=f"http://127.0.0.1:{port}/readyz")
    body = {"study_instance_uid": STUDY, "exporter_id": "EXP1"}
    try:
        service.start(timeout_s=90)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            assert http.get("/metrics").status_code == 200
            assert_refused(http.get("/api/v1/exports"), 401)
            assert_refused(http.post("/api/v1/exports", json=body), 401)
            read = issuer.bearer(READ)
            (exporter,) = http.get("/api/v1/exporters", headers=read).json()
            assert exporter["exporter_id"] == "EXP1"
            assert_refused(http.post("/api/v1/exports", json=body, headers=read), 403)
            assert http.get("/api/v1/exports", headers=read).json() == []
            queued = http.post("/api/v1/exports", json=body, headers=issuer.bearer(ADMIN))
            assert queued.status_code == 202, queued.text
            (listed,) = http.get("/api/v1/exports", headers=read).json()
            assert listed["study_instance_uid"] == STUDY
    finally:
        service.stop()
        catalogue.stop()
