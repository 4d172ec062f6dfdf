"""PACS Store and Remember: C-STORE a study to an external PACS, C-MOVE it back to our gateway.

The archive records that the remote AE holds the study (StudyArchived(tier="pacs",
location=<remote AE title>)); it does not know where inside the remote system. A retrieve asks
the remote AE to C-MOVE the study to ``move_destination`` (our gateway's AE title, listed in
the gateway's ``recall_aes`` so that it records the instances as InstanceStored(source=recall)
and triggers no new archive or export job).

pynetdicom is blocking and runs in worker threads here; the asyncio side only awaits them.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

from pydicom.dataset import Dataset
from pynetdicom import AE
from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelMove, Verification

from dicomvault.events import deterministic_id
from dicomvault.events.v1 import archive_pb2 as ar
from dicomvault.events.v1 import events_pb2 as ev
from dicomvault.jobs import Job, Outcome, ProgressReporter
from dicomvault.query import InstanceLocation
from hsm_archiver import metrics
from hsm_archiver.context import CatalogueError, Context
from hsm_archiver.settings import ArchiveConfig

log = logging.getLogger(__name__)

SUCCESS = 0x0000
WARNING_SUBOPS_FAILED = 0xB000
PENDING = (0xFF00, 0xFF01)


@dataclass
class _Tally:
    completed: int = 0
    failed: int = 0
    remaining: int = 0
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class PacsArchive:
    def __init__(self, config: ArchiveConfig, ctx: Context) -> None:
        assert config.pacs is not None
        self.config = config
        self.p = config.pacs
        self.ctx = ctx
        self.last_reason: str | None = None
        self.free_bytes: int | None = None

    def _ae(self) -> AE:
        ae = AE(ae_title=self.p.calling_ae)
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = self.p.timeout_s
        ae.connection_timeout = min(self.p.timeout_s, 10.0)
        return ae

    # --- readiness: C-ECHO ----------------------------------------------------------------
    def echo(self) -> str | None:
        ae = self._ae()
        ae.add_requested_context(Verification)
        assoc = ae.associate(self.p.host, self.p.port, ae_title=self.p.ae_title)
        if not assoc.is_established:
            return (f"no association with {self.p.ae_title}@{self.p.host}:{self.p.port} "
                    "(C-ECHO)")
        try:
            status = assoc.send_c_echo()
            code = getattr(status, "Status", None)
            if code != SUCCESS:
                return f"C-ECHO to {self.p.ae_title} answered {code!r}"
            return None
        finally:
            assoc.release()

    async def readiness(self) -> str | None:
        reason = await asyncio.to_thread(self.echo)
        self.last_reason = reason
        metrics.ARCHIVE_READY.labels(self.config.id).set(0 if reason else 1)
        return reason

    # --- STORE: C-STORE every instance ----------------------------------------------------
    async def store(self, job: Job, progress: ProgressReporter) -> Outcome:
        study = job.study_uid
        try:
            cached = await self.ctx.catalogue.instances(study, tier="cache")
        except CatalogueError as exc:
            return Outcome.retry(str(exc))
        if job.sop_uids:
            cached = [i for i in cached if i.sop_instance_uid in set(job.sop_uids)]
        if not cached:
            return Outcome.retry("the catalogue lists no instance of the study in the cache")
        tally = _Tally(remaining=len(cached))
        n = min(self.p.associations, len(cached))
        chunks = [cached[i::n] for i in range(n)]
        work = asyncio.gather(*(asyncio.to_thread(self._store_chunk, c, tally) for c in chunks))
        while not work.done():
            await asyncio.wait({work}, timeout=1.0)
            await progress(tally.completed, tally.failed, tally.remaining, "C-STORE")
        await work
        await progress(tally.completed, tally.failed, tally.remaining, "C-STORE", force=True)
        if tally.failed:
            return Outcome.retry(f"{tally.failed} of {len(cached)} C-STORE(s) failed: "
                                 f"{'; '.join(tally.errors[:3])}", tally.completed, tally.failed)
        size = sum(i.size_bytes for i in cached)
        sent = sorted(cached, key=lambda i: i.sop_instance_uid)
        metrics.ARCHIVED_BYTES.labels(self.config.id).inc(size)
        metrics.ARCHIVED_INSTANCES.labels(self.config.id).inc(len(cached))
        fact = ev.StudyArchived(
            study_instance_uid=study, tier="pacs", archive_id=self.config.id,
            location=self.p.ae_title, number_of_instances=len(cached), size_bytes=size,
            sop_instance_uids=[i.sop_instance_uid for i in sent],
            sha256s=[i.sha256 for i in sent],  # what we sent; the AE may keep an older copy
            verified=True, job_id=job.id)  # the remote AE acknowledged every C-STORE
        await self.ctx.publish(self.ctx.topics.studies, fact, study,
                               deterministic_id("archived", self.config.id, job.id))
        return Outcome.done(f"{len(cached)} instances stored on {self.p.ae_title}",
                            completed=len(cached), result={"location": self.p.ae_title})

    def _store_chunk(self, items: list[InstanceLocation], tally: _Tally) -> None:
        ae = self._ae()
        contexts = sorted({(i.sop_class_uid, i.transfer_syntax_uid) for i in items})
        for sop_class, ts in contexts[:128]:
            ae.add_requested_context(sop_class, [ts])
        assoc = ae.associate(self.p.host, self.p.port, ae_title=self.p.ae_title,
                             max_pdu=0)
        if not assoc.is_established:
            with tally.lock:
                tally.failed += len(items)
                tally.remaining -= len(items)
                tally.errors.append(f"association with {self.p.ae_title} refused or failed")
            return
        try:
            with tempfile.TemporaryDirectory(prefix="dv-cstore-") as tmp:
                for item in items:
                    ok, error = self._store_one(assoc, item, Path(tmp))
                    with tally.lock:
                        tally.remaining -= 1
                        if ok:
                            tally.completed += 1
                        else:
                            tally.failed += 1
                            tally.errors.append(error)
        finally:
            assoc.release()

    def _store_one(self, assoc, item: InstanceLocation, tmp: Path) -> tuple[bool, str]:
        # Send the cached Part 10 bytes without decoding them: pynetdicom streams a file's
        # data set as it is, so the remote AE gets exactly what we received.
        path = tmp / f"{item.sop_instance_uid}.dcm"
        try:
            path.write_bytes(self.ctx.cache.get(item.storage_key))
            status = assoc.send_c_store(path)
        except Exception as exc:  # noqa: BLE001 - one failed instance, reported and retried
            return False, f"{item.sop_instance_uid}: {exc!r}"
        finally:
            path.unlink(missing_ok=True)
        code = getattr(status, "Status", None)
        if code is None:
            return False, f"{item.sop_instance_uid}: no response (association aborted?)"
        if code != SUCCESS and not (0xB000 <= code <= 0xBFFF):  # warnings: stored
            return False, f"{item.sop_instance_uid}: status 0x{code:04X}"
        return True, ""

    # --- RETRIEVE: C-MOVE to our gateway --------------------------------------------------
    async def retrieve(self, job: Job, progress: ProgressReporter) -> Outcome:
        tally = _Tally()
        work = asyncio.ensure_future(asyncio.to_thread(self._move, job, tally))
        while not work.done():
            await asyncio.wait({work}, timeout=1.0)
            await progress(tally.completed, tally.failed, tally.remaining, "C-MOVE")
        status = await work
        await progress(tally.completed, tally.failed, 0, "C-MOVE", force=True)
        if status != SUCCESS:
            what = f"0x{status:04X}" if isinstance(status, int) else str(status)
            return Outcome.retry(f"C-MOVE from {self.p.ae_title} to {self.p.move_destination} "
                                 f"ended with {what} ({tally.completed} completed, "
                                 f"{tally.failed} failed) {'; '.join(tally.errors[:2])}",
                                 tally.completed, tally.failed)
        fact = ar.StudyRecalled(
            study_instance_uid=job.study_uid, tier="pacs", archive_id=self.config.id,
            job_id=job.id, number_of_instances=tally.completed, failed=tally.failed,
            location=self.p.ae_title)
        await self.ctx.publish(self.ctx.topics.studies, fact, job.study_uid,
                               deterministic_id("recalled", self.config.id, job.id))
        return Outcome.done(f"{tally.completed} instances moved to {self.p.move_destination}",
                            completed=tally.completed)

    def _move(self, job: Job, tally: _Tally) -> int | str:
        ae = self._ae()
        ae.add_requested_context(StudyRootQueryRetrieveInformationModelMove)
        assoc = ae.associate(self.p.host, self.p.port, ae_title=self.p.ae_title)
        if not assoc.is_established:
            return f"no association with {self.p.ae_title}"
        ds = Dataset()
        ds.QueryRetrieveLevel = "STUDY"
        ds.StudyInstanceUID = job.study_uid  # the whole study: we do not know its series
        final: int | str = "no final response"
        try:
            for status, _ident in assoc.send_c_move(
                ds, self.p.move_destination, StudyRootQueryRetrieveInformationModelMove
            ):
                if not status:
                    final = "association aborted or timed out"
                    break
                code = status.Status
                with tally.lock:
                    tally.completed = int(status.get("NumberOfCompletedSuboperations", 0)
                                          or tally.completed)
                    tally.failed = int(status.get("NumberOfFailedSuboperations", 0) or 0)
                    tally.remaining = int(status.get("NumberOfRemainingSuboperations", 0) or 0)
                if code in PENDING:
                    continue
                final = code
                if code != SUCCESS:
                    tally.errors.append(str(status.get("ErrorComment", "")))
        finally:
            assoc.release()
        return final


