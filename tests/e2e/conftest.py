"""End-to-end fixtures: the real gateway and catalogue as subprocesses (`dicomvault run …`)
on a real broker, with a SQLite file or the throw-away PostgreSQL database, and dcmtk as the
modality."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset

from dicomvault.bus.broker import free_port
from dicomvault.settings import BusSettings
from tests.conftest import dcmtk, peer_env
from tests.peers.services import FAST_BUS_ENV, ServiceProcess, catalogue_env, gateway_env

AE_TITLE = "DICOMVAULT"
MODALITY = "MODALITY1"


async def _reset_postgres(url: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"), timeout=10)
    try:
        await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    finally:
        await conn.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def any_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'catalogue.db'}"
    return request.getfixturevalue("pg_database")  # a sync fixture: no running loop here


@pytest.fixture
async def db_url(any_db_url: str) -> str:
    """An empty catalogue database: a SQLite file, then the throw-away PostgreSQL database."""
    if any_db_url.startswith("postgresql"):
        await _reset_postgres(any_db_url)
    return any_db_url


class Archive:
    """A catalogue and a gateway process on one bus; started and stopped by the fixture."""

    def __init__(self, folder: Path, bus: BusSettings, db_url: str,
                 env: dict[str, str] | None = None, **gateway: str) -> None:
        self.folder = folder
        self.bus = bus
        self.dimse_port = free_port()
        self.catalogue_port = free_port()
        self.gateway_port = free_port()
        self.catalogue = ServiceProcess("catalogue", catalogue_env(
            bus, db_url, self.catalogue_port, **FAST_BUS_ENV,
            DICOMVAULT_CATALOGUE__STABLE_AFTER_S="2",
        ), folder, ready_url=f"http://127.0.0.1:{self.catalogue_port}/readyz")
        self.gateway = ServiceProcess("gateway", gateway_env(
            bus, self.gateway_port, dimse_port=self.dimse_port, cache_root=folder / "cache",
            catalogue_url=f"http://127.0.0.1:{self.catalogue_port}", **{
                **FAST_BUS_ENV,
                "DICOMVAULT_GATEWAY__AE_TITLE": AE_TITLE,
                "DICOMVAULT_GATEWAY__ALLOWED_CALLING_AES": json.dumps([MODALITY]),
                "DICOMVAULT_GATEWAY__RECONCILE_INTERVAL_S": "1",
                "DICOMVAULT_GATEWAY__STORE_TIMEOUT_S": "5",
                **{f"DICOMVAULT_GATEWAY__{k.upper()}": v for k, v in gateway.items()},
                **(env or {}),
            }), folder, ready_url=f"http://127.0.0.1:{self.gateway_port}/readyz")

    @property
    def catalogue_url(self) -> str:
        return f"http://127.0.0.1:{self.catalogue_port}"

    def start(self) -> Archive:
        self.catalogue.start()
        self.gateway.start()
        return self

    def stop(self) -> None:
        self.gateway.stop()
        self.catalogue.stop()

    def storescu(self, files: list[Path], *extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [dcmtk("storescu"), "-aet", MODALITY, "-aec", AE_TITLE, *extra, "127.0.0.1",
             str(self.dimse_port), *map(str, files)],
            env=peer_env(), capture_output=True, text=True, timeout=300)

    def findscu(self, root: str, *keys: str) -> tuple[int, list[Dataset], str]:
        """findscu -P/-S with ``-k`` keys; (exit code, answers, output)."""
        out = Path(self.folder) / f"find-{free_port()}"
        out.mkdir()
        args = [dcmtk("findscu"), "-aet", MODALITY, "-aec", AE_TITLE,
                "-P" if root == "PATIENT" else "-S", "-v", "-X", "-od", str(out)]
        for key in keys:
            args += ["-k", key]
        done = subprocess.run([*args, "127.0.0.1", str(self.dimse_port)], env=peer_env(),
                              capture_output=True, text=True, timeout=60)
        answers = [dcmread(p) for p in sorted(out.glob("rsp*.dcm"))]
        return done.returncode, answers, done.stdout + done.stderr


@pytest.fixture
def archive(tmp_path: Path, bus_settings: BusSettings, db_url: str
            ) -> Iterator[Callable[..., Archive]]:
    started: list[Archive] = []

    def start(bus: BusSettings | None = None, env: dict[str, str] | None = None,
              **gateway: str) -> Archive:
        a = Archive(tmp_path, bus or bus_settings, db_url, env, **gateway)
        started.append(a)
        return a.start()

    yield start
    for a in started:
        a.stop()
