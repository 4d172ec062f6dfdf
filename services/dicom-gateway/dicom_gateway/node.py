"""One DIMSE node: publisher, catalogue client, bridge and listener on the running loop.

The service process runs one node itself (``workers: 1``) or starts worker processes that run
one node each (``workers.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from dicom_gateway import metrics
from dicom_gateway.balance import Balancer
from dicom_gateway.commitment import CommitmentHandOff
from dicom_gateway.ingest import Ingest
from dicom_gateway.listener import Listener
from dicom_gateway.modalities import Modalities
from dicom_gateway.retrieve import Retriever
from dicom_gateway.settings import GatewaySettings
from dicomvault.audit import AuditTrail
from dicomvault.audit.refusals import StoreRefusals
from dicomvault.bus import Publisher
from dicomvault.dicom.bridge import Bridge
from dicomvault.query import CatalogueClient
from dicomvault.store import CacheStore, open_cache


def make_store(settings: GatewaySettings) -> CacheStore:
    """The cache tier: a file system (``backend: fs``) or S3-compatible storage (``s3``)."""
    return open_cache(settings.cache)


def audit_trail(settings: GatewaySettings, publisher: Publisher) -> AuditTrail:
    """The gateway's audit facts (queries, retrieves, refused associations and tokens)."""
    return AuditTrail(publisher, settings.bus.topics.audit, "dicom-gateway",
                      on_drop=metrics.AUDIT_DROPPED.inc)


@contextlib.asynccontextmanager
async def dimse_node(settings: GatewaySettings, publisher: Publisher,
                     catalogue: CatalogueClient, reuse_port: bool = False,
                     listener_fd: int | None = None, balancer: Balancer | None = None
                     ) -> AsyncIterator[Listener]:
    """Start the DIMSE listener bound to this loop; stop it on exit. A worker passes the
    service process's listening socket (``listener_fd``) and its ``balancer``."""
    cfg = settings.gateway
    bridge = Bridge(asyncio.get_running_loop(), timeout_s=cfg.catalogue_timeout_s + 5.0)
    audit = audit_trail(settings, publisher)
    await audit.start()
    refusals = StoreRefusals(audit)
    await refusals.start()
    ingest = Ingest(settings, make_store(settings), publisher, bridge, refusals)
    retriever = Retriever(settings, make_store(settings), publisher, catalogue, bridge,
                          Modalities(cfg))
    commitment = CommitmentHandOff(publisher, settings.bus.topics.studies, retriever.modalities,
                                   bridge, cfg.store_timeout_s)
    listener = Listener(cfg, ingest, catalogue, bridge, reuse_port=reuse_port,
                        retriever=retriever, audit=audit, listener_fd=listener_fd,
                        balancer=balancer, commitment=commitment)
    port = await asyncio.to_thread(listener.start)
    logging.getLogger(__name__).info(
        "DIMSE listening", extra={"ae_title": cfg.ae_title, "host": cfg.dimse_host, "port": port,
                                  "tls_port": cfg.tls_port})
    try:
        yield listener
    finally:
        # The loop keeps running while associations drain (their handlers need it).
        await asyncio.to_thread(listener.stop, cfg.drain_s)
        ingest.close()
        await refusals.stop()
        await audit.stop()
