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

import uvicorn

from dicomvault.bus import ConsumerLoop, Publisher, ensure_topics
from dicomvault.store import FileStore
from stow_exporter import metrics
from stow_exporter.api import Server, build_app
from stow_exporter.catalogue import CatalogueClient
from stow_exporter.dimse import CStoreSender
from stow_exporter.handlers import Hosted, Policy, Sender
from stow_exporter.queue import ExportQueue
from stow_exporter.schedule import Clock, local_now
from stow_exporter.settings import ExporterSettings
from stow_exporter.spec import Exporter, SpecError, load_exporters
from stow_exporter.stowrs import StowRsSender

log = logging.getLogger(__name__)


def group_id(exporter: Exporter) -> str:
    return exporter.consumer_group  # dicomvault-exporter-<exporterID>


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
                 publisher: Publisher | None, catalogue: CatalogueClient,
                 clock: Clock) -> list[Hosted]:
    cache = FileStore(settings.cache.root, fsync=settings.cache.fsync)
    hosted = []
    for exp in exporters:
        h = Hosted(exp, make_sender(exp, settings), catalogue, cache, publisher,
                   settings.bus.topics, clock=clock)
        h.queue = ExportQueue(exp, h.run_export, clock=clock, tick_s=settings.exporter.tick_s,
                              history=settings.exporter.history)
        hosted.append(h)
    return hosted


async def run(settings: ExporterSettings, stop: asyncio.Event, *,
              clock: Clock = local_now, exporters: list[Exporter] | None = None) -> None:
    bus, es = settings.bus, settings.exporter
    exporters = exporters if exporters is not None else load_exporters(es.spec_file)
    await ensure_topics(bus)
    catalogue = CatalogueClient(es.catalogue_url, es.catalogue_timeout_s)
    async with Publisher(bus, client_id=es.client_id) as publisher:
        hosted = build_hosted(settings, exporters,
                              publisher if es.publish_events else None, catalogue, clock)

        def on_record(type_: str, outcome: str) -> None:
            if outcome != "applied":
                metrics.CONSUMED.labels(type_, outcome).inc()

        loops = [ConsumerLoop(bus, group_id=group_id(h.exporter), topics=[bus.topics.studies],
                              handler=Policy(h), dlq=publisher,
                              client_id=f"{es.client_id}-{h.id}", on_record=on_record)
                 for h in hosted]

        def ready() -> str | None:
            waiting = [h.id for h, lp in zip(hosted, loops, strict=True) if not lp.ready.is_set()]
            return f"consumers not assigned yet: {', '.join(waiting)}" if waiting else None

        server = Server(uvicorn.Config(build_app(hosted, ready), host=settings.http.host,
                                       port=settings.http.port, log_config=None,
                                       access_log=False, lifespan="off"))
        tasks = [asyncio.create_task(h.queue.run(stop), name=f"queue-{h.id}")
                 for h in hosted if h.queue is not None]
        tasks += [asyncio.create_task(lp.run(), name=f"consumer-{h.id}")
                  for h, lp in zip(hosted, loops, strict=True)]
        http = asyncio.create_task(server.serve(), name="http")
        log.info("stow-exporter started", extra={
            "exporters": [h.id for h in hosted], "port": settings.http.port})
        try:
            await stop.wait()
        finally:
            for lp in loops:
                lp.stop()
            server.should_exit = True
            await asyncio.gather(*tasks, http, return_exceptions=True)
            for h in hosted:
                with contextlib.suppress(Exception):
                    await h.sender.close()
            await catalogue.close()
