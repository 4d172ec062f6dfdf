"""The optical-burner service.

``run`` wires, on the shared skeleton (``dicomvault.service.Service``: publisher, audit trail,
consumers, HTTP, stop order): the volume store and the optical archive; its STORE queue
(``<archive id>``) and RETRIEVE queue (``<archive id>-retrieve``) on the jobs engine, their
unfinished jobs adopted from the catalogue (and studies an earlier version left in
``pending.json`` turned into STORE jobs); consumers of the studies topic (StudyStable,
RecallRequested) and of the job-commands topic (a RETRIEVE job cancelled or failed for good
withdraws its media requests); the volume sweep (wake retrieves whose disc
was mounted, withdraw the catalogue's media requests no job waits for any more, close aged
volumes, burn and verify closed ones); the HTTP API.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime

from dicomvault.bus import Publisher
from dicomvault.jobs import JobQueue, adopt_all, catalogue_lookup
from dicomvault.service import Service
from dicomvault.store import CacheStore, open_cache
from optical_burner import metrics
from optical_burner.api import build_app
from optical_burner.archive import OpticalArchive, Topics
from optical_burner.burning import sweep_volumes
from optical_burner.catalogue import CatalogueClient
from optical_burner.events import publisher_emit
from optical_burner.jobs import Executors, MediaWithdrawals, wake_for_mounted_media
from optical_burner.policies import Policies
from optical_burner.queues import Queues
from optical_burner.settings import OpticalSettings
from optical_burner.stale_requests import StaleRequests
from optical_burner.volumes import VolumeStore

log = logging.getLogger(__name__)

OWNER = "optical-burner"


def build_queues(settings: OpticalSettings, arc: OpticalArchive, cache: CacheStore,
                 publisher: Publisher, withdrawals: MediaWithdrawals | None = None) -> Queues:
    """The STORE and RETRIEVE queues; ``withdrawals`` (if given) observes the RETRIEVE queue:
    a job that ends CANCELLED or FAILED leaves its media requests."""
    oc = settings.optical
    run = Executors(arc, cache)

    def queue(name: str, kind: str, execute, readiness=None, also=None) -> JobQueue:
        count = metrics.QUEUES.observer(name)

        def observe(what: str, job) -> None:
            count(what, job)
            if also is not None:
                also(what, job)

        return JobQueue(name=name, kind=kind, owner=OWNER, publisher=publisher,
                        topics=settings.bus.topics, execute=execute, retry=oc.retry,
                        readiness=readiness, waiting_recheck_s=oc.media_recheck_s,
                        observer=observe)

    retrieve = queue(oc.retrieve_queue, "RETRIEVE", run.retrieve, also=withdrawals)
    if withdrawals is not None:
        withdrawals.queue = retrieve
    return Queues(queue(oc.store_queue, "STORE", run.store, arc.readiness), retrieve)


async def migrate_pending(store: VolumeStore, queue: JobQueue, archive_id: str) -> int:
    """Studies an earlier version queued in ``pending.json`` become STORE jobs (same dedupe
    key: the StudyStable event's id), then the file goes."""
    pending = store.take_pending()
    for uid, entry in sorted(pending.items()):
        due = datetime.fromisoformat(entry["due"]) if entry.get("due") else None
        await queue.submit(uid, target=archive_id, dedupe_key=entry["event_id"],
                           params={"revision": str(entry.get("revision", 0)),
                                   "rule": entry.get("rule", "")},
                           not_before=due, created_by=f"rule:{entry.get('rule', '')}")
    store.drop_pending()
    if pending:
        log.info("pending studies moved to STORE jobs", extra={"studies": len(pending)})
    return len(pending)


async def run_sweeps(arc: OpticalArchive, queues: Queues, interval_s: float,
                     stop: asyncio.Event, stale: StaleRequests | None = None) -> None:
    while not stop.is_set():
        try:
            await wake_for_mounted_media(arc, queues.retrieve)
            if stale is not None:
                await stale.sweep()
            await sweep_volumes(arc)
        except Exception:  # noqa: BLE001 - logged; the next pass tries again
            log.exception("optical sweep failed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval_s)


async def run(settings: OpticalSettings, stop: asyncio.Event) -> None:
    bus, oc = settings.bus, settings.optical
    cache = open_cache(settings.cache)
    catalogue = CatalogueClient(oc.catalogue_url, client=settings.client)
    store = VolumeStore(oc.volume_store)
    async with Service(OWNER, settings, stop, client_id=oc.client_id,
                       audit_dropped=metrics.AUDIT_DROPPED.inc) as service:
        service.on_close(catalogue.close)
        arc = OpticalArchive(oc, store, cache, catalogue, publisher_emit(service.publisher),
                             Topics(studies=bus.topics.studies, volumes=bus.topics.volumes,
                                    instances=bus.topics.instances))
        withdrawals = MediaWithdrawals(arc)
        service.on_close(withdrawals.drain)  # after the queues ended, before the catalogue
        queues = build_queues(settings, arc, cache, service.publisher, withdrawals)
        for q in queues:  # a retried job this process no longer holds runs again
            q.lookup = catalogue_lookup(catalogue, q.kind)
        # Adopt before consuming, so a redelivered trigger finds its job already there.
        adoption = await service.first(
            adopt_all(list(queues), catalogue, oc.adopt_retry_s, stop), "adoption")
        await migrate_pending(store, queues.store, oc.archive_id)
        stale = StaleRequests(arc, queues.retrieve, catalogue, adopted=lambda: (
            adoption.done() and not adoption.cancelled() and adoption.exception() is None),
            grace_s=oc.stale_request_grace_s)
        policies = Policies(arc, queues, oc.recall_tier_order)
        service.consume(f"{oc.client_id}.studies", [bus.topics.studies], policies.studies)
        service.consume(f"{oc.client_id}.commands", [bus.topics.job_commands],
                        policies.commands)
        verifier = service.tokens("optical-burner REST API (/api/v1 GET: read scope; close, "
                                  "burn, release, delete volume and retrieve: admin scope)")
        service.serve_http(build_app(arc, service.ready, cache, verifier, queues))
        for q in queues:
            service.spawn(q.run(stop), f"queue-{q.name}")
        service.spawn(run_sweeps(arc, queues, oc.sweep_s, stop, stale), "sweep")
        service.spawn(metrics.QUEUES.watch_depths(queues, stop), "depths")
        log.info("optical-burner started", extra={"archive": oc.archive_id,
                                                  "volume_store": str(oc.volume_store),
                                                  "queues": [q.name for q in queues],
                                                  "port": settings.http.port})
        await service.until_stopped()
