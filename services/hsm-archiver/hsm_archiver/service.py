"""The hsm-archiver service: archive queues (HSM and PACS Store and Remember), recall, eviction.

``run`` wires, on the shared skeleton (``dicomvault.service.Service``: publisher, audit trail,
consumers, HTTP, stop order): for every configured archive a STORE queue (``<id>``) and a
RETRIEVE queue (``<id>-retrieve``) of the jobs engine with the archive's readiness check;
their unfinished jobs adopted from the catalogue; consumers of the studies topic (StudyStable,
RecallRequested) and of the job-commands topic; the eviction sweep; the HTTP API.
"""

from __future__ import annotations

import asyncio
import logging

from dicomvault.bus import Publisher
from dicomvault.jobs import JobQueue, adopt_all, catalogue_lookup
from dicomvault.service import Service
from dicomvault.store import open_cache
from hsm_archiver import metrics
from hsm_archiver.api import build_app
from hsm_archiver.context import CatalogueClient, Context
from hsm_archiver.eviction import run_evictions
from hsm_archiver.hsm import HsmArchive
from hsm_archiver.on_demand import evict_study
from hsm_archiver.pacs import PacsArchive
from hsm_archiver.policies import Hosted, Policies
from hsm_archiver.settings import ArchiverSettings

log = logging.getLogger(__name__)

OWNER = "hsm-archiver"


def build_archives(settings: ArchiverSettings, ctx: Context, publisher: Publisher) -> list[Hosted]:
    hosted = []
    for cfg in settings.hsm.archives:
        archive = HsmArchive(cfg, ctx) if cfg.kind == "hsm" else PacsArchive(cfg, ctx)

        def queue(name: str, kind: str, execute, cfg=cfg, archive=archive) -> JobQueue:
            return JobQueue(name=name, kind=kind, owner=OWNER, publisher=publisher,
                            topics=settings.bus.topics, execute=execute, retry=cfg.retry,
                            readiness=archive.readiness, concurrency=cfg.concurrency,
                            readiness_interval_s=cfg.readiness_interval_s,
                            observer=metrics.QUEUES.observer(name),
                            # a retried job this process no longer holds runs again
                            lookup=catalogue_lookup(ctx.catalogue, kind))

        hosted.append(Hosted(archive, queue(cfg.id, "STORE", archive.store),
                             queue(cfg.retrieve_queue, "RETRIEVE", archive.retrieve)))
    return hosted


async def run(settings: ArchiverSettings, stop: asyncio.Event) -> None:
    bus, hs = settings.bus, settings.hsm
    cache = open_cache(settings.cache)
    catalogue = CatalogueClient(hs.catalogue_url, client=settings.client)
    async with Service(OWNER, settings, stop, client_id=hs.client_id,
                       audit_dropped=metrics.AUDIT_DROPPED.inc) as service:
        service.on_close(catalogue.close)
        ctx = Context(bus.topics, service.publisher, cache, catalogue)
        hosted = build_archives(settings, ctx, service.publisher)
        queues = [q for h in hosted for q in (h.store, h.retrieve)]
        # Adopt before consuming, so a redelivered trigger finds its job already there.
        await service.first(adopt_all(queues, catalogue, hs.adopt_retry_s, stop), "adoption")
        policies = Policies(hosted, catalogue, hs.recall_tier_order)
        service.consume(f"{hs.client_id}.studies", [bus.topics.studies], policies.studies)
        service.consume(f"{hs.client_id}.commands", [bus.topics.job_commands],
                        policies.commands)
        verifier = service.tokens("hsm-archiver REST API (/api/v1 GET: read scope; other "
                                  "methods: admin scope)")

        async def evict(study: str, requested_by: str, peer_address: str = ""):
            return await evict_study(ctx, hs.eviction, study, requested_by, peer_address)

        service.serve_http(build_app(hosted, service.ready, verifier, evict))
        for q in queues:
            service.spawn(q.run(stop), f"queue-{q.name}")
        service.spawn(metrics.QUEUES.watch_depths(queues, stop), "depths")
        if hs.eviction.enabled:
            service.spawn(run_evictions(ctx, hs.eviction, stop), "eviction")
        log.info("hsm-archiver started", extra={"archives": [h.id for h in hosted],
                                                "port": settings.http.port})
        await service.until_stopped()
