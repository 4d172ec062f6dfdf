"""Catalogue fixtures: a migrated database (SQLite file or PostgreSQL), its policy and API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

import catalogue  # noqa: F401 - registers the contract types
from catalogue.api import build_app
from catalogue.db import make_engine, migrate, sessions
from catalogue.policies import Policy
from catalogue.settings import CatalogueSettings


async def reset_postgres(url: str) -> None:
    """Empty the session's throw-away PostgreSQL database (tests share it one at a time)."""
    engine = make_engine(url)
    async with engine.begin() as conn:
        await conn.execute(text("DROP SCHEMA public CASCADE"))
        await conn.execute(text("CREATE SCHEMA public"))
    await engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def any_db_url(request: pytest.FixtureRequest, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'catalogue.db'}"
    return request.getfixturevalue("pg_database")


@pytest.fixture
async def db_url(any_db_url: str) -> str:
    """An empty catalogue database: a SQLite file, then the PostgreSQL throw-away database."""
    if any_db_url.startswith("postgresql"):
        await reset_postgres(any_db_url)
    return any_db_url


@dataclass
class Catalogue:
    """The catalogue without Kafka: database, policy and API client."""

    url: str
    engine: AsyncEngine
    sessions: async_sessionmaker
    policy: Policy
    client: httpx.AsyncClient

    def settings(self, **section) -> CatalogueSettings:
        return CatalogueSettings(database={"url": self.url}, catalogue=section)

    async def feed(self, *events) -> None:
        for event in events:
            await self.policy(event)

    async def feed_batch(self, *events) -> None:
        """The events as one ConsumerLoop fetch: one call of the batch policy."""
        await self.policy.batch(list(events))

    async def find(self, level: str, root: str = "STUDY", **kw) -> list[dict]:
        r = await self.client.post("/api/v1/find", json={"level": level, "root": root, **kw})
        assert r.status_code == 200, r.text
        return r.json()["matches"]


@pytest.fixture
async def cat(db_url: str) -> AsyncIterator[Catalogue]:
    engine = make_engine(db_url)
    await migrate(engine)
    maker = sessions(engine)
    app = build_app(maker, lambda: True)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://catalogue") as client:
        yield Catalogue(db_url, engine, maker, Policy(maker), client)
    await engine.dispose()
