"""Evict on demand across the real services: an administrator frees a study's cache space now
(`POST /api/v1/studies/{uid}/evict` on the hsm-archiver) once it is verified on HSM; a study
with no other copy is refused and keeps its files; a viewer's C-MOVE then recalls the evicted
study from HSM.

Processes: the Tansu broker, the catalogue (SQLite), the gateway, the hsm-archiver (HSM1 on a
temp folder, sweep off, bearer tokens on), dcmtk as modality (storescu), viewer (movescu) and
viewing station (storescp).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
from pydicom import dcmread

from dicomvault.bus.broker import free_port
from dicomvault.settings import BusSettings
from dicomvault.store import instance_key
from tests.e2e.conftest import Archive
from tests.e2e.helpers import Catalogue, move_study, wait_for
from tests.gateway.retrieve_peers import DESTINATION, RETRIEVER
from tests.peers.datasets import dataset_bytes, write_study
from tests.peers.services import FAST_BUS_ENV, ServiceProcess, bus_env
from tests.peers.tokens import ADMIN, READ, Issuer, assert_refused, auth_env


def cache_keys(files: list[Path]) -> dict[str, str]:
    """SOP Instance UID -> cache storage key of each file."""
    out = {}
    for path in files:
        ds = dcmread(path, stop_before_pixels=True)
        out[str(ds.SOPInstanceUID)] = instance_key(
            str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID), str(ds.SOPInstanceUID))
    return out


def test_evict_on_demand_frees_the_cache_only_when_hsm_holds_the_study(
        tmp_path: Path, bus_settings: BusSettings, sqlite_url: str) -> None:
    hsm = tmp_path / "hsm"
    (hsm / "vault").mkdir(parents=True)
    (hsm / "vault" / ".dicomvault-archive").write_text("HSM1\n")
    scp_port = free_port()
    archive = Archive(tmp_path, bus_settings, sqlite_url, recall_wait_s="90", modalities=json.dumps(
        {DESTINATION: {"host": "127.0.0.1", "port": scp_port}, RETRIEVER: {"may_store": False}}))
    issuer = Issuer(tmp_path)
    port = free_port()
    # HSM1 archives CT studies only; the sweep is off: only the administrator evicts.
    archives = [{"id": "HSM1", "kind": "hsm", "rules": [{"name": "ct", "modalities": ["CT"]}],
                 "retry": {"max_retries": 20, "initial_delay_s": 0.2, "max_delay_s": 1.0},
                 "readiness_interval_s": 0.2,
                 "hsm": {"mount_point": str(hsm), "subdirectory": "vault",
                         "require_mount": False, "free_space_min_bytes": 0,
                         "recall_poll_s": 0.1, "recall_timeout_s": 60}}]
    archiver = ServiceProcess("hsm-archiver", {
        **bus_env(bus_settings), **FAST_BUS_ENV, **auth_env(issuer),
        "DICOMVAULT_HTTP__PORT": str(port),
        "DICOMVAULT_CACHE__ROOT": str(archive.folder / "cache"),
        "DICOMVAULT_CACHE__FSYNC": "false",
        "DICOMVAULT_HSM__CATALOGUE_URL": archive.catalogue_url,
        "DICOMVAULT_HSM__ADOPT_RETRY_S": "0.5",
        "DICOMVAULT_HSM__ARCHIVES": json.dumps(archives),
        "DICOMVAULT_HSM__EVICTION__ENABLED": "false",
    }, tmp_path, ready_url=f"http://127.0.0.1:{port}/readyz")
    cache = archive.folder / "cache"
    cat = Catalogue(archive.catalogue_url)
    try:
        archive.start()
        archiver.start(timeout_s=90)
        every = (archive.gateway, archive.catalogue, archiver)
        http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)

        def evict(uid: str, *scopes: str) -> httpx.Response:
            return http.post(f"/api/v1/studies/{uid}/evict",
                             headers=issuer.bearer(*scopes, subject="pacs-admin"))

        def cli_evict(uid: str) -> subprocess.CompletedProcess[str]:
            token = tmp_path / "admin.token"
            token.write_text(issuer.token(ADMIN, subject="cli-admin"))
            return subprocess.run(
                [sys.executable, "-m", "dicomvault_cli", "study", "evict", uid,
                 "--url", f"http://127.0.0.1:{port}", "--token-file", str(token)],
                capture_output=True, text=True, timeout=60)

        # 1. The modality sends two CT studies (archived by rule) and an MR study (no rule:
        #    the cache holds its only copy).
        ct = write_study(tmp_path / "ct", series=2, per_series=2, modalities=("CT",))
        ct2 = write_study(tmp_path / "ct2", series=1, per_series=2, modalities=("CT",),
                          patient_id="PAT003")
        mr = write_study(tmp_path / "mr", series=1, per_series=2, modalities=("MR",),
                         patient_id="PAT002")
        for study in (ct, ct2, mr):
            sent = archive.storescu(study.files)
            assert sent.returncode == 0, sent.stdout + sent.stderr
        ct_keys, mr_keys = cache_keys(ct.files), cache_keys(mr.files)
        wait_for(lambda: cat.archived(ct.study_uid) == cat.archived(ct2.study_uid) == {
            ("hsm", "HSM1")} and len(cat.cached(mr.study_uid)) == 2,
                 "the CT studies verified on HSM1", 120, every)
        original = {sop: dataset_bytes(p) for sop, p in zip(
            [str(dcmread(p, stop_before_pixels=True).SOPInstanceUID) for p in ct.files],
            ct.files, strict=True)}

        # 2. A token with the read scope only may not evict (403); no token at all: 401.
        assert_refused(evict(ct.study_uid, READ), 403)
        assert_refused(http.post(f"/api/v1/studies/{ct.study_uid}/evict"), 401)
        assert all((cache / k).exists() for k in ct_keys.values())

        # 3. A bad UID is 400; a study the catalogue never saw is 404.
        bad = evict("1.2.abc", ADMIN)
        assert bad.status_code == 400 and "not a valid DICOM UID" in bad.json()["detail"]
        unknown = evict("1.2.826.0.1.3680043.99.1", ADMIN)
        assert unknown.status_code == 404 and "unknown" in unknown.json()["detail"]

        # 4. The MR study has no copy outside the cache: 409 with the reason, files kept.
        kept = evict(mr.study_uid, ADMIN)
        assert kept.status_code == 409, kept.text
        assert kept.json()["status"] == "too_few_copies"
        assert "it has 0 (none)" in kept.json()["detail"]
        # The same through the CLI: exit 1 and the reason.
        refused = cli_evict(mr.study_uid)
        assert refused.returncode == 1, refused.stdout + refused.stderr
        assert "not evicted (409)" in refused.stderr and "it has 0 (none)" in refused.stderr
        assert all((cache / k).exists() for k in mr_keys.values())
        assert len(cat.cached(mr.study_uid)) == 2
        assert cat.facts(mr.study_uid, "dicomvault.study.evicted.v1") == []

        # 5. The CT study is verified on HSM1: evicted now, files gone, the fact recorded
        #    with who asked, and the catalogue shows no cache copy.
        done = evict(ct.study_uid, ADMIN)
        assert done.status_code == 200, done.text
        body = done.json()
        assert body["status"] == "evicted" and body["instances"] == 4
        assert body["copies"] == ["hsm:HSM1"] and body["freed_bytes"] > 0
        assert not any((cache / k).exists() for k in ct_keys.values())
        wait_for(lambda: cat.facts(ct.study_uid, "dicomvault.study.evicted.v1")
                 and not cat.cached(ct.study_uid), "StudyEvicted projected", 30, every)
        (fact,) = cat.facts(ct.study_uid, "dicomvault.study.evicted.v1")
        assert fact["tier"] == "cache" and "on demand by pacs-admin" in fact["reason"]
        assert cat.archived(ct.study_uid) == {("hsm", "HSM1")}
        # Asking again: nothing left in the cache to evict.
        again = evict(ct.study_uid, ADMIN)
        assert again.status_code == 409 and again.json()["status"] == "not_in_cache"

        # The administrator's CLI evicts the second CT study.
        by_cli = cli_evict(ct2.study_uid)
        assert by_cli.returncode == 0, by_cli.stdout + by_cli.stderr
        assert f"evicted {ct2.study_uid}: 2 instance(s)" in by_cli.stdout
        assert "copies on hsm:HSM1" in by_cli.stdout
        assert not any((cache / k).exists() for k in cache_keys(ct2.files).values())
        wait_for(lambda: not cat.cached(ct2.study_uid), "ct2 without cache location", 30, every)
        (fact,) = cat.facts(ct2.study_uid, "dicomvault.study.evicted.v1")
        assert "on demand by cli-admin" in fact["reason"]

        # 6. A viewer asks for the CT study: the gateway asks for a recall, the archiver
        #    brings it back from HSM1, the viewing station receives the same data sets.
        received = move_study(tmp_path / "scp", scp_port, archive, ct.study_uid)
        assert received == original
        wait_for(lambda: cat.facts(ct.study_uid, "dicomvault.study.recalled.v1"),
                 "StudyRecalled", 30, every)
        recalled = cat.facts(ct.study_uid, "dicomvault.study.recalled.v1")
        assert [(r["tier"], r["archive_id"]) for r in recalled] == [("hsm", "HSM1")]
        assert all((cache / k).exists() for k in ct_keys.values())
        http.close()
    finally:
        archiver.stop()
        archive.stop()
