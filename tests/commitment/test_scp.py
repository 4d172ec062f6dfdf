"""Modalities ask us to commit (we are the Storage Commitment SCP): Orthanc as the SCU, and a
pynetdicom modality where Orthanc cannot play the part. The real catalogue answers what the
archive holds; it learns it from InstanceStored facts on the broker."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from pydicom.uid import MRImageStorage, generate_uid

from dicomvault.bus.broker import free_port
from dicomvault.events.v1 import jobs_pb2 as jb
from dicomvault.jobs import RetryPolicy
from tests.commitment.helpers import catalogued, permitted
from tests.peers.datasets import write_study
from tests.peers.orthanc import Orthanc
from tests.peers.wait import wait_until

from .conftest import AE, read_facts
from .helpers import announce, commitment_report, pair, put_in_cache, request_commitment
from .modality import Modality, request_info

NO_SUCH_OBJECT_INSTANCE = 274  # 0x0112
CLASS_INSTANCE_CONFLICT = 281  # 0x0119


async def ask(orthanc: Orthanc, pairs: list[tuple[str, str]]) -> dict:
    """Orthanc asks the modality "vault" (us) to commit; its report (Orthanc blocks meanwhile,
    and our service runs in this event loop, hence the thread)."""
    txn = await asyncio.to_thread(request_commitment, orthanc, "vault", pairs)
    return await asyncio.to_thread(commitment_report, orthanc, txn)


@contextlib.asynccontextmanager
async def orthanc_and_vault(bus_settings, start_vault, catalogue, tmp_path: Path, port: int,
                            unknown_wait_s: float) -> AsyncIterator[tuple]:
    """Orthanc (the modality, knowing us as "vault") and the archive permitting it, with a
    one-instance study not sent yet: (orthanc, vault, study, (SOP class, SOP instance))."""
    orthanc = Orthanc(tmp_path / "orthanc", modalities={"vault": (AE, "127.0.0.1", port)}).start()
    try:
        vault = await start_vault(bus_settings, dimse_port=port, catalogue_url=catalogue,
                                  modalities={"ORTHANC": permitted("127.0.0.1", orthanc.dicom_port)},
                                  unknown_wait_s=unknown_wait_s)
        study = write_study(tmp_path / "study", series=1, per_series=1)
        yield orthanc, vault, study, pair(study.files[0])
    finally:
        orthanc.stop()


async def test_orthanc_asks_before_and_after_the_instance_is_catalogued(
        bus_settings, start_vault, catalogue, tmp_path: Path, port: int) -> None:
    async with orthanc_and_vault(bus_settings, start_vault, catalogue, tmp_path, port,
                                 unknown_wait_s=0.5) as (orthanc, vault, study, (sop_class, sop_uid)):
        # Not yet received (and still unknown after unknown_wait_s): the report says failed,
        # 274 (No such object instance).
        report = await ask(orthanc, [(sop_class, sop_uid)])
        assert report["Status"] == "Failure", report
        assert [(f["SOPInstanceUID"], f["FailureReason"]) for f in report["Failures"]] == [
            (sop_uid, NO_SUCH_OBJECT_INSTANCE)]

        # The gateway stores it in the cache and announces it; the catalogue records it.
        await announce(bus_settings, [put_in_cache(vault.settings.cache.root, study.files[0])])
        await catalogued(catalogue, study.study_uid, 1)

        # Asked again: success.
        report = await ask(orthanc, [(sop_class, sop_uid)])
        assert report["Status"] == "Success", report
        assert [s["SOPInstanceUID"] for s in report["Success"]] == [sop_uid]

        # Asked with the wrong SOP Class: Class / Instance conflict.
        report = await ask(orthanc, [(MRImageStorage, sop_uid)])
        assert [f["FailureReason"] for f in report["Failures"]] == [CLASS_INSTANCE_CONFLICT]

        # Each request was a COMMIT_SCP job in the jobs engine, completed.
        jobs = await read_facts(bus_settings, bus_settings.topics.jobs, lambda evs: sum(
            isinstance(e.payload, jb.JobCompleted) for e in evs) >= 3)
        created = [e.payload for e in jobs if isinstance(e.payload, jb.JobCreated)]
        assert [(c.kind, c.queue, c.target) for c in created] == [
            (jb.COMMIT_SCP, "commitment-scp", "ORTHANC")] * 3
        assert [t["state"] for t in await vault.commitments("scp")] == ["reported"] * 3


async def test_an_instance_catalogued_just_after_the_request_is_committed(
        bus_settings, start_vault, catalogue, tmp_path: Path, port: int) -> None:
    """A modality asks right after its last C-STORE, before the catalogue has applied it: the
    archive looks again for up to unknown_wait_s and commits it instead of answering 0x0112."""
    async with orthanc_and_vault(bus_settings, start_vault, catalogue, tmp_path, port,
                                 unknown_wait_s=20) as (orthanc, vault, study, (sop_class, sop_uid)):

        async def stored_later() -> None:
            await asyncio.sleep(1.5)  # the request is being checked by then
            await announce(bus_settings, [put_in_cache(vault.settings.cache.root, study.files[0])])

        storing = asyncio.create_task(stored_later())
        report = await ask(orthanc, [(sop_class, sop_uid)])
        await storing
        assert report["Status"] == "Success", report
        assert [s["SOPInstanceUID"] for s in report["Success"]] == [sop_uid]


async def test_the_report_comes_on_the_requesting_association_while_it_is_open(
        bus_settings, start_vault, catalogue) -> None:
    vault = await start_vault(bus_settings, catalogue_url=catalogue,
                              modalities={"CT1": permitted("127.0.0.1", free_port())})
    modality = Modality("CT1")
    unknown = generate_uid()
    txn = generate_uid()
    status = await asyncio.to_thread(
        modality.request, vault.dimse_port, request_info(txn, [(MRImageStorage, unknown)]),
        wait_report_s=60)
    assert status == 0x0000
    [(event_type, info, how)] = modality.reports
    assert how == "same association" and event_type == 2  # some failures
    assert info.TransactionUID == txn
    assert [(i.ReferencedSOPInstanceUID, i.FailureReason) for i in info.FailedSOPSequence] == [
        (unknown, 0x0112)]


async def test_a_reporting_peer_that_is_down_fails_the_job_visibly(
        bus_settings, start_vault, catalogue) -> None:
    # The modality asks, hangs up, and is gone when the report is due: nothing listens on its port.
    vault = await start_vault(
        bus_settings, catalogue_url=catalogue, same_association=False,
        report_retry=RetryPolicy(max_retries=2, initial_delay_s=0.05, max_delay_s=0.1),
        modalities={"CT2": permitted("127.0.0.1", free_port())})
    txn = generate_uid()
    assert await asyncio.to_thread(Modality("CT2").request, vault.dimse_port,
                                   request_info(txn, [(MRImageStorage, generate_uid())])) == 0x0000

    # The report is retried (two retries), then the job fails with the reason.
    jobs = await read_facts(bus_settings, bus_settings.topics.jobs, lambda evs: any(
        isinstance(e.payload, jb.JobFailed) for e in evs))
    retries = [e.payload for e in jobs if isinstance(e.payload, jb.JobRetryScheduled)]
    failed = next(e.payload for e in jobs if isinstance(e.payload, jb.JobFailed))
    assert len(retries) == 2 and all("not delivered" in r.error for r in retries)
    assert failed.attempts == 3 and "CT2" in failed.error and "not delivered" in failed.error

    async def failed_transaction() -> list[dict]:
        ts = await vault.commitments("scp")
        return ts if [t["state"] for t in ts] == ["failed"] else []

    # The transaction is marked failed once JobFailed is out (the queue's observer), which
    # may be just after the fact reached the topic.
    [t] = await wait_until(failed_transaction, timeout=30, what="the transaction failed")
    assert t["transaction_uid"] == txn and t["state"] == "failed"
    assert "not delivered" in t["message"]
