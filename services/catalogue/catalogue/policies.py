"""The catalogue's policy: journal the event and apply it to the projections, atomically.

``Policy.__call__(event)`` is the ConsumerLoop handler. In one transaction it inserts the
journal row (a known ``ce_id`` means the event was already applied: nothing happens) and
applies the projection with the row's sequence number. Database trouble is a TransientError,
so the loop retries the record for as long as it takes and never dead-letters it.

``Policy.batch(events)`` is the ConsumerLoop's batch handler: one transaction for a whole
``getmany`` fetch. The journal rows go in with multi-row ``INSERT … ON CONFLICT (ce_id) DO
NOTHING RETURNING seq, ce_id`` (a ``ce_id`` seen twice in the batch is inserted once), and the
inserted facts are applied in journal (seq) order: runs of InstanceStored through
``InstanceBatch`` (preload, apply in memory, multi-row write-back), any other fact through the
per-event ``apply``, in between. The fetch keeps each partition's order and seqs follow the
fetch order, so one study's facts (one partition, keyed by Study Instance UID) are applied in
the order they were published. Any failure rolls the whole batch back; the loop retries it
whole after a TransientError (database unreachable), and otherwise applies the same records
one by one with the per-record rules.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from itertools import groupby
from typing import TypeVar

from sqlalchemy import Table, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.sql.dml import Insert

from catalogue import bulk, metrics
from catalogue.commits import CommitHealth, is_disk_full
from catalogue.db import is_connectivity_error
from catalogue.instance_batch import InstanceBatch
from catalogue.jobs_projection import JOB_FACTS
from catalogue.models import Journal
from catalogue.projection import apply
from dicomvault.bus import PermanentError, TransientError
from dicomvault.events import Event
from dicomvault.events.v1 import events_pb2 as ev
from dicomvault.events.v1 import jobs_pb2 as jb
from dicomvault.jobs import JobState, QueueState
from dicomvault.store.uids import is_valid_uid

log = logging.getLogger(__name__)

QUEUE_STATES = tuple(s.value for s in QueueState)
JOB_STATES = tuple(s.value for s in JobState)


def journal_values(event: Event, recorded_at: datetime) -> dict:
    value = event.payload.SerializeToString(deterministic=True)  # as Event.to_record
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


async def append_many(session: AsyncSession, events: list[Event],
                      recorded_at: datetime) -> dict[str, int]:
    """Insert the journal rows of ``events`` (distinct ce_ids) in their order; the seq of each
    inserted ce_id (those already journalled are absent)."""
    rows = [journal_values(e, recorded_at) for e in events]
    returned = await bulk.insert_returning(session, "journal", Journal.__table__,
                                           journal_insert, rows)
    return {ce_id: seq for seq, ce_id in returned}


def journal_insert(insert: Callable[[Table], Insert]) -> Insert:
    """``append_many``'s statement for a dialect's ``insert``: a known ce_id is skipped, the
    others' seq and ce_id are returned."""
    table = Journal.__table__
    return insert(table).on_conflict_do_nothing(index_elements=["ce_id"]).returning(
        table.c.seq, table.c.ce_id)


def check(event: Event) -> None:
    """Reject (to the DLQ) facts that can never be projected: UIDs missing or invalid."""
    p = event.payload
    if isinstance(p, ev.InstanceStored):
        names = ("study_instance_uid", "series_instance_uid", "sop_instance_uid")
    elif isinstance(p, (ev.StudyStable, ev.StudyArchived, ev.StudyEvicted)):
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


T = TypeVar("T")


class Policy:
    """Handler of the instances, studies, jobs and job-commands topics."""

    def __init__(self, sessionmaker: async_sessionmaker,
                 health: CommitHealth | None = None) -> None:
        self._sessions = sessionmaker
        self.health = health or CommitHealth()

    async def __call__(self, event: Event) -> None:
        outcome = await self._committed(self._apply(event))
        metrics.EVENTS.labels(event.type, outcome).inc()

    async def batch(self, events: list[Event]) -> None:
        """Journal and apply a whole fetch in one transaction (see the module docstring)."""
        for event in events:
            if not event.id:
                raise PermanentError("event without ce_id")
            check(event)
        outcomes = await self._committed(self._apply_batch(events))
        for ce_type, outcome in outcomes:
            metrics.EVENTS.labels(ce_type, outcome).inc()

    async def _committed(self, work: Awaitable[T]) -> T:
        """Await one transaction's ``work``; the commit health follows its outcome, and a
        database that cannot be reached is a TransientError (the loop retries; nothing is
        committed)."""
        try:
            result = await work
        except SQLAlchemyError as exc:
            self.health.failed(exc)
            if is_connectivity_error(exc) or is_disk_full(exc):  # retried, never a DLQ
                raise TransientError(f"catalogue database unavailable or full: {exc}") from exc
            raise
        except (OSError, TimeoutError) as exc:
            self.health.failed(exc)
            raise TransientError(f"catalogue database unavailable: {exc!r}") from exc
        self.health.succeeded()
        return result

    async def _apply_batch(self, events: list[Event]) -> list[tuple[str, str]]:
        first: dict[str, Event] = {}
        outcomes: list[tuple[str, str]] = []
        for e in events:  # a ce_id seen twice in one batch is journalled once
            if e.id in first:
                outcomes.append((e.type, "duplicate"))
            else:
                first[e.id] = e
        unique = list(first.values())
        async with self._sessions() as session, session.begin():
            recorded_at = datetime.now(UTC)
            seqs = await append_many(session, unique, recorded_at)
            journalled = sorted(((seqs[e.id], e) for e in unique if e.id in seqs),
                                key=lambda item: item[0])
            outcomes += [(e.type, "duplicate") for e in unique if e.id not in seqs]
            for stored, group in groupby(journalled, key=lambda item: isinstance(
                    item[1].payload, ev.InstanceStored)):
                run = list(group)
                outcomes += await (_apply_stored(session, run) if stored
                                   else _apply_each(session, run))
        if journalled:
            metrics.JOURNAL_ROWS.set(journalled[-1][0])
        for _, event in journalled:
            metrics.PROJECTION_LAG.observe(max(0.0, (recorded_at - event.time).total_seconds()))
        return outcomes

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


async def _apply_stored(session: AsyncSession,
                        run: list[tuple[int, Event]]) -> list[tuple[str, str]]:
    """Consecutive InstanceStored facts, in bulk (InstanceBatch)."""
    batch = InstanceBatch()
    await batch.load(session, [e.payload for _, e in run])
    outcomes = [(e.type, "applied" if batch.apply(e.payload, e.time, seq) else "journal_only")
                for seq, e in run]
    await batch.flush(session)
    session.expunge_all()  # ORM objects loaded before the run may be stale now
    return outcomes


async def _apply_each(session: AsyncSession,
                      run: list[tuple[int, Event]]) -> list[tuple[str, str]]:
    """Any other facts, one by one through the per-event projection."""
    return [(e.type, "applied" if await apply(session, e, seq) else "journal_only")
            for seq, e in run]


async def journal_size(session: AsyncSession) -> int:
    return int((await session.scalar(select(func.max(Journal.seq)))) or 0)
