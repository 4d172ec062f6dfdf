"""Archive and recall across the real services: a study received by the gateway lands on HSM
and on a remote PACS (Orthanc) by rules, is evicted from the cache, and comes back through
C-MOVE from either tier.

Processes: the Tansu broker, the catalogue (PostgreSQL, its own StudyStable emitter), the
gateway, the hsm-archiver with two archives (HSM1 on a temp folder, PACS1 = Orthanc), Orthanc,
and dcmtk as modality (storescu), viewer (movescu) and viewing station (storescp).
"""

from __future__ import annotations

import json
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydicom import dcmread

from dicomvault.bus.broker import free_port
from dicomvault.settings import BusSettings
from dicomvault.store import instance_key
from tests.e2e.conftest import AE_TITLE, Archive, _reset_postgres
from tests.e2e.helpers import Catalogue, move_study, wait_for
from tests.gateway.retrieve_peers import DESTINATION, RETRIEVER
from tests.peers.datasets import dataset_bytes, write_study
from tests.peers.orthanc import Orthanc
from tests.peers.services import AUTH_OFF_ENV, FAST_BUS_ENV, ServiceProcess, bus_env

ORTHANC_AE = "ORTHANC"
ARCHIVER_AE = "VAULTARC"


@pytest.fixture
async def pg_url(pg_database: str) -> str:
    await _reset_postgres(pg_database)
    return pg_database


def archiver_env(bus: BusSettings, cache: Path, catalogue_url: str, hsm: Path,
                 orthanc: Orthanc, port: int, *, tier_order: list[str],
                 evict: bool) -> dict[str, str]:
    retry = {"max_retries": 20, "initial_delay_s": 0.2, "max_delay_s": 1.0}
    archives = [
        {"id": "HSM1", "kind": "hsm", "rules": [{"name": "all"}], "retry": retry,
         "readiness_interval_s": 0.2,
         "hsm": {"mount_point": str(hsm), "subdirectory": "vault", "require_mount": False,
                 "free_space_min_bytes": 0, "layout": "tar-per-study", "fsync": True,
                 "recall_poll_s": 0.1, "recall_timeout_s": 60}},
        {"id": "PACS1", "kind": "pacs", "rules": [{"name": "all"}], "retry": retry,
         "readiness_interval_s": 0.2,
         "pacs": {"ae_title": ORTHANC_AE, "host": "127.0.0.1", "port": orthanc.dicom_port,
                  "calling_ae": ARCHIVER_AE, "associations": 2,
                  "move_destination": AE_TITLE, "timeout_s": 30}},
    ]
    return {
        **bus_env(bus), **FAST_BUS_ENV, **AUTH_OFF_ENV,
        "DICOMVAULT_HTTP__PORT": str(port),
        "DICOMVAULT_CACHE__ROOT": str(cache),
        "DICOMVAULT_CACHE__FSYNC": "false",
        "DICOMVAULT_HSM__CATALOGUE_URL": catalogue_url,
        "DICOMVAULT_HSM__ADOPT_RETRY_S": "0.5",
        "DICOMVAULT_HSM__ARCHIVES": json.dumps(archives),
        "DICOMVAULT_HSM__RECALL_TIER_ORDER": json.dumps(tier_order),
        # Evict once both archive copies are verified and the study was idle for 4 s.
        "DICOMVAULT_HSM__EVICTION__ENABLED": "true" if evict else "false",
        "DICOMVAULT_HSM__EVICTION__MIN_ARCHIVE_COPIES": "2",
        "DICOMVAULT_HSM__EVICTION__IDLE_S": "4",
        "DICOMVAULT_HSM__EVICTION__INTERVAL_S": "0.5",
    }


@pytest.fixture
def stack(tmp_path: Path, bus_settings: BusSettings, pg_url: str) -> Iterator[dict]:
    """Orthanc, catalogue + gateway (tests.e2e.conftest.Archive) and the HSM folder; the
    archiver is started by the test (it changes its recall tier order half-way)."""
    hsm = tmp_path / "hsm"
    (hsm / "vault").mkdir(parents=True)
    (hsm / "vault" / ".dicomvault-archive").write_text("HSM1\n")
    scp_port = free_port()
    archive = Archive(
        tmp_path, bus_settings, pg_url,
        recall_aes=json.dumps([ORTHANC_AE]), recall_wait_s="90",
        modalities=json.dumps({DESTINATION: {"host": "127.0.0.1", "port": scp_port},
                               RETRIEVER: {"may_store": False}}))
    # The PACS administrator's side: our gateway is where studies are moved to, and the
    # archiver's calling AE may ask for C-MOVE.
    orthanc = Orthanc(tmp_path / "orthanc", aet=ORTHANC_AE, modalities={
        "vault": (AE_TITLE, "127.0.0.1", archive.dimse_port),
        "vault-archiver": (ARCHIVER_AE, "127.0.0.1", free_port())})
    archivers: list[ServiceProcess] = []
    try:
        orthanc.start()
        archive.start()
        yield {"archive": archive, "orthanc": orthanc, "hsm": hsm, "scp_port": scp_port,
               "archivers": archivers}
    finally:
        for a in archivers:
            a.stop()
        archive.stop()
        orthanc.stop()


def start_archiver(stack: dict, bus: BusSettings, tmp_path: Path, name: str, **kw
                   ) -> ServiceProcess:
    archive: Archive = stack["archive"]
    port = free_port()
    folder = tmp_path / name
    folder.mkdir()
    service = ServiceProcess("hsm-archiver", archiver_env(
        bus, archive.folder / "cache", archive.catalogue_url, stack["hsm"], stack["orthanc"],
        port, **kw), folder, ready_url=f"http://127.0.0.1:{port}/readyz")
    stack["archivers"].append(service)
    return service.start(timeout_s=90)


def test_archived_on_hsm_and_pacs_evicted_and_recalled_from_either(
        stack: dict, bus_settings: BusSettings, tmp_path: Path) -> None:
    archive: Archive = stack["archive"]
    orthanc: Orthanc = stack["orthanc"]
    cat = Catalogue(archive.catalogue_url)
    cache = archive.folder / "cache"
    services = (archive.gateway, archive.catalogue)
    first = start_archiver(stack, bus_settings, tmp_path, "archiver-1",
                           tier_order=["hsm", "pacs"], evict=True)
    every = (*services, first)

    # 1. The modality sends a study to the gateway.
    study = write_study(tmp_path / "modality", series=2, per_series=3)
    uid = study.study_uid
    sent = archive.storescu(study.files)
    assert sent.returncode == 0, sent.stdout + sent.stderr
    # SOP Instance UID -> the data set bytes the modality sent, and its cache storage key
    original = {str(dcmread(p, stop_before_pixels=True).SOPInstanceUID): dataset_bytes(p)
                for p in study.files}
    keys = {}
    for path in study.files:
        ds = dcmread(path, stop_before_pixels=True)
        keys[str(ds.SOPInstanceUID)] = instance_key(uid, str(ds.SeriesInstanceUID),
                                                    str(ds.SOPInstanceUID))
    cached = wait_for(lambda: {sop: (cache / key).read_bytes() for sop, key in keys.items()
                               if (cache / key).exists()} if all(
        (cache / k).exists() for k in keys.values()) else None, "the cache files", 30, every)
    assert {sop: dataset_bytes(raw) for sop, raw in cached.items()} == original

    # 2. StudyStable → one STORE job per archive (rules) → verified on HSM and on Orthanc.
    #    StudyArchived (studies topic) comes before its job's JobCompleted (jobs topic): the
    #    catalogue may project them in either order, so wait for both.
    wait_for(lambda: cat.archived(uid) == {("hsm", "HSM1"), ("pacs", "PACS1")} and sorted(
        (j["queue"], j["state"]) for j in cat.jobs(kind="STORE")) == [
            ("HSM1", "DONE"), ("PACS1", "DONE")],
             "StudyArchived on hsm and pacs, both STORE jobs DONE", 120, every)
    store_jobs = cat.jobs(kind="STORE")
    assert sorted((j["queue"], j["state"]) for j in store_jobs) == [
        ("HSM1", "DONE"), ("PACS1", "DONE")]
    with tarfile.open(stack["hsm"] / "vault" / f"{uid}.tar") as tar:
        on_hsm = {m.name.split("/")[-1][:-4]: tar.extractfile(m).read()
                  for m in tar.getmembers() if m.isfile()}
    assert on_hsm == cached  # the Part 10 files as the gateway stored them
    index = json.loads((stack["hsm"] / "vault" / f"{uid}.index.json").read_text())
    assert index  # written last, after every member
    at_orthanc = orthanc.files_by_sop_uid()
    assert {sop: dataset_bytes(raw) for sop, raw in at_orthanc.items()} == original

    # 3. Idle for idle_s with two verified copies: evicted from the cache.
    wait_for(lambda: not cat.cached(uid) and not any((cache / k).exists() for k in keys.values()),
             "eviction from the cache", 60, every)
    assert len(cat.facts(uid, "dicomvault.study.evicted.v1")) == 1

    # 4. A viewer asks for the study: recalled from HSM (tier order hsm first), then sent.
    received = move_study(tmp_path / "scp-1", stack["scp_port"], archive, uid)
    assert received == original
    # The gateway sends the files as soon as they are back in the cache: StudyRecalled and
    # the retrieve job's JobCompleted may still be on their way to the catalogue.
    wait_for(lambda: cat.facts(uid, "dicomvault.study.recalled.v1") and [
        j["state"] for j in cat.jobs(queue="HSM1-retrieve")] == ["DONE"],
             "the HSM recall recorded", 30, every)
    recalled = cat.facts(uid, "dicomvault.study.recalled.v1")
    assert [(r["tier"], r["archive_id"]) for r in recalled] == [("hsm", "HSM1")]
    assert [j["state"] for j in cat.jobs(queue="HSM1-retrieve")] == ["DONE"]
    assert cat.jobs(queue="PACS1-retrieve") == []

    # 5. Idle again: evicted again. Then the recall tier order puts the PACS first.
    wait_for(lambda: not cat.cached(uid) and not any((cache / k).exists() for k in keys.values()),
             "the second eviction", 60, every)
    first.stop()
    second = start_archiver(stack, bus_settings, tmp_path, "archiver-2",
                            tier_order=["pacs", "hsm"], evict=False)
    every = (*services, second)

    # 6. The viewer asks again: C-MOVE from Orthanc to the gateway (recall_aes), then to the
    #    viewing station; the same data sets, byte for byte.
    received = move_study(tmp_path / "scp-2", stack["scp_port"], archive, uid)
    assert received == original
    # As in 4., and the recalled instances' InstanceStored (instances topic) too: wait until
    # the catalogue has StudyRecalled, the job DONE and every instance back in the cache.
    wait_for(lambda: len(cat.facts(uid, "dicomvault.study.recalled.v1")) == 2 and [
        j["state"] for j in cat.jobs(queue="PACS1-retrieve")] == ["DONE"] and sorted(
        c["sop_instance_uid"] for c in cat.cached(uid)) == sorted(original),
             "the PACS recall recorded", 30, every)
    recalled = cat.facts(uid, "dicomvault.study.recalled.v1")
    assert [(r["tier"], r["archive_id"]) for r in recalled] == [
        ("hsm", "HSM1"), ("pacs", "PACS1")]
    from_pacs = [s for s in cat.facts(uid, "dicomvault.instance.stored.v1")
                 if s.get("calling_ae") == ORTHANC_AE]
    assert sorted(s["sop_instance_uid"] for s in from_pacs) == sorted(original)
    assert {s["source"] for s in from_pacs} == {"recall"}
    # The cache holds the study again, recorded with the checksums of its new files.
    now_cached = {c["sop_instance_uid"]: c for c in cat.cached(uid)}
    assert sorted(now_cached) == sorted(original)
    for sop, key in keys.items():
        raw = (cache / key).read_bytes()
        assert dataset_bytes(raw) == original[sop]
        assert now_cached[sop]["size_bytes"] == len(raw)

    # 7. The recalls started no archiving: the same two STORE jobs, one StudyStable, both
    #    archive copies still recorded, the study still stable at its first revision.
    assert sorted((j["job_id"], j["state"]) for j in cat.jobs(kind="STORE")) == sorted(
        (j["job_id"], "DONE") for j in store_jobs)
    assert len(cat.facts(uid, "dicomvault.study.stable.v1")) == 1
    assert cat.archived(uid) == {("hsm", "HSM1"), ("pacs", "PACS1")}
    summary = cat.study(uid)
    assert summary["stable"] is True
    # Orthanc still holds exactly one copy of each instance.
    assert sorted(orthanc.files_by_sop_uid()) == sorted(original)


