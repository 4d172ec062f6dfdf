"""COMMIT_SCP jobs: a modality asked us to commit; check each instance, then report.

Requests come from the gateway's DIMSE port (``CommitmentRequestReceived`` on the bus: the
report goes on a new association to the host/port the gateway's modalities table gave) or,
deprecated, from our own listener: there the report goes on the requesting association
while it is still open (and after our N-ACTION response), otherwise on a new association to
the host and port of our own modalities table (PS3.4 J.3.3). A report that cannot be
delivered is retried with the job's retry policy; when the retries are spent the job is
FAILED, visibly, with the reason (at once when there is no host/port to report to)."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from commitment import metrics, verify
from commitment.catalogue import CatalogueClient, CatalogueUnavailable
from commitment.peers import DimseError, Peer, Peers
from commitment.recent import Recent, Transaction
from commitment.settings import CommitmentSection
from dicomvault.dicom import commitment as sc
from dicomvault.events.v1 import commitment_pb2 as cpb
from dicomvault.jobs import Job, JobQueue, Outcome
from dicomvault.store import FileStore

log = logging.getLogger(__name__)

UNKNOWN_RECHECK_S = 0.25  # how often an instance unknown to the catalogue is looked up again

QUEUE = "commitment-scp"


class NoAddress(DimseError):
    """The request came through the gateway for an AE without host/port: nowhere to report."""


@dataclass
class OpenRequest:
    """The association a request came on, while it may still carry the report."""

    assoc: object
    message_id: int
    received: float = field(default_factory=time.monotonic)
    answered: threading.Event = field(default_factory=threading.Event)


class ScpJobs:
    def __init__(self, cfg: CommitmentSection, catalogue: CatalogueClient, store: FileStore,
                 recent: Recent, peers: Peers) -> None:
        self.cfg = cfg
        self.catalogue = catalogue
        self.store = store
        self.recent = recent
        self.peers = peers
        self.queue: JobQueue | None = None
        self.open: dict[str, OpenRequest] = {}
        self.received: dict[str, float] = {}

    def may_request(self, calling_ae: str) -> bool:
        modality = self.cfg.modalities.get(calling_ae)
        return modality is not None and modality.permissions.may_request_commitment

    def refused(self, outcome: str) -> None:
        metrics.REQUESTS.labels("scp", outcome).inc()

    async def accept(self, calling_ae: str, request: sc.CommitRequest, assoc,
                     message_id: int) -> Job:
        """Record the request as a job (before the N-ACTION is answered)."""
        self.open[request.transaction_uid] = OpenRequest(assoc, message_id)
        return await self._record(calling_ae, request.transaction_uid, request.refs, {},
                                  "storage commitment request accepted")

    async def handed_over(self, request: cpb.CommitmentRequestReceived) -> Job:
        """Record a request the gateway took on its DIMSE port (idempotent: a redelivered
        fact, or the same Transaction UID asked again, finds the same job)."""
        params = {"received_by": "gateway"}
        if request.reply_host and request.reply_port:
            params |= {"reply_host": request.reply_host, "reply_port": str(request.reply_port)}
        return await self._record(request.calling_ae, request.transaction_uid, request.instances,
                                  params, "storage commitment request taken over from the gateway")

    async def _record(self, calling: str, txn: str, refs: Sequence[sc.SopRef | cpb.SopReference],
                      params: dict[str, str], message: str) -> Job:
        """One request as a job (one per calling AE and Transaction UID), in the recent
        transactions, counted and logged."""
        self.received.setdefault(txn, time.monotonic())
        job = await self.queue.submit(
            "", target=calling, dedupe_key=f"{calling}/{txn}",
            params={"transaction_uid": txn, "calling_ae": calling, **params,
                    "sop_classes": "\\".join(r.sop_class_uid for r in refs)},
            sop_uids=[r.sop_instance_uid for r in refs],
            created_by=f"dimse:{calling}")
        if self.recent.get(txn) is None:
            self.recent.add(Transaction(txn, "scp", calling, job.id, state="received",
                                        requested=len(refs)))
        metrics.REQUESTS.labels("scp", "accepted").inc()
        log.info(message, extra={"calling_ae": calling, "transaction_uid": txn, "job": job.id,
                                 "instances": len(refs)})
        return job

    def answered(self, assoc, message_id: int | None) -> None:
        for req in list(self.open.values()):
            if req.assoc is assoc and (message_id is None or req.message_id == message_id):
                req.answered.set()

    async def _known(self, sop_uids: list[str]) -> dict[str, list]:
        """The catalogue's locations of these instances, those it does not know yet looked up
        again every ``UNKNOWN_RECHECK_S`` until ``unknown_wait_s`` passed: the C-STOREs a
        modality sent just before its request may not be applied yet."""
        found = await self.catalogue.lookup(sop_uids)
        deadline = time.monotonic() + self.cfg.unknown_wait_s
        missing = [uid for uid in sop_uids if not found.get(uid)]
        while missing and (left := deadline - time.monotonic()) > 0:
            await asyncio.sleep(min(UNKNOWN_RECHECK_S, left))
            found.update(await self.catalogue.lookup(missing))
            missing = [uid for uid in missing if not found.get(uid)]
        return found

    async def execute(self, job: Job, progress) -> Outcome:
        txn, calling = job.params["transaction_uid"], job.params["calling_ae"]
        classes = job.params.get("sop_classes", "").split("\\")
        refs = [sc.SopRef(c, i) for c, i in zip(classes, job.sop_uids, strict=False)]
        try:
            found = await self._known(job.sop_uids)
            archived: set[str] = set()
            if self.cfg.policy.archived:  # study-level copies (HSM tar, optical volume, PACS)
                studies = {loc["study_instance_uid"] for locs in found.values() for loc in locs}
                for study in studies:
                    n = len({loc["sop_instance_uid"] for locs in found.values() for loc in locs
                             if loc["study_instance_uid"] == study})
                    if verify.archived_study(await self.catalogue.study_archives(study), n):
                        archived.add(study)
        except CatalogueUnavailable as exc:
            return Outcome.retry(f"catalogue unavailable: {exc}")
        committed, failed = await asyncio.to_thread(
            verify.check, refs, found, self.store, self.cfg.policy, archived)
        event_type, info = sc.build_report(txn, committed, failed)
        failures = [{"sop_instance_uid": f.sop_instance_uid, "failure_reason": f.failure_reason,
                     "description": f.description} for f in failed]
        self.recent.update(txn, committed=len(committed), failed=failures)
        try:
            how = await self._deliver(job, calling, txn, event_type, info)
        except NoAddress as exc:  # asking again cannot help: FAILED now, with the reason
            metrics.REQUESTS.labels("scp", "report_failed").inc()
            self.recent.update(txn, state="report_failed", message=str(exc))
            return Outcome.failed_permanently(f"report to {calling} not delivered: {exc}",
                                              completed=len(committed), failed=len(failed))
        except DimseError as exc:
            metrics.REQUESTS.labels("scp", "report_failed").inc()
            self.recent.update(txn, state="report_failed", message=str(exc))
            return Outcome.retry(f"report to {calling} not delivered: {exc}",
                                 completed=len(committed), failed=len(failed))
        self.open.pop(txn, None)
        started = self.received.pop(txn, None)
        if started is not None:
            metrics.REPORT_LATENCY.labels("scp").observe(time.monotonic() - started)
        metrics.REQUESTS.labels("scp", "reported").inc()
        metrics.INSTANCES.labels("scp", "committed").inc(len(committed))
        metrics.INSTANCES.labels("scp", "failed").inc(len(failed))
        message = (f"reported to {calling} {how}: {len(committed)} committed, "
                   f"{len(failed)} failed (event type {event_type})")
        self.recent.update(txn, state="reported", message=message)
        log.info("storage commitment reported", extra={"transaction_uid": txn, "job": job.id,
                                                       "committed": len(committed),
                                                       "failed": len(failed)})
        return Outcome.done(message, completed=len(committed), failed=len(failed), result={
            "transaction_uid": txn, "event_type": str(event_type),
            "failed": ",".join(f"{f.sop_instance_uid}:0x{f.failure_reason:04X}" for f in failed)})

    async def _deliver(self, job: Job, calling: str, txn: str, event_type: int,
                       info) -> str:
        req = self.open.get(txn)
        if self.cfg.same_association and req is not None and req.assoc.is_established:
            # Our N-ACTION response must leave first (PS3.4: the report follows it).
            await asyncio.to_thread(req.answered.wait, self.cfg.dimse_timeout_s)
            try:
                await asyncio.to_thread(self.peers.send_report_on, req.assoc, event_type, info)
                return "on the requesting association"
            except DimseError as exc:
                log.info("requesting association unusable, opening a new one",
                         extra={"transaction_uid": txn, "error": str(exc)})
        self.open.pop(txn, None)
        await asyncio.to_thread(self.peers.send_report, self._reply_to(job, calling),
                                event_type, info)
        return "on a new association"

    def _reply_to(self, job: Job, calling: str) -> Peer:
        if job.params.get("received_by") == "gateway":  # the gateway's table decides
            host, port = job.params.get("reply_host", ""), int(job.params.get("reply_port", 0))
            if not host or not port:
                raise NoAddress(f"{calling} has no host/port in the gateway's modalities table "
                                "(accepted under accept_any_calling_ae?)")
            return Peer(calling, host, port)
        modality = self.cfg.modalities.get(calling)
        if modality is None:
            raise DimseError(f"{calling} is not in the modalities table (no host/port)")
        return Peer(calling, modality.host, modality.port)

    def on_failed(self, job: Job) -> None:
        txn = job.params.get("transaction_uid", "")
        self.open.pop(txn, None)
        self.received.pop(txn, None)
        self.recent.update(txn, state="failed", message=job.error)
