"""Issue 13 item 7 on PostgreSQL: the catalogue's tables live in a tablespace on a tmpfs of a
few MB (root mounts it; the local server writes it), so commits fail the way a full disk does
— the real server's SQLSTATE 53100 "could not extend file: No space left on device". The
catalogue turns not ready with the reason, logs one ERROR, counts the failed commits, and
once space is back applies the backlog with nothing lost or doubled."""

from __future__ import annotations

import asyncio
import pwd
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from dicomvault.bus import Publisher
from dicomvault.bus.broker import free_port
from dicomvault.settings import BusSettings
from tests.catalogue.helpers import instance_stored, uid
from tests.conftest import PG_ADMIN_DSN
from tests.gateway.conftest import sample
from tests.gateway.test_full_disk import _blocked, _instances, fill
from tests.peers.services import FAST_BUS_ENV, ServiceProcess, catalogue_env

LATER = 30  # instances published while the disk is full


async def _admin(*statements: str, database: str | None = None) -> None:
    dsn = PG_ADMIN_DSN if database is None else PG_ADMIN_DSN.rsplit("/", 1)[0] + f"/{database}"
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        for sql in statements:
            await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture
def pg_on_tiny_disk() -> Iterator[tuple[str, Path]]:
    """(database URL, tmpfs): a database whose default tablespace is an 8 MB tmpfs owned by
    the server's user (under /tmp, which the server can reach, unlike pytest's tmp_path)."""
    server = pwd.getpwnam("postgres")  # the local server (tests/conftest.py: PG_ADMIN_DSN)
    mount = Path(tempfile.mkdtemp(prefix="dvpg-", dir="/tmp"))
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size=8m,mode=0700,uid={server.pw_uid},"
                    f"gid={server.pw_gid}", "tmpfs", str(mount)], check=True)
    tag = uuid.uuid4().hex[:10]
    space, name = f"dv_tiny_{tag}", f"dicomvault_test_full_{tag}"
    try:
        asyncio.run(_admin(f"CREATE TABLESPACE {space} LOCATION '{mount}'",
                           f'CREATE DATABASE "{name}"',
                           f'ALTER DATABASE "{name}" SET default_tablespace = {space}'))
        yield f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}", mount
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)',
                           f"DROP TABLESPACE IF EXISTS {space}"))
        subprocess.run(["umount", "-l", str(mount)], check=True)
        mount.rmdir()


async def _journal(database: str) -> tuple[int, int]:
    """(journal rows, distinct event ids) straight from the database."""
    conn = await asyncpg.connect(PG_ADMIN_DSN.rsplit("/", 1)[0] + f"/{database}", timeout=10)
    try:
        row = await conn.fetchrow("SELECT count(*), count(DISTINCT ce_id) FROM journal")
        return int(row[0]), int(row[1])
    finally:
        await conn.close()


async def test_catalogue_on_a_full_postgresql_disk_is_not_ready_and_catches_up(
        pg_on_tiny_disk: tuple[str, Path], tmp_path: Path, bus_settings: BusSettings) -> None:
    db_url, disk = pg_on_tiny_disk
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cat = ServiceProcess("catalogue", catalogue_env(bus_settings, db_url, port, **FAST_BUS_ENV),
                         tmp_path, ready_url=f"{url}/readyz")
    await asyncio.to_thread(cat.start)
    try:
        study, series = uid(), uid()
        async with Publisher(bus_settings, client_id="test") as pub, httpx.AsyncClient(
                base_url=url, timeout=10, follow_redirects=True) as http:
            # One instance while there is room: visible.
            await pub.publish(bus_settings.topics.instances, instance_stored(study, series),
                              key=study)
            deadline = time.monotonic() + 30
            while await _instances(http, study) < 1 and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
            assert await _instances(http, study) == 1

            # The tablespace's disk fills up; more instances arrive, each in a new series
            # with long texts, so that the server must extend its files.
            filler = fill(disk, 0)
            for _ in range(LATER):
                await pub.publish(bus_settings.topics.instances, instance_stored(
                    study, uid(), study_description="x" * 60, station_name="y" * 16),
                    key=study)
            # Not ready, with the reason; the failures counted.
            deadline = time.monotonic() + 30
            r = await http.get("/readyz")
            while r.status_code == 200 and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
                r = await http.get("/readyz")
            assert r.status_code == 503 and "disk full" in r.text, r.text
            metrics = (await http.get("/metrics")).text
            assert sample(metrics, "dicomvault_catalogue_commit_blocked") == 1
            assert sample(metrics, "dicomvault_catalogue_commit_failures_total", reason="disk_full") >= 1
            assert await _instances(http, study) < 1 + LATER

            # Space back: ready again; every instance is there exactly once.
            filler.unlink()
            deadline = time.monotonic() + 60
            while await _instances(http, study) < 1 + LATER and time.monotonic() < deadline:
                await asyncio.sleep(0.3)
            assert await _instances(http, study) == 1 + LATER
            assert (await http.get("/readyz")).status_code == 200
            assert await _blocked(http) == 0
            rows, distinct = await _journal(db_url.rsplit("/", 1)[1])
            assert rows == distinct == 1 + LATER
            # One ERROR for the whole episode, however many retries; nothing dead-lettered.
            log = cat.tail(5000)
            assert len([line for line in log.splitlines() if "cannot commit" in line
                        and "error" in line.lower()]) == 1, log[-3000:]
            assert "dead-lettered" not in log and "catalogue commits again" in log
    finally:
        await asyncio.to_thread(cat.stop)
