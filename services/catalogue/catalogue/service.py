"""The catalogue service: migrate, consume every fact, emit StudyStable, serve the API.

``run`` wires: the database (Alembic ``upgrade head``, retried until the database answers),
then on the shared skeleton (``dicomvault.service.Service``) the publisher (StudyStable, job
commands, dead letters), the consumer loop of the instances, studies, jobs and job-commands
topics with ``Policy`` as handler (a whole fetch of up to ``batch_max_records`` per
transaction through ``Policy.batch``), the StudyStable emitter and the HTTP API.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from sqlalchemy.exc import SQLAlchemyError

from catalogue import metrics
from catalogue.api import build_app
from catalogue.commands import Commands
from catalogue.db import make_engine, migrate, sessions
from catalogue.policies import Policy, journal_size
from catalogue.settings import CatalogueSettings
from catalogue.stable import StableEmitter
from dicomvault.service import Service

log = logging.getLogger(__name__)


async def _prepare_database(settings: CatalogueSettings, engine, stop: asyncio.Event) -> bool:
    """Migrate (if asked) and read the journal size; retried until it works or stop."""
    while not stop.is_set():
        try:
            if settings.catalogue.migrate_on_start:
                await migrate(engine)
            async with sessions(engine)() as session:
                metrics.JOURNAL_ROWS.set(await journal_size(session))
            return True
        except (SQLAlchemyError, OSError) as exc:
            log.warning("catalogue database not available, will retry", extra={"error": repr(exc)})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=settings.catalogue.db_retry_s)
    return False


async def run(settings: CatalogueSettings, stop: asyncio.Event) -> None:
    bus, cs = settings.bus, settings.catalogue
    engine = make_engine(settings.database.resolved_url(), settings.database.echo)
    try:
        if not await _prepare_database(settings, engine, stop):
            return
        maker = sessions(engine)
        policy = Policy(maker)
        # Only a stop ends the catalogue; a part ending on its own is an error exit (non-zero).
        async with Service("catalogue", settings, stop, client_id=cs.client_id,
                           audit_dropped=metrics.AUDIT_DROPPED.inc,
                           fail_on_early_end=True) as service:
            loop = service.consume(
                cs.group_id, [bus.topics.instances, bus.topics.studies, bus.topics.jobs,
                              bus.topics.job_commands, bus.topics.volumes],
                policy, on_record=metrics.on_record,
                batch_handler=policy.batch if cs.batch_max_records > 1 else None,
                max_records=cs.batch_max_records, fetch_max_wait_ms=cs.fetch_max_wait_ms,
                fetch_min_bytes=cs.fetch_min_bytes,
                batch_linger_ms=cs.batch_linger_ms)
            service.spawn(StableEmitter(settings, maker, service.publisher).run(stop),
                          "stable-emitter")
            commands = Commands(service.publisher, bus.topics.job_commands)
            verifier = service.tokens("catalogue REST API (/api/v1 reads: read scope; queue "
                                      "and job commands: admin scope)")
            service.serve_http(build_app(maker, loop.ready.is_set, cs.find_max_limit, commands,
                                         verifier, problems=policy.health.problems))
            log.info("catalogue started", extra={"port": settings.http.port,
                                                 "group": cs.group_id})
            await service.until_stopped()
    finally:
        await engine.dispose()
        log.info("catalogue stopped")
