"""A service's audit trail with its Application Activity (PS3.15 A.5.3.1): Application Start
when the trail starts, Application Stop when it stops.

    trail = await start_application(publisher, bus.topics.audit, "catalogue")
    try:
        ...  # serve; the HTTP app wrapped in http.AuthFailures(app, trail)
    finally:
        await stop_application(trail)  # before the publisher closes

or ``async with application_trail(publisher, topic, "catalogue") as trail: …``. The stop is
recorded and flushed (bounded by ``flush_s``) before the publisher closes. With the broker
down the facts are dropped and counted, never raised: the service starts and stops all the
same.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable

from dicomvault.audit import Action, AuditTrail
from dicomvault.bus.publisher import Publisher


async def start_application(publisher: Publisher, topic: str, application: str, *,
                            on_drop: Callable[[], None] | None = None) -> AuditTrail:
    """A started trail of ``application``, its Application Start recorded."""
    trail = AuditTrail(publisher, topic, application, on_drop=on_drop)
    await trail.start()
    trail.record(Action.APPLICATION_START, user_id=application, service=application)
    return trail


async def stop_application(trail: AuditTrail, flush_s: float = 3.0) -> None:
    """Record the Application Stop, send what is buffered (at most ``flush_s``), stop."""
    trail.record(Action.APPLICATION_STOP, user_id=trail.application,
                 service=trail.application)
    await trail.stop(flush_s)


@contextlib.asynccontextmanager
async def application_trail(publisher: Publisher, topic: str, application: str, *,
                            on_drop: Callable[[], None] | None = None
                            ) -> AsyncIterator[AuditTrail]:
    trail = await start_application(publisher, topic, application, on_drop=on_drop)
    try:
        yield trail
    finally:
        await stop_application(trail)
