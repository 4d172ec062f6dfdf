"""Retried commitment jobs do their work again: a FAILED COMMIT_SCU job re-sends what Orthanc
refused and asks again; a FAILED COMMIT_SCP job delivers its report once the modality is up."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
from pydicom.uid import MRImageStorage, generate_uid

import commitment  # noqa: F401 - registers the commitment event types
from dicomvault.bus.broker import free_port
from dicomvault.events.v1 import commitment_pb2 as cpb
from dicomvault.jobs import RetryPolicy
from tests.commitment.helpers import permitted
from tests.peers.datasets import write_study
from tests.peers.orthanc import Orthanc
from tests.peers.wait import wait_until

from .conftest import AE, read_facts
from .helpers import announce, has_instance, pair, put_in_cache, upload
from .modality import Modality, request_info


async def job_in(catalogue: str, job_id: str, state: str) -> dict:
    async def reached() -> dict | None:
        async with httpx.AsyncClient() as c:
            r = await c.get(f"{catalogue}/api/v1/jobs/{job_id}")
        return r.json() if r.status_code == 200 and r.json()["state"] == state else None
    return await wait_until(reached, timeout=60, what=f"job {job_id} {state}")


async def retry(catalogue: str, job_id: str) -> None:
    async with httpx.AsyncClient() as c:
        r = await c.post(f"{catalogue}/api/v1/jobs/{job_id}/retry")
    assert r.status_code == 202, r.text


async def test_retried_scu_job_resends_what_orthanc_refused(
        bus_settings, start_vault, catalogue, tmp_path: Path, port: int) -> None:
    orthanc = Orthanc(tmp_path / "orthanc", modalities={"vault": (AE, "127.0.0.1", port)}).start()
    try:
        # No retries: the first partial report fails the job.
        vault = await start_vault(
            bus_settings, dimse_port=port, catalogue_url=catalogue, report_timeout_s=30,
            request_retry=RetryPolicy(max_retries=0),
            modalities={"ORTHANC": {"host": "127.0.0.1", "port": orthanc.dicom_port}})
        study = write_study(tmp_path / "study", series=1, per_series=2)
        await announce(bus_settings, [put_in_cache(vault.settings.cache.root, f)
                                      for f in study.files])
        await asyncio.to_thread(upload, orthanc, study.files[0])  # the other never arrived
        missing = pair(study.files[1])[1]
        async with httpx.AsyncClient() as c:
            r = await c.post(f"{vault.url}/api/v1/commitments", json={
                "study_instance_uid": study.study_uid, "remote_ae": "ORTHANC",
                "instances": [{"sop_class_uid": a, "sop_instance_uid": b}
                              for a, b in map(pair, study.files)]})
        assert r.status_code == 202, r.text
        job_id = r.json()["job_id"]
        failed = await job_in(catalogue, job_id, "FAILED")
        assert "1 instance(s) not committed" in failed["error"]
        assert not await asyncio.to_thread(has_instance, orthanc, missing)

        # The administrator retries: the refused instance is re-sent, then committed.
        await retry(catalogue, job_id)
        await job_in(catalogue, job_id, "DONE")
        assert await asyncio.to_thread(has_instance, orthanc, missing)
        facts = await read_facts(bus_settings, bus_settings.topics.studies, lambda evs: sum(
            isinstance(e.payload, cpb.StudyCommitted) for e in evs) >= 2)
        last = [e.payload for e in facts if isinstance(e.payload, cpb.StudyCommitted)][-1]
        assert last.complete and list(last.committed_sop_instance_uids) == [missing]
    finally:
        orthanc.stop()


async def test_retried_scp_job_delivers_the_report(bus_settings, start_vault, catalogue) -> None:
    modality_port = free_port()
    vault = await start_vault(
        bus_settings, catalogue_url=catalogue, same_association=False,
        report_retry=RetryPolicy(max_retries=0),
        modalities={"CT2": permitted("127.0.0.1", modality_port)})
    ct2 = Modality("CT2")
    txn = generate_uid()
    # The modality asks and hangs up; nothing listens when the report is due: FAILED.
    assert await asyncio.to_thread(ct2.request, vault.dimse_port,
                                   request_info(txn, [(MRImageStorage, generate_uid())])) == 0

    async def failed_job() -> dict | None:
        async with httpx.AsyncClient() as c:
            r = await c.get(f"{catalogue}/api/v1/jobs", params={"queue": "commitment-scp"})
        jobs = r.json()["jobs"] if r.status_code == 200 else []
        return jobs[0] if jobs and jobs[0]["state"] == "FAILED" else None
    job = await wait_until(failed_job, timeout=60, what="the COMMIT_SCP job FAILED")
    assert not ct2.reports

    # The modality listens again; the administrator retries: the report arrives.
    ct2.listen(modality_port)
    try:
        await retry(catalogue, job["job_id"])
        await job_in(catalogue, job["job_id"], "DONE")
        assert ct2.got_report.wait(30)
        event_type, info, how = ct2.reports[0]
        assert (event_type, str(info.TransactionUID), how) == (2, txn, "new association")
    finally:
        ct2.close()
