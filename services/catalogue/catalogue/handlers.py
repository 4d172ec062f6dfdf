"""The catalogue's policy: journal the event and apply it to the projections, atomically.

``Policy.__call__(event)`` is the ConsumerLoop handler. In one transaction it inserts the
journal row (a known ``ce_id`` means the event was already applied: nothing happens) and
applies the projection with the row's sequence number. Database trouble is a TransientError,
so the loop retries the record for as long as it takes and never dead-letters it.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from catalogue import metrics
from catalogue.commits import CommitHealth
from catalogue.db import is_connectivity_error
from catalogue.jobs_projection import JOB_FACTS
from catalogue.models import Journal
from catalogue.projection import apply
from dicomvault.bus import PermanentError, TransientError
from dicomvault.events import Event
from dicomvault.events.v1 import events_pb2 as v1
from dicomvault.events.v1 import jobs_pb2 as jb
from dicomvault.jobs import JobState, QueueState
from dicomvault.store.uids import is_valid_uid

log = logging.getLogger(__name__)

QUEUE_STATES = tuple(s.value for s in QueueState)
JOB_STATES = tuple(s.value for s in JobState)


def journal_values(event: Event, recorded_at: datetime) -> dict:
    value, _headers = event.to_record()
    return {
        "ce_id": event.id, "ce_type": event.type, "ce_source": event.source,
        "subject": event.subject, "ce_time": event.time, "payload": value,
        "recorded_at": recorded_at,
    }


async def append(session: AsyncSession, event: Event, recorded_at: datetime) -> int | None:
    """Insert the journal row; its seq, or None when that ce_id is already journalled."""
    values = journal_values(event, recorded_at)
    dialect = session.bind.dialect.name
    if dialect == "postgresql":
        stmt = postgresql.insert(Journal).values(**values).on_conflict_do_nothing(
            index_elements=["ce_id"])
    elif dialect == "sqlite":
        stmt = sqlite.insert(Journal).values(**values).on_conflict_do_nothing(
            index_elements=["ce_id"])
    else:  # pragma: no cover - only the two supported back ends
        raise RuntimeError(f"unsupported database {dialect}")
    return (await session.execute(stmt.returning(Journal.seq))).scalar_one_or_none()


def check(event: Event) -> None:
    """Reject (to the DLQ) facts that can never be projected: UIDs missing or invalid."""
    p = event.payload
    if isinstance(p, v1.InstanceStored):
        names = ("study_instance_uid", "series_instance_uid", "sop_instance_uid")
    elif isinstance(p, (v1.StudyStable, v1.StudyArchived, v1.StudyEvicted)):
        names = ("study_instance_uid",)
    elif isinstance(p, JOB_FACTS):
        names = ()
        if not p.job_id or not p.queue:
            raise PermanentError(f"{event.type}: job_id and queue are required")
        if isinstance(p, jb.JobStateChanged) and p.state not in JOB_STATES:
            raise PermanentError(f"{event.type}: unknown job state {p.state!r}")
    elif isinstance(p, jb.QueueStateChanged):
        names = ()
        if not p.queue or p.state not in QUEUE_STATES:
            raise PermanentError(f"{event.type}: queue required, state one of {QUEUE_STATES}")
    else:
        return
    for name in names:
        if not is_valid_uid(getattr(p, name)):
            raise PermanentError(f"{event.type}: invalid {name} {getattr(p, name)!r}")


class Policy:
    """Handler of the instances, studies, jobs and job-commands topics."""

    def __init__(self, sessionmaker: async_sessionmaker,
                 health: CommitHealth | None = None) -> None:
        self._sessions = sessionmaker
        self.health = health or CommitHealth()

    async def __call__(self, event: Event) -> None:
        try:
            outcome = await self._apply(event)
        except SQLAlchemyError as exc:
            self.health.failed(exc)
            if is_connectivity_error(exc):
                raise TransientError(f"catalogue database unavailable: {exc}") from exc
            raise
        except (OSError, TimeoutError) as exc:
            self.health.failed(exc)
            raise TransientError(f"catalogue database unavailable: {exc!r}") from exc
        self.health.succeeded()
        metrics.EVENTS.labels(event.type, outcome).inc()

    async def _apply(self, event: Event) -> str:
        if not event.id:
            raise PermanentError("event without ce_id")
        check(event)
        async with self._sessions() as session, session.begin():
            recorded_at = datetime.now(UTC)
            seq = await append(session, event, recorded_at)
            if seq is None:
                return "duplicate"
            changed = await apply(session, event, seq)
        metrics.JOURNAL_ROWS.set(seq)
        metrics.PROJECTION_LAG.observe(max(0.0, (recorded_at - event.time).total_seconds()))
        return "applied" if changed else "journal_only"


async def journal_size(session: AsyncSession) -> int:
    return int((await session.scalar(select(func.max(Journal.seq)))) or 0)
