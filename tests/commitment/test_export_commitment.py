"""A `dicom:` exporter with storageCommitment asks Orthanc to commit to exactly what it sent:
C-STORE → CommitmentRequested → N-ACTION → N-EVENT-REPORT → StudyCommitted, shown in the
study's timeline, the jobs API and GET /api/v1/commitments. What Orthanc does not hold any
more is re-sent and asked again; delete-after-commit never removes the last copy."""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path

import httpx

import commitment  # noqa: F401 - registers the commitment event types
import stow_exporter  # noqa: F401
from dicomvault.bus import Publisher, ensure_topics
from dicomvault.events.v1 import commitment_pb2 as cpb
from dicomvault.events.v1 import jobs_pb2 as jb
from dicomvault.jobs import RetryPolicy
from stow_exporter.catalogue import CatalogueClient
from stow_exporter.service import build_hosted
from stow_exporter.settings import ExporterSection, ExporterSettings
from stow_exporter.spec import Exporter
from tests.commitment.helpers import catalogued
from tests.exporter.conftest import drain
from tests.peers.cache import publish
from tests.peers.datasets import write_study
from tests.peers.orthanc import Orthanc
from tests.peers.wait import wait_until

from .conftest import AE, read_facts
from .helpers import announce, put_in_cache


def spec(delete_after_commit: bool = False) -> Exporter:
    return Exporter.model_validate({
        "exporterID": "TO-ORTHANC", "uri": "dicom:ORTHANC", "aeTitle": "VAULTEXP",
        "retry": {"maxRetries": 0},
        "storageCommitment": {"enabled": True, "timeoutSeconds": 30,
                              "deleteAfterCommit": delete_after_commit}})


async def export_study(bus, vault, catalogue: str, orthanc: Orthanc, study_uid: str,
                       exp: Exporter):
    """Run the exporter (its real wiring) until the study has gone to Orthanc."""
    settings = ExporterSettings(
        bus=bus, cache={"root": vault.settings.cache.root, "fsync": False},
        auth={"enabled": False}, exporter=ExporterSection(
            catalogue_url=catalogue, tick_s=0.05,
            modalities={"ORTHANC": {"host": "127.0.0.1", "port": orthanc.dicom_port}}))
    await ensure_topics(bus)
    client = CatalogueClient(catalogue, 10)
    async with Publisher(bus, client_id="exporter-test") as publisher:
        h = build_hosted(settings, [exp], publisher, client,
                         lambda: datetime.now().astimezone())[0]
        try:
            export = await h.queue.submit(study_uid, trigger="manual")
            await drain(h)
        finally:
            await h.sender.close()
            await client.close()
    return export


async def job(catalogue: str, job_id: str, state: str) -> dict:
    async def ended() -> dict | None:
        async with httpx.AsyncClient() as c:
            r = await c.get(f"{catalogue}/api/v1/jobs/{job_id}")
        return r.json() if r.status_code == 200 and r.json()["state"] == state else None
    return await wait_until(ended, timeout=60, what=f"job {job_id} {state} in the catalogue")


def committed_facts(job_id: str, n: int):
    return lambda evs: sum(isinstance(e.payload, cpb.StudyCommitted)
                           and e.payload.job_id == job_id for e in evs) >= n


async def test_dicom_export_is_committed_by_orthanc(
        bus_settings, start_vault, catalogue, tmp_path: Path, port: int) -> None:
    orthanc = Orthanc(tmp_path / "orthanc", modalities={"vault": (AE, "127.0.0.1", port)}).start()
    try:
        vault = await start_vault(
            bus_settings, dimse_port=port, catalogue_url=catalogue,
            request_retry=RetryPolicy(max_retries=2, initial_delay_s=0.1, max_delay_s=0.2),
            modalities={"ORTHANC": {"host": "127.0.0.1", "port": orthanc.dicom_port}})
        # A study of three instances, only in the cache (no other copy anywhere).
        study = write_study(tmp_path / "study", series=1, per_series=3)
        await announce(bus_settings, [put_in_cache(vault.settings.cache.root, f)
                                      for f in study.files])
        await catalogued(catalogue, study.study_uid, 3)

        # The exporter sends it by C-STORE and asks for commitment (delete after commit).
        export = await export_study(bus_settings, vault, catalogue, orthanc, study.study_uid,
                                    spec(delete_after_commit=True))
        assert export.state == "exported", export.reason
        assert export.commitment.startswith("requested from ORTHANC")

        # The commitment service asked Orthanc (N-ACTION) and got its report: every
        # instance the exporter sent is committed.
        exported = await job(catalogue, export.id, "DONE")
        commit_id = exported["result"]["commitment_job_id"]
        assert exported["result"]["commitment_instances"] == "3"
        facts = await read_facts(bus_settings, bus_settings.topics.studies,
                                 committed_facts(commit_id, 1))
        committed = [e.payload for e in facts if isinstance(e.payload, cpb.StudyCommitted)]
        assert len(committed) == 1 and committed[0].complete
        assert sorted(committed[0].committed_sop_instance_uids) == sorted(study.sop_uids)
        requested = [e.payload for e in facts if isinstance(e.payload, cpb.CommitmentRequested)]
        assert [(r.requested_by, r.job_id, r.report_timeout_seconds) for r in requested] == [
            ("exporter:TO-ORTHANC", export.id, 30)]

        # The jobs API: a COMMIT_SCU job, created by the exporter for its export job, DONE;
        # the cache copy stays (it is the only copy the archive holds).
        scu = await job(catalogue, commit_id, "DONE")
        assert scu["kind"] == "COMMIT_SCU" and scu["created_by"] == "exporter:TO-ORTHANC"
        assert scu["params"]["source_job_id"] == export.id
        assert scu["result"]["evicted"].startswith("kept: 3 instance(s)")
        assert len(list((vault.settings.cache.root / study.study_uid).rglob("*.dcm"))) == 3
        # The commitment API and the study's timeline show it too.
        scu_txns = await vault.commitments("scu")
        assert [(t["study_instance_uid"], t["state"]) for t in scu_txns] == [
            (study.study_uid, "committed")]

        async def in_timeline() -> bool:
            async with httpx.AsyncClient() as c:
                r = await c.get(f"{catalogue}/api/v1/studies/{study.study_uid}/timeline")
            return r.status_code == 200 and any(
                e["type"] == "dicomvault.study.committed.v1" for e in r.json()["events"])
        await wait_until(in_timeline, timeout=60, what="StudyCommitted in the study's timeline")
    finally:
        orthanc.stop()


async def test_what_orthanc_lost_is_resent_and_asked_again(
        bus_settings, start_vault, catalogue, tmp_path: Path, port: int) -> None:
    orthanc = Orthanc(tmp_path / "orthanc", modalities={"vault": (AE, "127.0.0.1", port)}).start()
    try:
        vault = await start_vault(
            bus_settings, dimse_port=port, catalogue_url=catalogue,
            request_retry=RetryPolicy(max_retries=2, initial_delay_s=0.1, max_delay_s=0.2),
            modalities={"ORTHANC": {"host": "127.0.0.1", "port": orthanc.dicom_port}})
        study = write_study(tmp_path / "study", series=1, per_series=2)
        await announce(bus_settings, [put_in_cache(vault.settings.cache.root, f)
                                      for f in study.files])
        await catalogued(catalogue, study.study_uid, 2)
        # Commitment requests wait: the administrator paused the commitment-scu queue.
        await publish(bus_settings, jb.JobCommandIssued(
            command=jb.JobCommandIssued.PAUSE_QUEUE, queue="commitment-scu",
            issued_by="api:ops", reason="test"), "")

        async def halted() -> bool:
            async with httpx.AsyncClient() as c:
                r = await c.get(f"{vault.url}/api/v1/commitments")
            return any(q["queue"] == "commitment-scu" and q["state"] == "HALTED"
                       for q in r.json()["queues"])
        await wait_until(halted, timeout=60, what="commitment-scu queue HALTED")

        export = await export_study(bus_settings, vault, catalogue, orthanc, study.study_uid,
                                    spec())
        assert export.state == "exported", export.reason
        # Meanwhile Orthanc loses one of the two instances.
        lost = study.sop_uids[1]
        orthanc.delete("instances", orthanc.rest.post("/tools/find", json={
            "Level": "Instance", "Query": {"SOPInstanceUID": lost}}).json()[0])
        await publish(bus_settings, jb.JobCommandIssued(
            command=jb.JobCommandIssued.RESUME_QUEUE, queue="commitment-scu",
            issued_by="api:ops"), "")

        # Orthanc refuses the lost one (0x0112); it is re-sent by C-STORE and asked again.
        exported = await job(catalogue, export.id, "DONE")
        commit_id = exported["result"]["commitment_job_id"]
        facts = await read_facts(bus_settings, bus_settings.topics.studies,
                                 committed_facts(commit_id, 2))
        first, second = [e.payload for e in facts if isinstance(e.payload, cpb.StudyCommitted)
                         and e.payload.job_id == commit_id]
        assert not first.complete
        assert [(f.sop_instance_uid, f.failure_reason) for f in first.failed] == [(lost, 0x0112)]
        assert second.complete and list(second.committed_sop_instance_uids) == [lost]
        await job(catalogue, commit_id, "DONE")
        assert lost in await asyncio.to_thread(lambda: set(orthanc.files_by_sop_uid_of(
            study.study_uid)))
    finally:
        orthanc.stop()
