"""The stow-exporter service: one queue, sender and consumer per Exporter resource.

``DICOMVAULT_EXPORTER__SPEC_FILE`` holds one Exporter (the operator runs one Deployment per
Exporter) or a list of them (embedded mode): every exporter gets the same wiring, its own
consumer group ``dicomvault-exporter-<exporterID>`` on the studies topic, its own queue and
sender, and they share the publisher, the catalogue client, the cache store and the HTTP API.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from dicomvault.bus import Publisher
from dicomvault.jobs import JobQueue, catalogue_lookup
from dicomvault.jobs import adopt_all as adopt_jobs
from dicomvault.service import Service
from dicomvault.store import open_cache
from stow_exporter import metrics
from stow_exporter.api import build_app
from stow_exporter.catalogue import CatalogueClient
from stow_exporter.dimse import CStoreSender
from stow_exporter.policies import Commands, Hosted, Policy, Sender
from stow_exporter.queue import KIND, ExportQueue
from stow_exporter.schedule import Clock, local_now
from stow_exporter.settings import ExporterSettings
from stow_exporter.spec import Exporter, SpecError, load_exporters
from stow_exporter.stowrs import StowRsSender

log = logging.getLogger(__name__)


def group_id(exporter: Exporter) -> str:
    return exporter.consumer_group  # dicomvault-exporter-<exporterID>


def _host_key(hosted: list[Hosted]) -> str:
    """Every exporter process reads every job command (its own consumer group)."""
    return "-".join(sorted(h.id for h in hosted)) or "none"


async def adopt_all(hosted: list[Hosted], catalogue: CatalogueClient, retry_s: float,
                    stop: asyncio.Event) -> None:
    """Take over unfinished jobs after a restart (the shared ``dicomvault.jobs.adopt_all``,
    retried until the catalogue answers); each exporter then builds its views of them."""
    owners = {id(h.queue.jobs): h for h in hosted if h.queue is not None}

    def views(queue: JobQueue, _n: int) -> None:
        h = owners[id(queue)]
        n = h.queue.adopted()
        if n:
            log.info("exports adopted", extra={"exporter": h.id, "jobs": n})

    await adopt_jobs([h.queue.jobs for h in owners.values()], catalogue, retry_s, stop,
                     adopted=views)


async def close_senders(hosted: list[Hosted]) -> None:
    """Close every exporter's sender (its HTTP client or association); a failure to close one
    does not keep the others open."""
    for h in hosted:
        with contextlib.suppress(Exception):
            await h.sender.close()


def make_sender(exporter: Exporter, settings: ExporterSettings) -> Sender:
    es = settings.exporter
    if exporter.scheme == "stowrs":
        return StowRsSender(exporter, es.secrets_dir, timeout_s=es.request_timeout_s,
                            ca_file=es.ca_file)
    address = es.modalities.get(exporter.target)
    if address is None:
        raise SpecError(f"{exporter.exporter_id}: AE title {exporter.target!r} is not in "
                        "DICOMVAULT_EXPORTER__MODALITIES")
    return CStoreSender(exporter.exporter_id, exporter.target, address,
                        exporter.ae_title or es.calling_ae_title, timeout_s=es.request_timeout_s)


def build_hosted(settings: ExporterSettings, exporters: list[Exporter],
                 publisher: Publisher, catalogue: CatalogueClient,
                 clock: Clock) -> list[Hosted]:
    """Exporters with their queues on the jobs engine (job facts always go to ``publisher``;
    StudyExported / ExportFailed only with ``publish_events``)."""
    es = settings.exporter
    cache = open_cache(settings.cache)
    hosted = []
    for exp in exporters:
        h = Hosted(exp, make_sender(exp, settings), catalogue, cache,
                   publisher if es.publish_events else None, settings.bus.topics, clock=clock,
                   requests=publisher)
        h.queue = ExportQueue(exp, h.run_export, publisher=publisher, topics=settings.bus.topics,
                              clock=clock, tick_s=es.tick_s, history=es.history,
                              schedule_recheck_s=es.schedule_recheck_s)
        # A retry of an export this process no longer holds (finished before a restart, or
        # beyond ``history``) is fetched from the catalogue and runs again.
        h.queue.jobs.lookup = catalogue_lookup(catalogue, KIND, exp.exporter_id)
        hosted.append(h)
    return hosted


async def run(settings: ExporterSettings, stop: asyncio.Event, *,
              clock: Clock = local_now, exporters: list[Exporter] | None = None) -> None:
    bus, es = settings.bus, settings.exporter
    exporters = exporters if exporters is not None else load_exporters(es.spec_file)
    catalogue = CatalogueClient(es.catalogue_url, es.catalogue_timeout_s, client=settings.client)
    async with Service("stow-exporter", settings, stop, client_id=es.client_id,
                       audit_dropped=metrics.AUDIT_DROPPED.inc) as service:
        service.on_close(catalogue.close)
        hosted = build_hosted(settings, exporters, service.publisher, catalogue, clock)
        service.on_close(lambda: close_senders(hosted))
        # Adopt unfinished jobs before consuming, so a redelivered trigger finds its job.
        await service.first(adopt_all(hosted, catalogue, es.adopt_retry_s, stop), "adoption")

        def on_record(type_: str, outcome: str) -> None:
            if outcome != "applied":
                metrics.CONSUMED.labels(type_, outcome).inc()

        for h in hosted:
            service.consume(group_id(h.exporter), [bus.topics.studies], Policy(h),
                            client_id=f"{es.client_id}-{h.id}", name=h.id, on_record=on_record)
        service.consume(f"{es.client_id}.commands.{_host_key(hosted)}",
                        [bus.topics.job_commands], Commands(hosted),
                        client_id=f"{es.client_id}-commands", name="job-commands")

        def ready() -> str | None:
            waiting = service.waiting()
            return f"consumers not assigned yet: {', '.join(waiting)}" if waiting else None

        verifier = service.tokens("stow-exporter REST API (/api/v1 GET: read scope; POST "
                                  "/api/v1/exports: admin scope)")
        service.serve_http(build_app(hosted, ready, verifier))
        for h in hosted:
            if h.queue is not None:
                service.spawn(h.queue.run(stop), f"queue-{h.id}")
        log.info("stow-exporter started", extra={
            "exporters": [h.id for h in hosted], "port": settings.http.port})
        await service.until_stopped()
