"""The audit messages' own table on both databases it runs on (SQLite embedded, PostgreSQL in
production): instances of one study and association merge into one open message, kept
messages come due in order, the API's filters select by study, actor and time."""

from __future__ import annotations

import pytest

from audit.record import Record
from audit.store import Store, create, make_engine

STUDY, OTHER = "1.2.826.0.1.3680043.8.498.1", "1.2.826.0.1.3680043.8.498.2"
CT = "1.2.840.10008.5.1.4.1.1.2"


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'audit.db'}"
    return request.getfixturevalue("pg_database")


def stored(study: str, n: int, user: str = "CT1") -> Record:
    return Record("transferred", "C", 0, "2026-12-04T04:00:00.000Z", user_id=user,
                  studies=[study], sop_classes={CT: n})


async def test_aggregates_and_filters(url: str) -> None:
    engine = make_engine(url)
    try:
        await create(engine)
        await create(engine)  # idempotent: every start creates what is missing
        store = Store(engine, aggregate_s=3600, aggregate_max_s=7200)
        async with engine.begin() as conn:
            await conn.exec_driver_sql("DELETE FROM audit_messages")
        # Two fetches of one association's instances, and another study's.
        async with engine.begin() as conn:
            await store.aggregate(conn, f"t|{STUDY}|a1", stored(STUDY, 3))
        async with engine.begin() as conn:
            await store.aggregate(conn, f"t|{STUDY}|a1", stored(STUDY, 2))
            await store.aggregate(conn, f"t|{OTHER}|a2", stored(OTHER, 1, user="MR1"))
            await store.keep(conn, Record("query", "E", 0, "2026-12-04T05:00:00.000Z",
                                          user_id="CT1", studies=[STUDY]))
        # One open message per study and association; only the query is due yet.
        [study] = [k for k in await store.find(study=STUDY) if k.record.event == "transferred"]
        assert study.record.instances == 5 and study.delivered_at is None
        due = await store.due(100)
        assert [k.record.event for k in due] == ["query"]
        await store.delivered([k.id for k in due])
        assert await store.backlog() == 2
        # Filters: study, actor, since.
        assert {k.record.event for k in await store.find(study=STUDY)} == {"transferred",
                                                                           "query"}
        assert [k.record.studies for k in await store.find(actor="MR1")] == [[OTHER]]
        assert [k.record.event for k in await store.find(
            since="2026-12-04T04:30:00.000Z")] == ["query"]
        assert (await store.find(study=STUDY, actor="CT1", limit=1))[0].delivered_at
    finally:
        await engine.dispose()
