"""The optical-burner's REST API needs bearer tokens (a real `dicomvault run optical-burner`
on the test's broker and catalogue, real signed JWTs): without a token closing or deleting a
volume is refused (401) and the volume stays; the read scope lists volumes but cannot change
them (403); the admin scope closes and deletes. /healthz, /readyz and /metrics stay open."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from dicomvault.bus.broker import free_port
from dicomvault.settings import BusSettings
from optical_burner.settings import OpticalSection
from optical_burner.volumes import VolumeStore
from tests.peers.catalogue import CatalogueService
from tests.peers.services import FAST_BUS_ENV, ServiceProcess, bus_env
from tests.peers.tokens import ADMIN, READ, Issuer, assert_refused, auth_env


def test_volume_commands_need_the_admin_scope(bus_settings: BusSettings, tmp_path: Path,
                                              catalogue_service: CatalogueService) -> None:
    cfg = OpticalSection(archive_id="OPTICAL1", volume_store=tmp_path / "volumes",
                         mount_path=tmp_path / "mnt", catalogue_url=catalogue_service.url)
    # An open (empty) volume, already on disk when the service starts.
    store = VolumeStore(cfg.volume_store, fsync=False)
    label = store.new_volume(prefix=cfg.prefix, archive_id=cfg.archive_id,
                             media_type=cfg.media_type, capacity=cfg.capacity,
                             reserve=cfg.reserve_bytes).label
    manifest = store.folder(label) / "manifest.json"
    issuer = Issuer(tmp_path)
    port = free_port()
    service = ServiceProcess("optical-burner", {
        **bus_env(bus_settings), **FAST_BUS_ENV, **auth_env(issuer),
        "DICOMVAULT_HTTP__HOST": "127.0.0.1", "DICOMVAULT_HTTP__PORT": str(port),
        "DICOMVAULT_CACHE__ROOT": str(tmp_path / "cache"),
        "DICOMVAULT_OPTICAL__ARCHIVE_ID": cfg.archive_id,
        "DICOMVAULT_OPTICAL__VOLUME_STORE": str(cfg.volume_store),
        "DICOMVAULT_OPTICAL__MOUNT_PATH": str(cfg.mount_path),
        "DICOMVAULT_OPTICAL__CATALOGUE_URL": catalogue_service.url,
        "DICOMVAULT_OPTICAL__ADOPT_RETRY_S": "0.5",
        "DICOMVAULT_OPTICAL__RULES": json.dumps([{"modalities": ["CT"]}]),
        "DICOMVAULT_OPTICAL__BURNER__BACKEND": "iso-folder",
        "DICOMVAULT_OPTICAL__BURNER__ISO_FOLDER": str(tmp_path / "iso"),
    }, tmp_path, ready_url=f"http://127.0.0.1:{port}/readyz")
    service.start(timeout_s=90)
    try:
        assert "optical-burner REST API" in service.tail(400)
        volume = f"/api/v1/volumes/{label}"
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            for path in ("/healthz", "/readyz", "/metrics"):
                assert http.get(path).status_code == 200, path

            # No token: every route under /api/v1 is refused, the commands change nothing.
            assert_refused(http.get("/api/v1/volumes"), 401)
            assert_refused(http.delete(volume), 401)
            for action in ("close", "burn", "release"):
                assert_refused(http.post(f"{volume}/{action}"), 401)
            assert_refused(http.post("/api/v1/studies/1.2.3/retrieve"), 401)
            assert manifest.exists()

            # The read scope reads ...
            read = issuer.bearer(READ, subject="viewer")
            (listed,) = http.get("/api/v1/volumes", headers=read).json()
            assert listed["label"] == label and listed["state"] == "Open"
            for path in ("/api/v1/media-requests", "/api/v1/queues", "/api/v1/jobs"):
                assert http.get(path, headers=read).status_code == 200, path
            # ... and is refused every command (403), which changes nothing.
            assert_refused(http.delete(volume, headers=read), 403)
            assert_refused(http.post(f"{volume}/close", headers=read), 403)
            assert_refused(http.post("/api/v1/studies/1.2.3/retrieve", headers=read), 403)
            assert http.get(volume, headers=read).json()["state"] == "Open"
            assert manifest.exists()

            # The admin scope reaches the commands: closing an empty volume is the API's own
            # 409, deleting it succeeds.
            admin = issuer.bearer(ADMIN, subject="operator")
            closed = http.post(f"{volume}/close", headers=admin)
            assert closed.status_code == 409 and "empty" in closed.json()["error"]
            assert http.delete(volume, headers=admin).status_code == 204
            assert http.get(volume, headers=read).status_code == 404
            assert not manifest.exists()
    finally:
        service.stop()
