"""Multi-row statements for the batch policy, compiled once per dialect and run by the driver.

SQLAlchemy's generic executemany path builds and processes every row's parameters through the
compiler (about a third of the catalogue's CPU per event in a drain, measured with py-spy and
cProfile). Here a multi-row statement is written once per dialect and row count (powers of
two up to 128; ``multirow`` derives each size from two compilations), rows are bound in the
compiled parameter order (``_Binder``), and only the columns whose type has a bind processor
(the UTC datetimes, formatted directly on SQLite) go through it: the same values SQLAlchemy
would bind, at a fraction of the cost, and few statements per batch (PostgreSQL runs one multi-row
statement much faster than the same rows one statement each). ``select_in`` is the batch's
preload in the same style: one ``SELECT … WHERE key IN (…)`` per table and size.

On SQLite each statement goes to aiosqlite's thread in one hand-over (``execute_fetchall``),
not through SQLAlchemy's adapter, which makes four (cursor, execute, fetchall, close): every
hand-over wakes the other thread and the event loop, and at a live load's ~25 facts per fetch
those hand-overs were most of the catalogue's CPU (py-spy; benchmarks/catalogue_live). The
statement runs on the session's own connection, inside its transaction, and a driver error
is raised as SQLAlchemy's (``OperationalError`` …) as through the adapter.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from operator import itemgetter

from sqlalchemy import Table, bindparam, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.sql.dml import Insert
from sqlalchemy.types import TypeEngine

from catalogue.models import UtcDateTime
from catalogue.multirow import statement

Row = dict[str, object]
_BINDERS: dict[tuple, _Binder] = {}
_Columns = tuple[list[str], list[Callable | None]]
_RESULTS: dict[tuple[str, str], _Columns] = {}
_MULTI = re.compile(r"_m\d+$")


def insert_for(dialect: Dialect) -> Callable[[Table], Insert]:
    """The dialect's INSERT (with ON CONFLICT): PostgreSQL's or SQLite's."""
    if dialect.name == "postgresql":
        return postgresql.insert
    if dialect.name == "sqlite":
        return sqlite.insert
    raise RuntimeError(f"unsupported database {dialect.name}")  # pragma: no cover


class _Binder:
    """A statement's parameters for its rows, in order: each row's column values, the few
    with a bind processor converted (only the UTC datetimes have one)."""

    def __init__(self, table: Table, first_row: list[str], dialect: Dialect) -> None:
        # Multi-row parameter names are the column's with a suffix: "ce_id_m0", …
        columns = [c if c in table.c else _MULTI.sub("", c) for c in first_row]
        getter = itemgetter(*columns)
        self.get: Callable[[Row], tuple] = (
            getter if len(columns) > 1 else lambda row: (getter(row),))
        self.convert = [(i, p) for i, c in enumerate(columns)
                        if (p := bind_processor(table.c[c].type, dialect)) is not None]

    def params(self, rows: Sequence[Row]) -> list[object]:
        out: list[object] = []
        for row in rows:
            values = self.get(row)
            if self.convert:
                values = list(values)
                for i, convert in self.convert:
                    values[i] = convert(values[i])
            out.extend(values)
        return out


def bind_processor(type_: TypeEngine, dialect: Dialect) -> Callable | None:
    """The column type's bind processor; for a UTC datetime on SQLite a faster one giving the
    same text (SQLAlchemy's goes through a TypeDecorator and a ``%`` format of a dict, ~2 µs a
    value, several values per fact; tests/catalogue/test_multirow.py compares the two)."""
    if isinstance(type_, UtcDateTime) and dialect.name == "sqlite":
        return _sqlite_utc
    return type_._cached_bind_processor(dialect)


def _sqlite_utc(value: datetime | None) -> str | None:
    """``UtcDateTime`` bound for SQLite: naive UTC as "YYYY-MM-DD HH:MM:SS.ffffff"."""
    if value is None:
        return None
    if value.tzinfo is UTC:  # the usual case: drop the "+00:00"
        return value.isoformat(" ", "microseconds")[:-6]
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.isoformat(" ", "microseconds")


async def _run(conn: AsyncConnection, sql: str, params: tuple) -> list:
    """One statement on the session's connection; its rows (empty without RETURNING)."""
    dialect = conn.dialect
    if dialect.driver != "aiosqlite":
        result = await conn.exec_driver_sql(sql, params)
        return result.all() if result.returns_rows else []
    raw = (await conn.get_raw_connection()).driver_connection
    error = dialect.loaded_dbapi.Error
    try:
        return await raw.execute_fetchall(sql, params)
    except error as exc:
        raise DBAPIError.instance(sql, params, exc, error, dialect=dialect) from exc


async def executemany(session: AsyncSession, key: str, table: Table,
                      build: Callable[[Callable[[Table], Insert]], Insert],
                      rows: Sequence[Row]) -> None:
    """Run ``build(insert)`` for every row as multi-row statements (see ``insert_returning``;
    PostgreSQL runs one multi-row statement much faster than as many single-row ones)."""
    await insert_returning(session, key, table, build, rows, returning=False)


def _chunks(n: int, largest: int = 128) -> list[int]:
    """``n`` as chunk sizes that are powers of two (a few compiled statements serve all)."""
    out = []
    while n:
        size = min(largest, 1 << (n.bit_length() - 1))
        out.append(size)
        n -= size
    return out


async def insert_returning(session: AsyncSession, key: str, table: Table,
                           build: Callable[[Callable[[Table], Insert]], Insert],
                           rows: Sequence[Row], returning: bool = True) -> list[tuple]:
    """Multi-row ``build(insert).values(rows)`` with its RETURNING rows, in statements of up
    to 128 rows, in the order given (so an identity column follows that order)."""
    conn = await session.connection()
    dialect = conn.dialect
    out: list[tuple] = []
    start = 0
    for n in _chunks(len(rows)):
        part = rows[start:start + n]
        start += n
        stmt = statement((key, dialect.name), dialect,
                         lambda m, row=part[0]: build(insert_for(dialect)).values([row] * m), n)
        binder = _BINDERS.get((key, dialect.name))
        if binder is None:
            binder = _BINDERS[(key, dialect.name)] = _Binder(table, stmt.first_row, dialect)
        rows_back = await _run(conn, stmt.sql, tuple(binder.params(part)))
        if returning:
            out += [tuple(r) for r in rows_back]
    return out


def _result_processors(table: Table, dialect: Dialect) -> _Columns:
    """The table's column names and each one's result processor (UTC datetimes, booleans)."""
    found = _RESULTS.get((table.name, dialect.name))
    if found is None:
        found = _RESULTS[(table.name, dialect.name)] = (
            [c.name for c in table.columns],
            [c.type._cached_result_processor(dialect, None) for c in table.columns])
    return found


def _padded(n: int) -> int:
    """The IN list size serving ``n`` keys: a power of two (the last key repeated)."""
    return 1 << (n - 1).bit_length()


async def select_in(session: AsyncSession, table: Table, column: str,
                    keys: Sequence[object], largest: int = 512) -> list[Row]:
    """Every row of ``table`` whose ``column`` is one of ``keys``, as dicts of column values
    (as the ORM returns them: UTC datetimes, booleans). One compiled statement per table,
    column and power-of-two size, up to ``largest`` keys each."""
    conn = await session.connection()
    dialect = conn.dialect
    names, procs = _result_processors(table, dialect)
    out: list[Row] = []
    for start in range(0, len(keys), largest):
        part = list(keys[start:start + largest])
        n = _padded(len(part))
        stmt = statement(("select", table.name, column, dialect.name), dialect,
                         lambda m: select(table).where(table.c[column].in_(
                             [bindparam(f"k{i}", type_=table.c[column].type)
                              for i in range(m)])), n)
        params = tuple(part + part[-1:] * (n - len(part)))
        for r in await _run(conn, stmt.sql, params):
            out.append({c: v if p is None else p(v) for c, v, p in zip(names, r, procs,
                                                                     strict=True)})
    return out
