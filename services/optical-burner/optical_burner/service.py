"""The optical-burner service.

``run`` wires: the publisher; the volume store and the optical archive; the StudyStable
consumer (archive rule → pending studies); the sweep (write due studies, close aged
volumes, burn and verify closed ones); the HTTP API.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import uvicorn

from dicomvault.bus import ConsumerLoop, Publisher, ensure_topics
from dicomvault.lifecycle import HttpServer
from dicomvault.store import FileStore
from optical_burner.api import build_app
from optical_burner.archive import OpticalArchive, Topics
from optical_burner.catalogue import CatalogueClient
from optical_burner.events import publisher_emit
from optical_burner.handlers import Policies, sweep
from optical_burner.settings import OpticalSettings
from optical_burner.volumes import VolumeStore

log = logging.getLogger(__name__)


async def run_sweeps(arc: OpticalArchive, interval_s: float, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            await sweep(arc)
        except Exception:  # noqa: BLE001 - logged; the next pass tries again
            log.exception("optical sweep failed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval_s)


async def run(settings: OpticalSettings, stop: asyncio.Event) -> None:
    bus, oc = settings.bus, settings.optical
    await ensure_topics(bus)
    await ensure_topics(bus, [oc.volumes_topic])
    cache = FileStore(settings.cache.root, fsync=settings.cache.fsync)
    catalogue = CatalogueClient(oc.catalogue_url)
    store = VolumeStore(oc.volume_store)
    async with Publisher(bus, client_id=oc.client_id) as publisher:
        arc = OpticalArchive(oc, store, cache, catalogue, publisher_emit(publisher),
                             Topics(studies=bus.topics.studies, volumes=oc.volumes_topic))
        policies = Policies(arc)
        loop = ConsumerLoop(bus, group_id=f"{oc.client_id}.studies",
                            topics=[bus.topics.studies], handler=policies.studies,
                            dlq=publisher, client_id=oc.client_id)

        def ready() -> str | None:
            return None if loop.ready.is_set() else "consumer not assigned to partitions yet"

        server = HttpServer(uvicorn.Config(build_app(arc, ready, cache), host=settings.http.host,
                                       port=settings.http.port, log_config=None,
                                       access_log=False, lifespan="off"))
        tasks = [asyncio.create_task(loop.run(), name="consumer"),
                 asyncio.create_task(run_sweeps(arc, oc.sweep_s, stop), name="sweep"),
                 asyncio.create_task(server.serve(), name="http")]
        log.info("optical-burner started", extra={"archive": oc.archive_id,
                                                  "volume_store": str(oc.volume_store),
                                                  "port": settings.http.port})
        try:
            await stop.wait()
        finally:
            loop.stop()
            server.should_exit = True
            await asyncio.gather(*tasks, return_exceptions=True)
            await catalogue.close()
