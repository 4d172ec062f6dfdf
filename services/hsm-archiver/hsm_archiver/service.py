"""The hsm-archiver service: archive queues (HSM and PACS Store and Remember), recall, eviction.

``run`` wires: the publisher; for every configured archive a STORE queue (``<id>``) and a
RETRIEVE queue (``<id>-retrieve``) of the jobs engine with the archive's readiness check;
their unfinished jobs adopted from the catalogue; consumers of the studies topic (StudyStable,
RecallRequested) and of the job-commands topic; the eviction sweep; the HTTP API.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from dicomvault.audit.activity import start_application, stop_application
from dicomvault.audit.http import AuthFailures
from dicomvault.auth import TokenVerifier
from dicomvault.bus import ConsumerLoop, Publisher, ensure_topics
from dicomvault.jobs import JobQueue, adopt_all, catalogue_lookup
from dicomvault.lifecycle import HttpServer
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
    await ensure_topics(bus)
    cache = open_cache(settings.cache)
    catalogue = CatalogueClient(hs.catalogue_url, client=settings.client)
    async with Publisher(bus, client_id=hs.client_id) as publisher:
        trail = await start_application(publisher, bus.topics.audit, OWNER,
                                        on_drop=metrics.AUDIT_DROPPED.inc)
        ctx = Context(bus.topics, publisher, cache, catalogue)
        hosted = build_archives(settings, ctx, publisher)
        queues = [q for h in hosted for q in (h.store, h.retrieve)]
        # Adopt before consuming, so a redelivered trigger finds its job already there.
        adoption = asyncio.create_task(adopt_all(queues, catalogue, hs.adopt_retry_s, stop))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(adoption), timeout=30)
        policies = Policies(hosted, catalogue, hs.recall_tier_order)
        loops = [
            ConsumerLoop(bus, group_id=f"{hs.client_id}.studies", topics=[bus.topics.studies],
                         handler=policies.studies, dlq=publisher, client_id=hs.client_id),
            ConsumerLoop(bus, group_id=f"{hs.client_id}.commands",
                         topics=[bus.topics.job_commands], handler=policies.commands,
                         dlq=publisher, client_id=hs.client_id),
        ]

        def ready() -> str | None:
            waiting = [lp for lp in loops if not lp.ready.is_set()]
            return "consumers not assigned to partitions yet" if waiting else None

        verifier = TokenVerifier(settings.auth)
        verifier.announce("hsm-archiver REST API (/api/v1 GET: read scope; other methods: "
                          "admin scope)")
        async def evict(study: str, requested_by: str, peer_address: str = ""):
            return await evict_study(ctx, hs.eviction, study, requested_by, peer_address)

        server = HttpServer.for_app(AuthFailures(build_app(hosted, ready, verifier, evict),
                                                 trail), settings.http)
        tasks = [asyncio.create_task(q.run(stop), name=f"queue-{q.name}") for q in queues]
        tasks += [asyncio.create_task(lp.run(), name="consumer") for lp in loops]
        tasks.append(asyncio.create_task(metrics.QUEUES.watch_depths(queues, stop), name="depths"))
        if hs.eviction.enabled:
            tasks.append(asyncio.create_task(run_evictions(ctx, hs.eviction, stop),
                                             name="eviction"))
        http = asyncio.create_task(server.serve(), name="http")
        log.info("hsm-archiver started", extra={"archives": [h.id for h in hosted],
                                                "port": settings.http.port})
        try:
            await stop.wait()
        finally:
            for lp in loops:
                lp.stop()
            server.should_exit = True
            adoption.cancel()
            await asyncio.gather(*tasks, http, adoption, return_exceptions=True)
            await catalogue.close()
            await stop_application(trail)
