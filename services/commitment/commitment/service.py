"""The commitment service: DIMSE listener, two job queues, the bus consumer and the REST API,
on the shared skeleton (``dicomvault.service.Service``: publisher, audit trail, consumer, HTTP,
stop order); the DIMSE listener starts before the consumer and stops after every task ended.

Consumes: CommitmentRequestReceived (studies topic: a modality asked on the gateway's DIMSE
port) → COMMIT_SCP jobs; CommitmentRequested (studies topic) → COMMIT_SCU jobs; JobCommandIssued
(job-commands topic) → the queues. Produces: job facts, StudyCommitted, StudyEvicted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from commitment import metrics
from commitment.api import build_app
from commitment.catalogue import CatalogueClient, CatalogueUnavailable
from commitment.listener import Listener
from commitment.peers import Peers
from commitment.recent import Recent
from commitment.scp import QUEUE as SCP_QUEUE
from commitment.scp import ScpJobs
from commitment.scu import QUEUE as SCU_QUEUE
from commitment.scu import SOURCE, ScuJobs
from commitment.settings import CommitmentSection, CommitmentSettings
from dicomvault.bus import PermanentError, Publisher, PublishError
from dicomvault.dicom.bridge import Bridge
from dicomvault.events import Event, deterministic_id
from dicomvault.events.v1 import commitment_pb2 as cpb
from dicomvault.events.v1 import jobs_pb2 as jb
from dicomvault.jobs import Job, JobQueue, adopt_from_catalogue, catalogue_lookup
from dicomvault.retry import backoff
from dicomvault.service import Service
from dicomvault.store import InvalidUID, open_cache, validate_uid

log = logging.getLogger(__name__)


class Commitment:
    """What the consumer and the API call (the DIMSE handlers call ``scp`` and ``scu``)."""

    def __init__(self, settings: CommitmentSettings, publisher: Publisher) -> None:
        self.settings = settings
        cfg = settings.commitment
        self.cfg = cfg
        self.pub = publisher
        self.store = open_cache(settings.cache)
        self.catalogue = CatalogueClient(cfg.catalogue_url, client=settings.client)
        self.recent = Recent(cfg.recent)
        peers = Peers(cfg)
        self.scp = ScpJobs(cfg, self.catalogue, self.store, self.recent, peers)
        self.scu = ScuJobs(cfg, self.catalogue, self.store, self.recent, publisher,
                           settings.bus.topics, peers)
        common = {"owner": "commitment", "publisher": publisher, "topics": settings.bus.topics,
                  "concurrency": cfg.concurrency, "observer": self._observe}
        self.scp.queue = JobQueue(name=SCP_QUEUE, kind="COMMIT_SCP", execute=self.scp.execute,
                                  retry=cfg.report_retry,
                                  lookup=catalogue_lookup(self.catalogue, "COMMIT_SCP"), **common)
        self.scu.queue = JobQueue(name=SCU_QUEUE, kind="COMMIT_SCU", execute=self.scu.execute,
                                  retry=cfg.request_retry,
                                  lookup=catalogue_lookup(self.catalogue, "COMMIT_SCU"), **common)
        self.queues = [self.scp.queue, self.scu.queue]
        self.adopted = False

    # --- bus side -------------------------------------------------------------------------
    async def policy(self, event: Event) -> None:
        payload = event.payload
        if isinstance(payload, cpb.CommitmentRequested):
            if not payload.instances or not payload.remote_ae:
                raise PermanentError("CommitmentRequested without instances or remote AE")
            await self.scu.requested(event)
        elif isinstance(payload, cpb.CommitmentRequestReceived):
            if not payload.instances or not payload.transaction_uid or not payload.calling_ae:
                raise PermanentError("CommitmentRequestReceived without instances, "
                                     "Transaction UID or calling AE")
            await self.scp.handed_over(payload)
        elif isinstance(payload, jb.JobCommandIssued):
            for queue in self.queues:
                if await queue.apply_command(payload):
                    break

    async def request(self, study_uid: str, remote_ae: str, pairs: list[tuple[str, str]],
                      delete_after_commit: bool | None, requested_by: str,
                      peer_address: str = "") -> dict:
        """POST /api/v1/commitments: publish CommitmentRequested; the consumer makes the job."""
        try:
            validate_uid(study_uid, "Study Instance UID")
            for cls, inst in pairs:
                validate_uid(cls, "SOP Class UID")
                validate_uid(inst, "SOP Instance UID")
        except InvalidUID as exc:
            raise ValueError(str(exc)) from exc
        if remote_ae not in self.cfg.modalities:
            raise ValueError(f"{remote_ae} is not in the modalities table")
        if not pairs:
            try:
                locations = await self.catalogue.study_locations(study_uid)
            except CatalogueUnavailable as exc:
                raise RuntimeError(str(exc)) from exc
            pairs = sorted({(loc["sop_class_uid"], loc["sop_instance_uid"]) for loc in locations})
            if not pairs:
                raise LookupError(f"the catalogue knows no instance of study {study_uid}")
        delete = self.cfg.delete_after_commit if delete_after_commit is None else delete_after_commit
        event = Event(payload=cpb.CommitmentRequested(
            study_instance_uid=study_uid, remote_ae=remote_ae, requested_by=f"api:{requested_by}",
            delete_after_commit=delete, peer_address=peer_address, instances=[
                cpb.SopReference(sop_class_uid=c, sop_instance_uid=i) for c, i in pairs]),
            source=SOURCE, subject=study_uid)
        try:
            await self.pub.publish(self.settings.bus.topics.studies, event, key=study_uid)
        except PublishError as exc:
            raise RuntimeError(str(exc)) from exc
        return {"event_id": event.id, "job_id": deterministic_id("job", SCU_QUEUE, event.id),
                "instances": len(pairs)}

    # --- jobs -----------------------------------------------------------------------------
    def _observe(self, what: str, job: Job | None) -> None:
        if job is None or what.startswith("duration:"):
            return
        metrics.JOBS.labels(job.queue, what).inc()
        for queue in self.queues:
            metrics.QUEUE_DEPTH.labels(queue.name).set(queue.depth())
        if what in ("failed", "cancelled"):
            if job.queue == SCP_QUEUE:
                self.scp.on_failed(job)
            else:
                self.scu.on_ended(job)
        elif what == "done" and job.queue == SCU_QUEUE:
            self.scu.on_ended(job)

    async def adopt(self, stop: asyncio.Event) -> None:
        """Take over unfinished jobs from the catalogue; retried until it answers."""
        for delay in backoff(1.0, 60.0):
            if stop.is_set():
                return
            try:
                for queue in self.queues:
                    await adopt_from_catalogue(queue, self.catalogue)
                self.adopted = True
                return
            except Exception as exc:  # noqa: BLE001 - httpx errors, catalogue not up yet
                log.warning("jobs not adopted yet", extra={"error": repr(exc)})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)

    def queue_summary(self) -> list[dict]:
        return [{"queue": q.name, "kind": q.kind, "state": q.state.value, "reason": q.reason,
                 "counts": q.counts()} for q in self.queues]



def warn_deprecated_table(cfg: CommitmentSection) -> None:
    """Our own modalities table for modalities' requests is deprecated (one release)."""
    requesters = sorted(ae for ae, m in cfg.modalities.items()
                        if m.permissions.may_request_commitment)
    if requesters:
        log.warning(
            "DEPRECATED: DICOMVAULT_COMMITMENT__MODALITIES lets modalities request storage "
            "commitment on this service's own port; send them to the gateway's DIMSE port "
            "(one AE, one port) and give them may_request_commitment in "
            "DICOMVAULT_GATEWAY__MODALITIES. This table keeps working for one release "
            "(docs/commitment.md, migration).", extra={"calling_aes": requesters,
                                                        "port": cfg.dimse_port})


async def run(settings: CommitmentSettings, stop: asyncio.Event) -> None:
    cfg, topics = settings.commitment, settings.bus.topics
    # Until stopped; a part that ends on its own (the HTTP port taken, …) ends the service.
    async with Service("commitment", settings, stop, client_id="commitment",
                       audit_dropped=metrics.AUDIT_DROPPED.inc,
                       fail_on_early_end=True) as service:
        commitment = Commitment(settings, service.publisher)
        service.on_close(commitment.catalogue.close)
        bridge = Bridge(asyncio.get_running_loop(), cfg.dimse_timeout_s)
        listener = Listener(cfg, bridge, requests=commitment.scp, reports=commitment.scu)
        warn_deprecated_table(cfg)
        port = await asyncio.to_thread(listener.start)
        # Stopped once every task has ended, before the catalogue client closes.
        service.on_close(lambda: asyncio.to_thread(listener.stop))
        log.info("DIMSE listener started", extra={"ae_title": cfg.ae_title, "port": port})
        service.consume("commitment", [topics.studies, topics.job_commands], commitment.policy)

        def not_ready() -> str:
            if listener.server is None:
                return "DIMSE listener not started"
            if service.waiting():
                return "bus consumer not assigned (broker unreachable?)"
            return ""

        verifier = service.tokens("commitment REST API (/api/v1 GET: read scope; POST "
                                  "/api/v1/commitments: admin scope)")
        service.serve_http(build_app(commitment, not_ready, verifier))
        for queue in commitment.queues:
            service.spawn(queue.run(stop), f"queue-{queue.name}")
        # Adoption runs beside the consumer (not before it, as in the archivers): retried
        # until the catalogue answers, cancelled at the stop.
        await service.first(commitment.adopt(stop), "adopt", within_s=0)
        await service.until_stopped()
