"""A retried job really does its work again: STORE on the HSM folder (even after the
archiver restarted and no longer holds the FAILED job) and on a remote PACS (Orthanc);
RETRIEVE from the HSM once the file it gave up on is back, and from Orthanc (C-MOVE) once our
gateway listens."""

from __future__ import annotations

import asyncio
from pathlib import Path

from dicomvault.bus.broker import free_port
from dicomvault.events.v1 import archive_pb2 as ar
from dicomvault.events.v1 import events_pb2 as ev
from dicomvault.events.v1 import jobs_pb2 as jb
from dicomvault.store import FileStore
from tests.archiver.helpers import GatewayStandIn
from tests.peers.cache import cache_study, publish
from tests.peers.orthanc import Orthanc
from tests.peers.wait import wait_until

from .conftest import hsm_archive, make_settings, running, stable


async def retry_through_the_api(catalogue, job_id: str) -> None:
    r = await asyncio.to_thread(catalogue.post, f"/api/v1/jobs/{job_id}/retry")
    assert r.status_code == 202, r.text


async def test_hsm_store_retried_after_a_restart_writes_the_study(
        bus_settings, catalogue, hsm_mount, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    study, data = await cache_study(bus_settings, cache, tmp_path / "in", catalogue)
    # One cache file no longer matches the catalogue's checksum: the STORE fails (no retries).
    key, raw = next(iter(data.items()))
    (cache / key).write_bytes(raw[:-4] + b"XXXX")
    archive = {**hsm_archive(hsm_mount), "retry": {"max_retries": 0}}
    settings = make_settings(bus_settings, cache, catalogue.url, [archive])
    async with running(settings):
        await publish(bus_settings, stable(study), study.study_uid)
        await wait_until(lambda: catalogue.job_states("HSM1") == ["FAILED"], what="STORE FAILED")
    (job,) = catalogue.queue_jobs("HSM1")
    assert "checksum" in job["error"]
    # The cache copy is repaired; the archiver starts again (it does not adopt FAILED jobs).
    (cache / key).write_bytes(raw)
    async with running(settings):
        await retry_through_the_api(catalogue, job["job_id"])
        await wait_until(lambda: catalogue.job_states("HSM1") == ["DONE"], what="STORE DONE")
    # The study is on the HSM folder, byte for byte, and the catalogue knows it.
    for k, v in data.items():
        assert (hsm_mount / "vault" / k).read_bytes() == v
    await wait_until(lambda: [a for a in catalogue.of_type(ev.StudyArchived)
                              if a.archive_id == "HSM1"], what="StudyArchived(HSM1)")
    changes = [(c.command, c.job_id) for c in catalogue.of_type(jb.JobStateChanged)]
    assert changes == [("retry", job["job_id"])]


async def test_pacs_store_retried_after_a_failure_sends_to_orthanc(
        bus_settings, catalogue, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    study, data = await cache_study(bus_settings, cache, tmp_path / "in", catalogue,
                                    series=1, per_series=3)
    orthanc = Orthanc(tmp_path / "orthanc", aet="ORTHANC").start()
    try:
        archive = {"id": "PACS1", "kind": "pacs", "rules": [{}], "retry": {"max_retries": 0},
                   "readiness_interval_s": 0.2,
                   "pacs": {"ae_title": orthanc.aet, "host": "127.0.0.1",
                            "port": orthanc.dicom_port, "calling_ae": "VAULTARC",
                            "timeout_s": 30}}
        # One cached file is missing when the STORE runs: one C-STORE fails, the job FAILS.
        key, raw = next(iter(data.items()))
        (cache / key).unlink()
        settings = make_settings(bus_settings, cache, catalogue.url, [archive])
        async with running(settings):
            await publish(bus_settings, stable(study), study.study_uid)
            await wait_until(lambda: catalogue.job_states("PACS1") == ["FAILED"],
                             what="STORE FAILED")
            assert len(orthanc.instances()) == 2
            # The file is back; the administrator retries: every instance is sent again.
            (cache / key).write_bytes(raw)
            (job,) = catalogue.queue_jobs("PACS1")
            await retry_through_the_api(catalogue, job["job_id"])
            await wait_until(lambda: catalogue.job_states("PACS1") == ["DONE"],
                             what="STORE DONE")
        assert sorted(orthanc.files_by_sop_uid()) == sorted(study.sop_uids)
    finally:
        orthanc.stop()


async def test_hsm_retrieve_retried_after_it_gave_up_recalls_the_study(
        bus_settings, catalogue, hsm_mount, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    study, data = await cache_study(bus_settings, cache, tmp_path / "in", catalogue)
    archive = {**hsm_archive(hsm_mount, hsm={"recall_timeout_s": 1}), "retry": {"max_retries": 0}}
    settings = make_settings(bus_settings, cache, catalogue.url, [archive])
    async with running(settings):
        await publish(bus_settings, stable(study), study.study_uid)
        await wait_until(lambda: catalogue.job_states("HSM1") == ["DONE"], what="STORE DONE")
        for key in data:
            FileStore(cache).delete(key)
        # One file is "on tape" and does not come back in time: the RETRIEVE gives up.
        late = sorted(data)[0]
        parked = tmp_path / "tape"
        (hsm_mount / "vault" / late).rename(parked)
        await publish(bus_settings, ev.RecallRequested(study_instance_uid=study.study_uid,
                                                       requested_by="VIEWER"), study.study_uid)
        await wait_until(lambda: catalogue.job_states("HSM1-retrieve") == ["FAILED"],
                         what="RETRIEVE FAILED")
        assert not (cache / late).exists()
        # The tape robot delivers; the administrator retries: the whole study is back.
        parked.rename(hsm_mount / "vault" / late)
        (job,) = catalogue.queue_jobs("HSM1-retrieve")
        await retry_through_the_api(catalogue, job["job_id"])
        await wait_until(lambda: catalogue.job_states("HSM1-retrieve") == ["DONE"],
                         what="RETRIEVE DONE")
        await wait_until(lambda: catalogue.of_type(ar.StudyRecalled),
                         what="StudyRecalled")
    for key, raw in data.items():
        assert FileStore(cache).get(key) == raw


async def test_pacs_retrieve_retried_once_our_gateway_listens_moves_the_study(
        bus_settings, catalogue, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    study, data = await cache_study(bus_settings, cache, tmp_path / "in", catalogue,
                                    series=1, per_series=2)
    gateway = GatewayStandIn()  # our gateway's AE: not listening yet
    orthanc = Orthanc(tmp_path / "orthanc", aet="ORTHANC",
                      modalities={"vault": (gateway.aet, "127.0.0.1", gateway.port),
                                  "vault-archiver": ("VAULTARC", "127.0.0.1", free_port())}
                      ).start()
    try:
        archive = {"id": "PACS1", "kind": "pacs", "rules": [{}], "retry": {"max_retries": 0},
                   "readiness_interval_s": 0.2,
                   "pacs": {"ae_title": orthanc.aet, "host": "127.0.0.1",
                            "port": orthanc.dicom_port, "calling_ae": "VAULTARC",
                            "move_destination": gateway.aet, "timeout_s": 30}}
        settings = make_settings(bus_settings, cache, catalogue.url, [archive])
        async with running(settings):
            await publish(bus_settings, stable(study), study.study_uid)
            await wait_until(lambda: catalogue.job_states("PACS1") == ["DONE"],
                             what="STORE DONE")
            for key in data:
                FileStore(cache).delete(key)
            # The C-MOVE cannot reach our gateway: the RETRIEVE fails (no retries).
            await publish(bus_settings, ev.RecallRequested(study_instance_uid=study.study_uid,
                                                           requested_by="VIEWER"),
                          study.study_uid)
            await wait_until(lambda: catalogue.job_states("PACS1-retrieve") == ["FAILED"],
                             what="RETRIEVE FAILED")
            assert gateway.received == {}
            # The gateway is up; the administrator retries: Orthanc moves the whole study.
            gateway.start()
            (job,) = catalogue.queue_jobs("PACS1-retrieve")
            await retry_through_the_api(catalogue, job["job_id"])
            await wait_until(lambda: catalogue.job_states("PACS1-retrieve") == ["DONE"],
                             what="RETRIEVE DONE")
        assert sorted(gateway.received) == sorted(study.sop_uids)
    finally:
        gateway.stop()
        orthanc.stop()
