"""The audit service: consume the facts, keep audit messages, send them as syslog, serve them.

``run`` wires: the store (table created if missing, retried until the database answers), then
on the shared skeleton (``dicomvault.service.Service``) a consumer loop in batch mode over the
instances, studies, volumes, audit and job-commands topics with ``Policy.batch`` (one
transaction per fetch; offsets committed after it), the delivery loop to the syslog receiver,
and the HTTP API (its own 401/403 are facts on the audit topic, like every service's). Its
own start and stop are Application Activity messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from datetime import UTC, datetime

from audit import metrics
from audit.api import build_app
from audit.delivery import Delivery
from audit.policies import Policy
from audit.record import Record, iso
from audit.settings import AuditSettings
from audit.store import Store, create, make_engine
from audit.syslog import SyslogSender
from dicomvault.service import Service

log = logging.getLogger(__name__)


def activity(event_type: str, cfg_source: str) -> Record:
    """Application Activity (start or stop) of this service."""
    return Record("application-activity", "E", 0, iso(datetime.now(UTC)),
                  user_id=cfg_source, event_type=event_type, application="audit")


async def _prepare(store: Store, stop: asyncio.Event) -> bool:
    while not stop.is_set():
        try:
            await create(store.engine)
            return True
        except Exception as exc:  # noqa: BLE001 - retried until the database answers
            log.warning("audit database not available, will retry", extra={"error": repr(exc)})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=2.0)
    return False


async def run(settings: AuditSettings, stop: asyncio.Event) -> None:
    bus, cfg = settings.bus, settings.audit
    hostname = cfg.hostname or socket.gethostname()
    engine = make_engine(settings.database.resolved_url())
    store = Store(engine, cfg.aggregate_s, cfg.aggregate_max_s)
    sender = (SyslogSender(cfg.syslog_url, cfg.ca_file, cfg.cert_file, cfg.key_file)
              if cfg.syslog_url else None)
    if sender is None:
        log.warning("no DICOMVAULT_AUDIT__SYSLOG_URL: audit messages are kept and served by "
                    "/api/v1/audit, but sent to no audit record repository")
    try:
        if not await _prepare(store, stop):
            return
        async with engine.begin() as conn:
            await store.keep(conn, activity("start", cfg.source_id))
        policy = Policy(store, cfg.source_id)
        delivery = Delivery(store, sender, cfg, hostname)

        async def batch(events):
            await policy.batch(events)
            delivery.wake.set()

        async def stopping() -> None:
            """The stop message is kept; it goes out with the next start if not now."""
            try:
                async with engine.begin() as conn:
                    await store.keep(conn, activity("stop", cfg.source_id))
            except Exception as exc:  # noqa: BLE001 - stopping anyway
                log.warning("application stop not recorded", extra={"error": repr(exc)})
            if sender is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(
                        Delivery(store, sender, cfg, hostname).flush(), timeout=3)
                await sender.close()

        # Its own start and stop are kept in its store, not published: the trail only
        # carries its API's 401/403. Only a stop ends it; a part ending on its own is an error.
        async with Service("audit", settings, stop, client_id=cfg.client_id,
                           application_activity=False, audit_flush_s=1.0,
                           fail_on_early_end=True) as service:
            service.on_close(stopping)
            loop = service.consume(cfg.group_id,
                                   [bus.topics.instances, bus.topics.studies,
                                    bus.topics.volumes, bus.topics.audit,
                                    bus.topics.job_commands],
                                   policy, on_record=metrics.on_record, batch_handler=batch,
                                   # the broker gathers up to 64 KiB or 200 ms per fetch:
                                   # not one fetch per instance under ingest (docs/scaling.md)
                                   max_records=1000, fetch_max_wait_ms=200,
                                   fetch_min_bytes=64 * 1024)
            verifier = service.tokens("audit REST API (/api/v1: admin scope)")
            ready = lambda: None if loop.ready.is_set() else "consumer not assigned yet"  # noqa: E731
            service.serve_http(build_app(store, cfg, hostname, ready, verifier))
            if sender is not None:  # without a receiver the messages are only kept
                service.spawn(delivery.run(stop), "delivery")
            log.info("audit started", extra={"port": settings.http.port,
                                             "syslog": sender.where if sender else ""})
            await service.until_stopped()
    finally:
        await engine.dispose()
        log.info("audit stopped")
