"""Multi-row statements derived from two compilations are SQLAlchemy's own text, for every
statement and size the batch policy uses, on both dialects; a batch that needs many sizes
lands whole; a statement whose rows cannot be learnt is compiled instead; datetimes are bound
for SQLite as SQLAlchemy binds them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import bindparam, func, select
from sqlalchemy.dialects import sqlite
from sqlalchemy.dialects.postgresql import asyncpg

from catalogue import bulk
from catalogue.instance_batch import upsert
from catalogue.models import Instance, Journal, Location, Patient, Series, Study
from catalogue.multirow import RowForm, statement
from catalogue.policies import journal_insert
from catalogue.rebuild import rebuild
from tests.catalogue.conftest import Catalogue
from tests.catalogue.helpers import instance_stored, uid

DIALECTS = {"sqlite": sqlite.dialect(), "postgresql": asyncpg.dialect()}
# The upserts of InstanceBatch.flush, as it calls them.
UPSERTS = [(Patient.__table__, (), "updated_seq"), (Study.__table__, ("stable_revision",), None),
           (Series.__table__, (), None), (Instance.__table__, (), None),
           (Location.__table__, (), None)]
# The preloads of InstanceBatch.load.
PRELOADS = [(Patient.__table__, "patient_id"), (Study.__table__, "study_instance_uid"),
            (Series.__table__, "series_instance_uid"), (Instance.__table__, "sop_instance_uid"),
            (Location.__table__, "sop_instance_uid")]


def inserts(dialect):
    """(name, build(m)) of every multi-row INSERT the batch policy runs."""
    def rows(table, build):
        row = {c.name: None for c in table.columns}
        return lambda m: build(bulk.insert_for(dialect)).values([row] * m)

    yield "journal", rows(Journal.__table__, journal_insert)
    for table, keep, newer in UPSERTS:
        yield f"upsert {table.name}", rows(table, upsert(table, keep, newer))


def selects():
    for table, column in PRELOADS:
        yield f"select {table.name}", lambda m, t=table, c=column: select(t).where(
            t.c[c].in_([bindparam(f"k{i}", type_=t.c[c].type) for i in range(m)]))


@pytest.mark.parametrize("name", DIALECTS)
def test_every_derived_size_is_what_sqlalchemy_compiles(name: str) -> None:
    dialect = DIALECTS[name]
    cases = [(n, b, 128) for n, b in inserts(dialect)] + [(n, b, 512) for n, b in selects()]
    for label, build, largest in cases:
        sizes = [1, 2, 3, 5] + [1 << k for k in range(2, largest.bit_length())]
        for n in sizes:
            derived = statement(("test", label, name), dialect, build, n)
            compiled = build(n).compile(dialect=dialect)
            assert derived.sql == compiled.string, (label, n)
            width = len(compiled.positiontup) // n
            assert derived.first_row == compiled.positiontup[:width], (label, n)


def test_a_statement_with_parameters_after_its_rows_is_compiled_not_derived() -> None:
    # ON CONFLICT … WHERE with a bound value: on PostgreSQL its number moves with the rows.
    dialect = DIALECTS["postgresql"]
    table = Patient.__table__
    row = {c.name: None for c in table.columns}

    def build(m):
        stmt = bulk.insert_for(dialect)(table).values([row] * m)
        return stmt.on_conflict_do_update(
            index_elements=["patient_id", "issuer_of_patient_id"],
            set_={"patient_name": stmt.excluded.patient_name},
            where=table.c.updated_seq < bindparam("floor", 5))

    one, two = (build(m).compile(dialect=dialect) for m in (1, 2))
    assert RowForm.learn(one.string, two.string, 6) is None
    assert statement(("test", "floor"), dialect, build, 4).sql == build(4).compile(
        dialect=dialect).string


async def test_a_batch_of_many_sizes_lands_whole_and_equals_a_rebuild(cat: Catalogue) -> None:
    # 231 facts: chunks of 128, 64, 32, 4, 2 and 1 rows in one transaction.
    study, series = uid(), uid()
    facts = [instance_stored(study, series, instance_number=str(n)) for n in range(231)]
    await cat.feed_batch(*facts)
    async with cat.sessions() as s:
        assert await s.scalar(select(func.count()).select_from(Instance)) == 231
        assert await s.scalar(select(func.count()).select_from(Location)) == 231
    assert len(await cat.find("IMAGE", StudyInstanceUID=study)) == 231
    report = await rebuild(cat.settings(), check_only=True)
    assert report.ok, report.differences
    assert report.journal_rows == 231


def test_utc_datetimes_are_bound_for_sqlite_as_sqlalchemy_binds_them() -> None:
    dialect = DIALECTS["sqlite"]
    column_type = Journal.__table__.c.recorded_at.type
    theirs = column_type._cached_bind_processor(dialect)
    ours = bulk.bind_processor(column_type, dialect)
    values = [None, datetime(2026, 12, 5, 7, 1, 2, 345678, tzinfo=UTC),
              datetime(2026, 12, 5, 7, 1, 2, tzinfo=UTC),  # no microseconds: still printed
              datetime(2026, 12, 5, 8, 1, 2, 5, tzinfo=timezone(timedelta(hours=1))),
              datetime(1, 1, 1, 0, 0, 0), datetime(999, 3, 4, 23, 59, 59, 999999),
              datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)]
    for value in values:
        assert ours(value) == theirs(value), value
