"""Delete-after-commit: the cache copy goes only after a full success, and never if it is
the last copy the catalogue knows of."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

import commitment  # noqa: F401 - registers the commitment event types
from dicomvault.events.v1 import commitment_pb2 as cpb
from dicomvault.events.v1 import events_pb2 as ev
from dicomvault.events.v1 import jobs_pb2 as jb
from dicomvault.jobs import RetryPolicy
from tests.commitment.helpers import catalogued
from tests.peers.datasets import write_study
from tests.peers.orthanc import Orthanc
from tests.peers.wait import wait_until

from .conftest import AE, read_facts
from .helpers import announce, pair, put_in_cache, upload


def requested(study, remote: str) -> cpb.CommitmentRequested:
    return cpb.CommitmentRequested(
        study_instance_uid=study.study_uid, remote_ae=remote, requested_by="archive:PACS1",
        delete_after_commit=True, instances=[
            cpb.SopReference(sop_class_uid=c, sop_instance_uid=i) for c, i in map(pair, study.files)])


def archived(study) -> ev.StudyArchived:
    return ev.StudyArchived(study_instance_uid=study.study_uid, tier="hsm", archive_id="HSM1",
                             location=f"hsm/{study.study_uid}", verified=True,
                             number_of_instances=len(study.files),
                             sop_instance_uids=study.sop_uids)


async def archived_in(catalogue: str, study_uid: str) -> None:
    async def shown() -> bool:
        async with httpx.AsyncClient() as c:
            r = await c.get(f"{catalogue}/api/v1/studies/{study_uid}")
        return r.status_code == 200 and any(
            loc.get("tier") == "hsm" for loc in r.json().get("study_locations", []))
    await wait_until(shown, timeout=60, what=f"catalogue shows the HSM copy of {study_uid}")


async def test_cache_copy_is_removed_only_after_full_success_and_never_the_last(
        bus_settings, start_vault, catalogue, tmp_path: Path, port: int) -> None:
    orthanc = Orthanc(tmp_path / "orthanc", modalities={"vault": (AE, "127.0.0.1", port)}).start()
    try:
        vault = await start_vault(
            bus_settings, dimse_port=port, catalogue_url=catalogue, report_timeout_s=30,
            request_retry=RetryPolicy(max_retries=0),
            modalities={"ORTHANC": {"host": "127.0.0.1", "port": orthanc.dicom_port}})
        cache = vault.settings.cache.root
        # A: archived on HSM too, fully sent.  B: only in the cache, fully sent.
        # C: archived on HSM too, but one instance never reached Orthanc.
        a, b, c = (write_study(tmp_path / name, series=1, per_series=2) for name in "abc")
        for study in (a, b, c):
            await announce(bus_settings, [put_in_cache(cache, f) for f in study.files])
        for study in (a, b, c):
            await catalogued(catalogue, study.study_uid, 2)
        # The HSM archiver reports verified copies of A and C (a location per instance and tier).
        await announce(bus_settings, [archived(a), archived(c)])
        for study in (a, c):
            await archived_in(catalogue, study.study_uid)
        for f in [*a.files, *b.files, c.files[0]]:
            await asyncio.to_thread(upload, orthanc, f)

        # The archiver asks for commitment after its C-STORE job, with delete-after-commit.
        await announce(bus_settings, [requested(a, "ORTHANC"), requested(b, "ORTHANC"),
                                      requested(c, "ORTHANC")])
        jobs = await read_facts(bus_settings, bus_settings.topics.jobs, lambda evs: sum(
            isinstance(e.payload, jb.JobCompleted | jb.JobFailed) for e in evs) >= 3)
        ended = {e.subject: e.payload for e in jobs
                 if isinstance(e.payload, jb.JobCompleted | jb.JobFailed)}

        def cached(study) -> int:
            return len(list((cache / study.study_uid).rglob("*.dcm")))

        # A: committed and held elsewhere -> evicted from the cache, and the fact says so.
        assert isinstance(ended[a.study_uid], jb.JobCompleted)
        assert ended[a.study_uid].result["evicted"].startswith("evicted 2")
        assert cached(a) == 0
        # B: committed, but the cache is its only copy in the archive -> kept.
        assert isinstance(ended[b.study_uid], jb.JobCompleted)
        assert ended[b.study_uid].result["evicted"].startswith("kept")
        assert cached(b) == 2
        # C: not fully committed -> the job fails and nothing is deleted.
        assert isinstance(ended[c.study_uid], jb.JobFailed)
        assert "not committed" in ended[c.study_uid].error
        assert cached(c) == 2

        studies = await read_facts(bus_settings, bus_settings.topics.studies, lambda evs: any(
            isinstance(e.payload, ev.StudyEvicted) for e in evs))
        evicted = [e.payload for e in studies if isinstance(e.payload, ev.StudyEvicted)]
        assert [(x.study_instance_uid, x.tier) for x in evicted] == [(a.study_uid, "cache")]
    finally:
        orthanc.stop()
