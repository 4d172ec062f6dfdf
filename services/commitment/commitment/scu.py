"""COMMIT_SCU jobs: ask a remote AE to commit to instances we sent it.

One attempt: re-send (C-STORE from the cache) what the remote refused last time, send the
N-ACTION with a fresh Transaction UID, wait for the N-EVENT-REPORT on our listener (bounded
by report_timeout_s), publish StudyCommitted with what it said. A full success ends the job
(and, when asked, evicts the study from the cache if another verified copy exists); anything
else is a retry within the job's policy, after which the job is FAILED with the reason."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path

from pydicom.uid import generate_uid

from commitment import metrics
from commitment.catalogue import CatalogueClient, CatalogueUnavailable
from commitment.peers import DimseError, Peer, Peers
from commitment.recent import Recent, Transaction
from commitment.settings import CommitmentSection
from commitment.verify import _archived, archived_study
from dicomvault.bus import Publisher, PublishError
from dicomvault.dicom import commitment as sc
from dicomvault.events import Event
from dicomvault.events.v1 import commitment_pb2 as cpb
from dicomvault.events.v1 import events_pb2 as ev
from dicomvault.jobs import Job, JobQueue, JobState, Outcome
from dicomvault.retry import retry_forever
from dicomvault.settings import TopicNames
from dicomvault.store import CacheStore, FileStore, StoreError, is_valid_uid

log = logging.getLogger(__name__)

QUEUE = "commitment-scu"
KEPT_FAILED = 10_000  # failed jobs whose refusals are kept for a retry
SOURCE = "dicomvault/commitment"


@dataclass
class Progress:
    committed: set[str] = field(default_factory=set)
    refused: dict[str, sc.FailedRef] = field(default_factory=dict)


class ScuJobs:
    def __init__(self, cfg: CommitmentSection, catalogue: CatalogueClient, store: CacheStore,
                 recent: Recent, publisher: Publisher, topics: TopicNames,
                 peers: Peers) -> None:
        self.cfg = cfg
        self.catalogue = catalogue
        self.store = store
        self.recent = recent
        self.pub = publisher
        self.topics = topics
        self.peers = peers
        self.queue: JobQueue | None = None
        self.waiters: dict[str, asyncio.Future[sc.CommitReport]] = {}
        # What each job's remote committed and refused so far; a FAILED job keeps it (bounded)
        # so that a retry re-sends what was refused before asking again.
        self.progress: OrderedDict[str, Progress] = OrderedDict()

    # --- requests in ----------------------------------------------------------------------
    async def requested(self, event: Event) -> Job:
        p: cpb.CommitmentRequested = event.payload
        return await self.queue.submit(
            p.study_instance_uid, target=p.remote_ae, dedupe_key=event.id,
            params={"sop_classes": "\\".join(r.sop_class_uid for r in p.instances),
                    "delete_after_commit": "true" if p.delete_after_commit else "false",
                    "requested_by": p.requested_by, "source_job_id": p.job_id,
                    **({"report_timeout_s": str(p.report_timeout_seconds)}
                       if p.report_timeout_seconds > 0 else {})},
            sop_uids=[r.sop_instance_uid for r in p.instances],
            created_by=p.requested_by or "event")

    async def report_received(self, report: sc.CommitReport) -> int:
        fut = self.waiters.get(report.transaction_uid)
        if fut is None or fut.done():
            log.warning("storage commitment report for an unknown or expired transaction",
                        extra={"transaction_uid": report.transaction_uid,
                               "calling_ae": report.calling_ae})
            self.recent.update(report.transaction_uid, state="late",
                               message=f"report from {report.calling_ae} after the wait ended")
            return sc.SUCCESS
        fut.set_result(report)
        return sc.SUCCESS

    # --- the job --------------------------------------------------------------------------
    async def execute(self, job: Job, progress) -> Outcome:
        remote = job.target
        modality = self.cfg.modalities.get(remote)
        if modality is None:
            return Outcome.failed_permanently(f"{remote} is not in the modalities table")
        peer = Peer(remote, modality.host, modality.port)
        classes = job.params.get("sop_classes", "").split("\\")
        refs = [sc.SopRef(c, i) for c, i in zip(classes, job.sop_uids, strict=False)]
        state = self.progress.setdefault(job.id, Progress())
        pending = [r for r in refs if r.sop_instance_uid not in state.committed]
        if pending:
            if state.refused:
                resent = await self._resend(job, peer, list(state.refused))
                if resent is not None:
                    return resent
            outcome = await self._ask(job, peer, pending, state)
            if outcome is not None:
                return outcome
        if job.params.get("delete_after_commit") == "true":
            try:
                evicted = await self._evict(job, remote)
            except CatalogueUnavailable as exc:
                return Outcome.retry(f"committed; cache eviction waits for the catalogue: {exc}")
        else:
            evicted = "not requested"
        self.progress.pop(job.id, None)
        return Outcome.done(f"{len(refs)} instance(s) committed by {remote}; eviction: {evicted}",
                            completed=len(refs), result={"evicted": evicted})

    async def _resend(self, job: Job, peer: Peer, sop_uids: list[str]) -> Outcome | None:
        files = [f for f in (self._cache_file(job.study_uid, s) for s in sop_uids) if f]
        log.info("re-sending refused instances", extra={"job": job.id, "files": len(files),
                                                        "refused": len(sop_uids)})
        try:
            await asyncio.to_thread(self.peers.send_files, peer, files)
        except DimseError as exc:
            return Outcome.retry(f"re-send to {peer.ae_title} failed: {exc}")
        return None

    def _cache_file(self, study_uid: str, sop_uid: str) -> Path | BytesIO | None:
        """The cache copy, by the instance_key layout <study>/<series>/<sop>.dcm (on object
        storage: its bytes, read into memory)."""
        if not (is_valid_uid(study_uid) and is_valid_uid(sop_uid)):
            return None
        if isinstance(self.store, FileStore):
            return next(iter((self.store.root / study_uid).glob(f"*/{sop_uid}.dcm")), None)
        try:
            key = next((k for k, _ in self.store.keys(prefix=f"{study_uid}/")
                        if k.endswith(f"/{sop_uid}.dcm")), None)
            return BytesIO(self.store.get(key)) if key else None
        except StoreError:
            return None

    async def _ask(self, job: Job, peer: Peer, pending: list[sc.SopRef],
                   state: Progress) -> Outcome | None:
        """One N-ACTION / N-EVENT-REPORT exchange; None when every instance is committed."""
        txn = generate_uid()
        fut: asyncio.Future[sc.CommitReport] = asyncio.get_running_loop().create_future()
        self.waiters[txn] = fut
        self.recent.add(Transaction(txn, "scu", peer.ae_title, job.id, job.study_uid,
                                    state="requested", requested=len(pending)))
        try:
            sent = time.monotonic()
            try:
                await asyncio.to_thread(self.peers.send_request, peer, txn, pending)
            except DimseError as exc:
                metrics.REQUESTS.labels("scu", "failed").inc()
                self.recent.update(txn, state="failed", message=str(exc))
                return Outcome.retry(f"N-ACTION to {peer.ae_title} failed: {exc}")
            timeout_s = float(job.params.get("report_timeout_s") or self.cfg.report_timeout_s)
            try:
                report = await asyncio.wait_for(asyncio.shield(fut), timeout_s)
            except TimeoutError:
                metrics.REQUESTS.labels("scu", "timeout").inc()
                msg = f"no N-EVENT-REPORT from {peer.ae_title} within {timeout_s:g}s"
                self.recent.update(txn, state="timeout", message=msg)
                return Outcome.retry(msg)
            metrics.REPORT_LATENCY.labels("scu").observe(time.monotonic() - sent)
        finally:
            self.waiters.pop(txn, None)
        asked = {r.sop_instance_uid: r for r in pending}
        committed = [r.sop_instance_uid for r in report.committed if r.sop_instance_uid in asked]
        refused = {f.sop_instance_uid: f for f in report.failed if f.sop_instance_uid in asked}
        for sop, ref in asked.items():  # neither committed nor failed: not committed
            if sop not in refused and sop not in committed:
                refused[sop] = sc.FailedRef(ref.sop_class_uid, sop, sc.PROCESSING_FAILURE,
                                           "absent from the report")
        state.committed.update(committed)
        state.refused = refused
        complete = not refused
        await self._publish(cpb.StudyCommitted(
            study_instance_uid=job.study_uid, remote_ae=peer.ae_title, transaction_uid=txn,
            committed_sop_instance_uids=committed, complete=complete, job_id=job.id,
            attempt=job.attempt, failed=[cpb.FailedSopReference(
                sop_class_uid=f.sop_class_uid, sop_instance_uid=f.sop_instance_uid,
                failure_reason=f.failure_reason, description=f.description)
                for f in refused.values()]), job.study_uid)
        metrics.INSTANCES.labels("scu", "committed").inc(len(committed))
        metrics.INSTANCES.labels("scu", "failed").inc(len(refused))
        metrics.REQUESTS.labels("scu", "committed" if complete else "partial").inc()
        failures = [{"sop_instance_uid": f.sop_instance_uid, "failure_reason": f.failure_reason,
                     "description": f.description} for f in refused.values()]
        self.recent.update(txn, state="committed" if complete else "partial",
                           committed=len(committed), failed=failures)
        if complete:
            return None
        reasons = sorted({f"0x{f.failure_reason:04X}" for f in refused.values()})
        return Outcome.retry(f"{len(refused)} instance(s) not committed by {peer.ae_title} "
                             f"({', '.join(reasons)}); re-sending and asking again",
                             completed=len(state.committed), failed=len(refused))

    async def _evict(self, job: Job, remote: str) -> str:
        """Remove the study's cache copy only if every cached instance has another copy."""
        locations = await self.catalogue.study_locations(job.study_uid)
        cached = [loc for loc in locations if loc["tier"] == "cache"]
        elsewhere = {loc["sop_instance_uid"] for loc in locations if _archived(loc)}
        last = [loc for loc in cached if loc["sop_instance_uid"] not in elsewhere]
        if last and archived_study(await self.catalogue.study_archives(job.study_uid),
                                   len({loc["sop_instance_uid"] for loc in cached})):
            last = []  # a verified study-level copy holds every cached instance
        if not cached:
            return "nothing in the cache"
        if last:
            log.warning("cache copy kept: it is the last copy",
                        extra={"job": job.id, "instances_without_other_copy": len(last)})
            return f"kept: {len(last)} instance(s) have no other verified copy"
        # The fact first: a reader never follows a catalogue entry to a deleted file.
        await self._publish(ev.StudyEvicted(
            study_instance_uid=job.study_uid, tier="cache", archive_id="cache",
            location=job.study_uid, reason=f"storage commitment by {remote}"), job.study_uid)
        for loc in cached:
            try:
                await asyncio.to_thread(self.store.delete, loc["storage_key"])
            except StoreError as exc:
                log.warning("cache file not deleted", extra={"key": loc["storage_key"],
                                                             "error": str(exc)})
        metrics.EVICTED.inc()
        return f"evicted {len(cached)} instance(s) from the cache"

    async def _publish(self, payload, study_uid: str) -> None:
        event = Event(payload=payload, source=SOURCE, subject=study_uid)
        await retry_forever(
            lambda: self.pub.publish(self.topics.studies, event, key=study_uid),
            retry_on=PublishError, first_s=0.2, max_s=10.0,
            on_retry=lambda exc: log.warning("fact not published yet, retrying",
                                             extra={"error": str(exc)}))

    def on_ended(self, job: Job) -> None:
        if job.state != JobState.FAILED:
            self.progress.pop(job.id, None)
            return
        if job.id in self.progress:
            self.progress.move_to_end(job.id)
        while len(self.progress) > KEPT_FAILED:
            self.progress.popitem(last=False)
