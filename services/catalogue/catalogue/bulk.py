"""Multi-row statements for the batch policy, compiled once per dialect and run by the driver.

SQLAlchemy's generic executemany path builds and processes every row's parameters through the
compiler (about a third of the catalogue's CPU per event in a drain, measured with py-spy and
cProfile). Here a multi-row statement is written once per dialect and row count (powers of
two up to 128; ``multirow`` derives each size from two compilations), rows are bound in the compiled parameter order, and only the columns whose
type has a bind processor (the UTC datetimes) go through it: the same values SQLAlchemy would
bind, at a fraction of the cost, and few statements per batch (PostgreSQL runs one multi-row
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

from sqlalchemy import Table, bindparam, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.sql.dml import Insert

from catalogue.multirow import statement

Row = dict[str, object]
_Processors = tuple[list[str], list[Callable | None]]
_PROCESSORS: dict[tuple, _Processors] = {}
_MULTI = re.compile(r"_m\d+$")


def insert_for(dialect: Dialect) -> Callable[[Table], Insert]:
    """The dialect's INSERT (with ON CONFLICT): PostgreSQL's or SQLite's."""
    if dialect.name == "postgresql":
        return postgresql.insert
    if dialect.name == "sqlite":
        return sqlite.insert
    raise RuntimeError(f"unsupported database {dialect.name}")  # pragma: no cover


def _bind_processors(key: tuple, dialect: Dialect, table: Table,
                     first_row: list[str]) -> _Processors:
    """The columns of a row's parameters (multi-row names: "ce_id_m0", …) and the bind
    processor of each (None for most: only the UTC datetimes have one)."""
    found = _PROCESSORS.get(key)
    if found is None:
        columns = [c if c in table.c else _MULTI.sub("", c) for c in first_row]
        procs = [table.c[c].type._cached_bind_processor(dialect) for c in columns]
        found = _PROCESSORS[key] = (columns, procs)
    return found


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


def _values(row: Row, columns: list[str], procs: list[Callable | None]) -> list[object]:
    return [row[c] if p is None else p(row[c]) for c, p in zip(columns, procs, strict=True)]


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
        columns, procs = _bind_processors((key, dialect.name), dialect, table, stmt.first_row)
        params = tuple(v for r in part for v in _values(r, columns, procs))
        rows_back = await _run(conn, stmt.sql, params)
        if returning:
            out += [tuple(r) for r in rows_back]
    return out


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
    names = [c.name for c in table.columns]
    procs = [c.type._cached_result_processor(dialect, None) for c in table.columns]
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
