"""Engine, sessions and schema migrations (Alembic ``upgrade head``, run at start-up)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import event, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.pool import StaticPool

MIGRATIONS = Path(__file__).parent / "migrations"
_PG_MIGRATION_LOCK = 0x0D1C0C47  # pg_advisory_xact_lock key: one migrator at a time


def make_engine(url: str, echo: bool = False) -> AsyncEngine:
    """An async engine; SQLite gets a busy timeout, WAL journal and ``synchronous=FULL``.

    FULL, not NORMAL, although NORMAL is the usual WAL companion: NORMAL fsyncs the WAL only
    at checkpoints, so a power loss can drop the last committed transactions (never corrupt
    the file). The consumer loop commits the Kafka offsets right after the database commit,
    so the broker would no longer redeliver the facts those transactions held: they would be
    lost to the catalogue. With batches of up to ``catalogue.batch_max_records`` facts per
    transaction the fsync is paid once per fetch, not per fact (docs/scaling.md).
    """
    if url.startswith("sqlite"):
        memory = ":memory:" in url or url.rstrip("/").endswith("sqlite+aiosqlite:")
        if not memory:
            path = url.split(":///", 1)[-1]
            if path:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(
            url, echo=echo, connect_args={"timeout": 30},
            **({"poolclass": StaticPool} if memory else {}),
        )

        @event.listens_for(engine.sync_engine, "connect")
        def _pragmas(dbapi_conn, _record) -> None:  # pragma: no cover - trivial
            cur = dbapi_conn.cursor()
            if not memory:
                cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL" if memory else "PRAGMA synchronous=FULL")
            cur.close()
            # SQLite's lower() folds ASCII only; PN matching must fold "MÜLLER" too.
            dbapi_conn.create_function("lower", 1, _lower, deterministic=True)

        return engine
    return create_async_engine(url, echo=echo, pool_pre_ping=True, pool_size=5, max_overflow=5)


def _lower(value: object) -> object:
    return value.lower() if isinstance(value, str) else value


def sessions(engine: AsyncEngine) -> async_sessionmaker:
    return async_sessionmaker(engine, expire_on_commit=False)


def alembic_config(url: str | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if url:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def _upgrade(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
    cfg = alembic_config()
    cfg.attributes["connection"] = conn
    command.upgrade(cfg, "head")


async def migrate(engine: AsyncEngine) -> None:
    """Bring the schema to the newest revision (idempotent; safe with several replicas)."""
    async with engine.begin() as conn:
        await conn.run_sync(_upgrade)


def is_connectivity_error(exc: BaseException) -> bool:
    """True when the database is unreachable or busy, as opposed to a bad statement."""
    if isinstance(exc, (OperationalError, InterfaceError)):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, (OSError, ConnectionError, TimeoutError))
