"""We ask Orthanc to commit (Orthanc is the Storage Commitment SCP); what it refuses we
re-send from the cache and ask again."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

import commitment  # noqa: F401 - registers the commitment event types
from dicomvault.events.v1 import commitment_pb2 as cpb
from dicomvault.events.v1 import jobs_pb2 as jb
from dicomvault.jobs import RetryPolicy
from tests.peers.datasets import write_study
from tests.peers.orthanc import Orthanc

from .conftest import AE, read_facts
from .helpers import has_instance, pair, put_in_cache, upload


async def test_orthanc_commits_after_we_resend_what_it_refused(
        bus_settings, start_vault, tmp_path: Path, port: int) -> None:
    # Orthanc knows our AE (to send its report back to our listener on `port`).
    orthanc = Orthanc(tmp_path / "orthanc",
                      modalities={"vault": (AE, "127.0.0.1", port)}).start()
    try:
        vault = await start_vault(
            bus_settings, dimse_port=port, report_timeout_s=30,
            request_retry=RetryPolicy(max_retries=3, initial_delay_s=0.1, max_delay_s=0.2),
            modalities={"ORTHANC": {"host": "127.0.0.1", "port": orthanc.dicom_port}})
        # A study of three instances in our cache; only two of them reached Orthanc.
        study = write_study(tmp_path / "study", series=1, per_series=3)
        for f in study.files:
            put_in_cache(vault.settings.cache.root, f)
        for f in study.files[:2]:
            await asyncio.to_thread(upload, orthanc, f)
        missing = pair(study.files[2])[1]
        assert not await asyncio.to_thread(has_instance, orthanc, missing)

        # An administrator asks for commitment over our REST API.
        async with httpx.AsyncClient() as c:
            r = await c.post(f"{vault.url}/api/v1/commitments", json={
                "study_instance_uid": study.study_uid, "remote_ae": "ORTHANC",
                "instances": [{"sop_class_uid": c_, "sop_instance_uid": i}
                              for c_, i in map(pair, study.files)]})
        assert r.status_code == 202, r.text
        job_id = r.json()["job_id"]

        # First report: two committed, the third refused as unknown (0x0112); we re-send it
        # by C-STORE from the cache, ask again, and the job completes.
        jobs = await read_facts(bus_settings, bus_settings.topics.jobs, lambda evs: any(
            isinstance(e.payload, jb.JobCompleted | jb.JobFailed) and e.payload.job_id == job_id
            for e in evs))
        ended = [e.payload for e in jobs if getattr(e.payload, "job_id", "") == job_id][-1]
        assert isinstance(ended, jb.JobCompleted), ended
        assert ended.completed == 3
        created = next(e.payload for e in jobs if isinstance(e.payload, jb.JobCreated))
        assert created.kind == jb.COMMIT_SCU and created.queue == "commitment-scu"
        assert await asyncio.to_thread(has_instance, orthanc, missing)

        facts = await read_facts(bus_settings, bus_settings.topics.studies, lambda evs: sum(
            isinstance(e.payload, cpb.StudyCommitted) for e in evs) >= 2)
        first, second = [e.payload for e in facts if isinstance(e.payload, cpb.StudyCommitted)]
        assert not first.complete and sorted(first.committed_sop_instance_uids) == sorted(
            study.sop_uids[:2])
        assert [(f.sop_instance_uid, f.failure_reason) for f in first.failed] == [(missing, 0x0112)]
        assert second.complete and list(second.committed_sop_instance_uids) == [missing]
        assert first.transaction_uid != second.transaction_uid

        # The operator's view: both transactions, the partial one and the committed one.
        states = [t["state"] for t in await vault.commitments("scu")]
        assert states == ["committed", "partial"]
        # Nothing was asked to be deleted: the cache still holds the study.
        assert len(list((vault.settings.cache.root / study.study_uid).rglob("*.dcm"))) == 3
    finally:
        orthanc.stop()
