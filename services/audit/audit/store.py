"""The audit messages' own table (SQLite embedded, PostgreSQL in production).

A row is one audit message: its ``Record`` as JSON, the columns the API filters on, and its
delivery state. Instances Transferred rows stay open (``key`` set, ``ready_at`` in the future)
while more instances of the same study and association arrive; the sender takes rows whose
``ready_at`` has passed and marks them ``delivered_at``. Consumer offsets are committed only
after the rows are committed here: what the syslog receiver has not yet taken is kept here,
not in the broker.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import (
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    event,
    func,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from audit.record import Record

metadata = MetaData()
messages = Table(
    "audit_messages", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("event", String(40), nullable=False),
    Column("outcome", Integer, nullable=False),
    Column("event_time", String(40), nullable=False),   # ISO 8601 UTC: sorts as text
    Column("actor", String(256), nullable=False, default=""),
    Column("studies", Text, nullable=False, default=""),  # " uid1 uid2 " (LIKE '% uid %')
    Column("record", Text, nullable=False),
    Column("key", String(200)),                          # open aggregate (Instances Transferred)
    Column("opened_at", Float, nullable=False),
    Column("ready_at", Float, nullable=False),
    Column("delivered_at", Float),
    Index("ix_audit_pending", "delivered_at", "ready_at"),
    Index("ix_audit_key", "key"),
    Index("ix_audit_time", "event_time"),
)


def make_engine(url: str) -> AsyncEngine:
    """An async engine; SQLite in WAL mode with synchronous=FULL (a committed message
    survives a power loss: its offsets are committed right after)."""
    if url.startswith("sqlite"):
        path = url.split(":///", 1)[-1]
        if path and ":memory:" not in path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine.sync_engine, "connect")
        def _pragmas(dbapi_conn, _record) -> None:  # pragma: no cover - trivial
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")
            cur.close()

        return engine
    return create_async_engine(url, pool_pre_ping=True, pool_size=3, max_overflow=2)


async def create(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)


def _columns(rec: Record) -> dict:
    return {"event": rec.event, "outcome": rec.outcome, "event_time": rec.time,
            "actor": (rec.user_id or rec.calling_ae)[:256],
            "studies": (" " + " ".join(rec.studies) + " ") if rec.studies else "",
            "record": rec.to_json()}


@dataclass
class Kept:
    """One kept message, as the sender and the API see it."""

    id: int
    record: Record
    delivered_at: float | None


class Store:
    def __init__(self, engine: AsyncEngine, aggregate_s: float, aggregate_max_s: float) -> None:
        self.engine = engine
        self.aggregate_s = aggregate_s
        self.aggregate_max_s = aggregate_max_s

    async def keep(self, conn: AsyncConnection, rec: Record) -> None:
        """A message to send as it is (inside the caller's transaction)."""
        now = time.time()
        await conn.execute(messages.insert().values(**_columns(rec), key=None, opened_at=now,
                                                    ready_at=now))

    async def aggregate(self, conn: AsyncConnection, key: str, rec: Record) -> None:
        """Add ``rec``'s instances to the open message of ``key`` (same study, same
        association), or open one; it is sent once no instance came for ``aggregate_s``
        (at most ``aggregate_max_s`` after it opened)."""
        now = time.time()
        row = (await conn.execute(
            select(messages.c.id, messages.c.record, messages.c.opened_at)
            .where(messages.c.key == key, messages.c.delivered_at.is_(None),
                   messages.c.ready_at > now)
            .order_by(messages.c.id.desc()).limit(1))).first()
        if row is None:
            await conn.execute(messages.insert().values(
                **_columns(rec), key=key, opened_at=now, ready_at=now + self.aggregate_s))
            return
        merged = Record.from_json(row.record)
        for sop_class, count in rec.sop_classes.items():
            merged.sop_classes[sop_class] = merged.sop_classes.get(sop_class, 0) + count
        merged.outcome = max(merged.outcome, rec.outcome)
        await conn.execute(update(messages).where(messages.c.id == row.id).values(
            record=merged.to_json(),
            ready_at=min(row.opened_at + self.aggregate_max_s, now + self.aggregate_s)))

    async def due(self, limit: int) -> list[Kept]:
        """Undelivered messages whose time has come, oldest first."""
        async with self.engine.connect() as conn:
            rows = (await conn.execute(
                select(messages.c.id, messages.c.record)
                .where(messages.c.delivered_at.is_(None), messages.c.ready_at <= time.time())
                .order_by(messages.c.id).limit(limit))).all()
        return [Kept(r.id, Record.from_json(r.record), None) for r in rows]

    async def delivered(self, ids: list[int]) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(update(messages).where(messages.c.id.in_(ids))
                               .values(delivered_at=time.time()))

    async def backlog(self) -> int:
        async with self.engine.connect() as conn:
            return int((await conn.execute(select(func.count()).select_from(messages).where(
                messages.c.delivered_at.is_(None)))).scalar_one())

    async def find(self, study: str = "", actor: str = "", since: str = "",
                   limit: int = 100) -> list[Kept]:
        """Kept messages, newest first, filtered by study, actor and event time."""
        q = select(messages.c.id, messages.c.record, messages.c.delivered_at)
        if study:
            q = q.where(messages.c.studies.like(f"% {study} %"))
        if actor:
            q = q.where(messages.c.actor == actor)
        if since:
            q = q.where(messages.c.event_time >= since)
        q = q.order_by(messages.c.id.desc()).limit(limit)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(q)).all()
        return [Kept(r.id, Record.from_json(r.record), r.delivered_at) for r in rows]
