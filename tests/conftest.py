"""Session fixtures: the real broker, a throw-away PostgreSQL database, data folders."""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from dicomvault.bus.broker import EmbeddedBroker, free_port, share_ports
from dicomvault.settings import BusSettings

PG_ADMIN_DSN = os.environ.get("DICOMVAULT_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")

DCMTK = Path("/usr/bin")

# `make test` runs the suite in pytest-xdist workers (separate processes, each with its own
# broker and PostgreSQL database); each picks its free ports from its own share of the range.
if os.environ.get("PYTEST_XDIST_WORKER", "").startswith("gw"):
    share_ports(int(os.environ["PYTEST_XDIST_WORKER"][2:]),
                int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))


def dcmtk(tool: str) -> str:
    """Absolute path of a dcmtk tool (pynetdicom's console scripts shadow them in a venv)."""
    path = DCMTK / tool
    if not path.exists():
        raise RuntimeError(f"dcmtk {tool} missing at {path}: run `make peers` (apt-get install dcmtk)")
    return str(path)


def peer_env() -> dict[str, str]:
    """Environment for dcmtk / Orthanc: Nagle off (see TEST-INFRA.md)."""
    return {**os.environ, "TCP_NODELAY": "1"}


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    """One real Tansu broker for the session (memory storage, loopback, free port)."""
    log = tmp_path_factory.mktemp("broker") / "tansu.log"
    b = EmbeddedBroker(log_path=log)
    b.start()
    yield b
    b.stop()


@pytest.fixture
def bus_settings(broker: EmbeddedBroker) -> BusSettings:
    """Bus settings on the session broker with per-test topic names (no cross-talk)."""
    suffix = uuid.uuid4().hex[:8]
    return BusSettings(
        bootstrap_servers=broker.bootstrap_servers,
        topics={
            "instances": f"t{suffix}.instances",
            "studies": f"t{suffix}.studies",
            "jobs": f"t{suffix}.jobs",
            "job_commands": f"t{suffix}.job-commands",
            "dlq": f"t{suffix}.dlq",
            "volumes": f"t{suffix}.volumes",
            "audit": f"t{suffix}.audit",
        },
        health_check_interval_s=1.0,
        retry_backoff_s=0.05,
        retry_backoff_max_s=0.5,
        session_timeout_ms=6000,
    )


async def _pg(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_ADMIN_DSN, timeout=10)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A throw-away PostgreSQL database on the server of this machine; dropped afterwards.

    Yields the SQLAlchemy async URL. Fails loudly if the server is not there.
    """
    name = f"dicomvault_test_{uuid.uuid4().hex[:10]}"
    try:
        asyncio.run(_pg(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001
        raise RuntimeError(
            f"PostgreSQL is required at {PG_ADMIN_DSN} (start it with "
            "`pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`): {exc!r}"
        ) from exc
    yield f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    asyncio.run(_pg(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'catalogue.db'}"


@pytest.fixture
def port() -> int:
    return free_port()


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    d = tmp_path / "var"
    d.mkdir()
    yield d
    shutil.rmtree(d, ignore_errors=True)
