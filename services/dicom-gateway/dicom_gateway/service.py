"""The gateway service: DIMSE (in-process or N workers), reconciliation sweep, HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging

from aiokafka.admin import AIOKafkaAdminClient
from prometheus_client import CollectorRegistry, generate_latest

from dicom_gateway import metrics
from dicom_gateway.api import build_app, dicomweb, http_settings
from dicom_gateway.balance import LoadTable, listening_socket
from dicom_gateway.metrics import REGISTRY
from dicom_gateway.node import audit_trail, dimse_node, make_store
from dicom_gateway.reconcile import Reconciler
from dicom_gateway.settings import GatewaySettings
from dicom_gateway.workers import AggregateCollector, Worker, wait_ready
from dicomvault.audit import Action
from dicomvault.bus import Publisher
from dicomvault.lifecycle import HttpServer
from dicomvault.query import CatalogueClient

log = logging.getLogger(__name__)


class Gateway:
    """What the HTTP app asks: readiness and metrics."""

    def __init__(self, settings: GatewaySettings, catalogue: CatalogueClient) -> None:
        self.settings = settings
        self.catalogue = catalogue
        self.dimse_port = 0
        self.workers: list[Worker] = []
        self.registry = REGISTRY
        self.draining = False  # set on SIGTERM: /readyz fails while work in flight finishes

    async def metrics_text(self) -> bytes:
        return await asyncio.to_thread(generate_latest, self.registry)

    async def broker_reason(self) -> str:
        bus = self.settings.bus
        admin = AIOKafkaAdminClient(bootstrap_servers=bus.bootstrap_servers,
                                    request_timeout_ms=3000)
        try:
            await asyncio.wait_for(admin.start(), 3.0)
            topics = set(await asyncio.wait_for(admin.list_topics(), 3.0))
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready"
            return f"broker unreachable: {exc!r}"
        finally:
            with contextlib.suppress(Exception):
                await admin.close()
        if bus.topics.instances not in topics:
            return f"topic {bus.topics.instances} missing"
        return ""

    async def not_ready(self) -> list[str]:
        if self.draining:
            return ["draining: stopping after the associations and uploads in flight"]
        reasons = [r for r in await asyncio.gather(self.broker_reason(), self.catalogue.ready())
                   if r]
        if not self.dimse_port:
            reasons.append("DIMSE listener not started")
        dead = [w.index for w in self.workers if not w.alive()]
        if dead:
            reasons.append(f"DIMSE workers down: {dead}")
        starting = [w.index for w in self.workers if w.alive() and not w.ready.is_set()]
        if starting:
            reasons.append(f"DIMSE workers starting: {starting}")
        return reasons


async def _supervise(workers: list[Worker], stop: asyncio.Event) -> None:
    """Restart a worker process that died (not while stopping)."""
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)
        for w in workers:
            if not stop.is_set() and not w.alive():
                log.error("DIMSE worker died; restarting", extra={"worker": w.index})
                await asyncio.to_thread(w.stop)
                await asyncio.to_thread(w.start)


async def run(settings: GatewaySettings, stop: asyncio.Event) -> None:
    cfg = settings.gateway
    if cfg.accept_any_calling_ae:
        log.warning("ACCEPTING ANY CALLING AE TITLE: every host that reaches the DIMSE port can "
                    "store, query and request storage commitment. Set "
                    "DICOMVAULT_GATEWAY__ALLOWED_CALLING_AES and "
                    "DICOMVAULT_GATEWAY__ACCEPT_ANY_CALLING_AE=false in production.")
    elif not cfg.allowed_calling_aes:
        log.error("no calling AE title is allowed: every association will be rejected "
                  "(set DICOMVAULT_GATEWAY__ALLOWED_CALLING_AES)")
    make_store(settings)  # create the cache root (and fail early when it cannot be)
    catalogue = CatalogueClient(cfg.catalogue_url, cfg.catalogue_timeout_s, client=settings.client)
    gateway = Gateway(settings, catalogue)
    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(catalogue.close)
        publisher = await stack.enter_async_context(Publisher(settings.bus, cfg.client_id))
        audit = audit_trail(settings, publisher)
        await audit.start()
        stack.push_async_callback(audit.stop)
        audit.record(Action.APPLICATION_START, user_id=cfg.ae_title, called_ae=cfg.ae_title,
                     service="dicom-gateway")
        node = None
        if cfg.workers == 1:
            node = await stack.enter_async_context(dimse_node(settings, publisher, catalogue))
            gateway.dimse_port = node.port
        else:
            listener = listening_socket(cfg.dimse_host, cfg.dimse_port)
            stack.callback(listener.close)
            table = LoadTable.create(cfg.workers)
            stack.callback(table.close)
            port = listener.getsockname()[1]
            worker_settings = settings.model_copy(
                update={"gateway": cfg.model_copy(update={"dimse_port": port})})
            gateway.workers = [Worker(i, worker_settings, listener, table)
                               for i in range(cfg.workers)]
            for i in range(cfg.workers):
                metrics.WORKER_ASSOCIATIONS.labels(str(i)).set_function(
                    functools.partial(table.associations, i))
            stack.callback(metrics.WORKER_ASSOCIATIONS.clear)  # before the table closes
            for w in gateway.workers:
                stack.callback(w.stop, cfg.drain_s + 10.0)
                w.start()
            await asyncio.to_thread(wait_ready, gateway.workers, 60.0)
            registry = CollectorRegistry(auto_describe=True)
            registry.register(AggregateCollector(gateway.workers))
            gateway.registry = registry
            gateway.dimse_port = port
            log.info("DIMSE workers listening", extra={"workers": cfg.workers, "port": port})
        reconciler = Reconciler(settings, make_store(settings), publisher, catalogue)
        web = dicomweb(settings, publisher, catalogue, audit)
        # h11 refuses a request head that arrives in pieces past its buffer limit (16 KiB by
        # default) with a bare 400 and a reset; the limits middleware (414/431 with a reason)
        # must see every head up to well past its own limits, whatever the segmentation.
        head_room = 4 * (settings.dicomweb.max_url_bytes + settings.dicomweb.max_header_bytes)
        server = HttpServer.for_app(build_app(gateway, web), http_settings(settings),
                                    timeout_graceful_shutdown=max(1, int(cfg.drain_s)),
                                    h11_max_incomplete_event_size=head_room)
        tasks = [asyncio.create_task(reconciler.run(stop), name="reconcile"),
                 asyncio.create_task(server.serve(), name="http")]
        if gateway.workers:
            tasks.append(asyncio.create_task(_supervise(gateway.workers, stop), name="workers"))
        waiter = asyncio.create_task(stop.wait())
        try:
            done, _ = await asyncio.wait([waiter, *tasks], return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task is not waiter and task.exception() is not None:
                    raise task.exception()
        finally:
            # Drain: readiness fails, every listener closes, and what is in flight (HTTP
            # uploads, DIMSE associations here or in the workers) finishes side by side,
            # each within drain_s; the publisher stays open until all of it is done.
            stop.set()
            gateway.draining = True
            log.info("draining", extra={"drain_s": cfg.drain_s})
            server.should_exit = True
            drains = [asyncio.to_thread(w.stop, cfg.drain_s + 10.0) for w in gateway.workers]
            if node is not None:
                drains.append(asyncio.to_thread(node.stop, cfg.drain_s))
            await asyncio.gather(*tasks, *drains, return_exceptions=True)
            waiter.cancel()
            audit.record(Action.APPLICATION_STOP, user_id=cfg.ae_title, called_ae=cfg.ae_title,
                         service="dicom-gateway")
