"""The catalogue service: migrate, consume every fact, emit StudyStable, serve the API.

``run`` wires: the database (Alembic ``upgrade head``, retried until the database answers),
the publisher (StudyStable, job commands, dead letters), the consumer loop of the instances,
studies, jobs and job-commands topics with ``Policy`` as handler (a whole fetch of up to
``batch_max_records`` per transaction through ``Policy.batch``), the StudyStable emitter and
the HTTP API.
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
from dicomvault.audit.activity import start_application, stop_application
from dicomvault.audit.http import AuthFailures
from dicomvault.auth import TokenVerifier
from dicomvault.bus import ConsumerLoop, Publisher, ensure_topics
from dicomvault.lifecycle import HttpServer, ServiceFailed

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
    failed = ""
    try:
        if not await _prepare_database(settings, engine, stop):
            return
        await ensure_topics(bus)
        maker = sessions(engine)
        policy = Policy(maker)
        async with Publisher(bus, client_id=cs.client_id) as publisher:
            trail = await start_application(publisher, bus.topics.audit, "catalogue",
                                            on_drop=metrics.AUDIT_DROPPED.inc)
            loop = ConsumerLoop(bus, group_id=cs.group_id,
                                topics=[bus.topics.instances, bus.topics.studies,
                                        bus.topics.jobs, bus.topics.job_commands,
                                        bus.topics.volumes],
                                handler=policy, dlq=publisher, client_id=cs.client_id,
                                on_record=metrics.on_record,
                                batch_handler=policy.batch if cs.batch_max_records > 1 else None,
                                max_records=cs.batch_max_records,
                                fetch_max_wait_ms=cs.fetch_max_wait_ms,
                                batch_linger_ms=cs.batch_linger_ms)
            emitter = StableEmitter(settings, maker, publisher)
            commands = Commands(publisher, bus.topics.job_commands)
            verifier = TokenVerifier(settings.auth)
            verifier.announce("catalogue REST API (/api/v1 reads: read scope; queue and job "
                              "commands: admin scope)")
            app = build_app(maker, loop.ready.is_set, cs.find_max_limit, commands, verifier,
                            problems=policy.health.problems)
            server = HttpServer.for_app(AuthFailures(app, trail), settings.http)
            tasks = [asyncio.create_task(loop.run(), name="consumer"),
                     asyncio.create_task(emitter.run(stop), name="stable-emitter"),
                     asyncio.create_task(server.serve(), name="http")]
            log.info("catalogue started", extra={"port": settings.http.port,
                                                 "group": cs.group_id})
            try:
                done, _ = await asyncio.wait(
                    [asyncio.create_task(stop.wait(), name="stop"), *tasks],
                    return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    if task.get_name() == "stop":
                        continue
                    if task.cancelled() or task.exception() is None:
                        failed = f"catalogue task {task.get_name()} ended early"
                    else:
                        failed = (f"catalogue task {task.get_name()} failed: "
                                  f"{task.exception()!r}"[:300])
            finally:
                stop.set()
                loop.stop()
                server.should_exit = True
                await asyncio.gather(*tasks, return_exceptions=True)
                await stop_application(trail)
    finally:
        await engine.dispose()
        log.info("catalogue stopped")
    if failed:  # only a stop ends the catalogue; anything else is an error exit (non-zero)
        raise ServiceFailed(failed)
