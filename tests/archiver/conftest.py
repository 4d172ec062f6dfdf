"""Fixtures of the archiver tests: the real catalogue, studies in the cache, the service."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from dicomvault.auth import AuthSettings
from dicomvault.bus.broker import free_port
from dicomvault.events.v1 import events_pb2 as ev
from dicomvault.settings import BusSettings, CacheSettings, HttpSettings
from hsm_archiver.service import run
from hsm_archiver.settings import ArchiverSettings, HsmSection
from tests.peers.catalogue import CatalogueService
from tests.peers.datasets import Study
from tests.peers.services import AUTH_OFF_ENV, bus_env


@pytest.fixture
def catalogue(bus_settings: BusSettings, tmp_path: Path) -> Iterator[CatalogueService]:
    c = CatalogueService(bus_settings, tmp_path / "catalogue")
    try:
        yield c.start()
    finally:
        c.stop()


@pytest.fixture
def hsm_mount(tmp_path: Path) -> Path:
    """A plain folder standing for the HSM mount point, our subdirectory 'vault' and its
    sentinel naming archive HSM1."""
    mount = tmp_path / "hsm"
    (mount / "vault").mkdir(parents=True)
    (mount / "vault" / ".dicomvault-archive").write_text("HSM1\n")
    return mount


def hsm_archive(mount: Path, **kw) -> dict:
    target = {"mount_point": str(mount), "subdirectory": "vault", "require_mount": False,
              "free_space_min_bytes": 0, "fsync": True, "recall_poll_s": 0.1,
              "recall_timeout_s": 60, **kw.pop("hsm", {})}
    return {"id": kw.pop("id", "HSM1"), "kind": "hsm", "rules": kw.pop("rules", [{}]),
            "retry": {"max_retries": 20, "initial_delay_s": 0.2, "max_delay_s": 1.0},
            "readiness_interval_s": 0.2, "hsm": target, **kw}


def make_settings(bus: BusSettings, cache_root: Path, catalogue_url: str, archives: list[dict],
                  **hsm) -> ArchiverSettings:
    return ArchiverSettings(
        bus=bus, http=HttpSettings(port=free_port()),
        cache=CacheSettings(root=cache_root, fsync=False), auth=AuthSettings(enabled=False),
        hsm=HsmSection(catalogue_url=catalogue_url, archives=archives, adopt_retry_s=0.5, **hsm))


def env_of(settings: ArchiverSettings) -> dict[str, str]:
    """The same settings as DICOMVAULT_* environment variables (for a subprocess)."""
    import json

    return {
        **bus_env(settings.bus),
        "DICOMVAULT_BUS__SESSION_TIMEOUT_MS": str(settings.bus.session_timeout_ms),
        "DICOMVAULT_HTTP__PORT": str(settings.http.port),
        "DICOMVAULT_CACHE__ROOT": str(settings.cache.root),
        "DICOMVAULT_CACHE__FSYNC": "false",
        "DICOMVAULT_HSM__CATALOGUE_URL": settings.hsm.catalogue_url,
        "DICOMVAULT_HSM__ADOPT_RETRY_S": "0.5",
        "DICOMVAULT_HSM__ARCHIVES": json.dumps(
            [a.model_dump(mode="json") for a in settings.hsm.archives]),
        "DICOMVAULT_LOG__LEVEL": "INFO",
        **({} if settings.auth.enabled else AUTH_OFF_ENV),
    }


@contextlib.asynccontextmanager
async def running(settings: ArchiverSettings) -> AsyncIterator[str]:
    """The service in this process (same code as the container runs); yields its base URL."""
    stop = asyncio.Event()
    task = asyncio.create_task(run(settings, stop))
    url = f"http://127.0.0.1:{settings.http.port}"
    try:
        async with httpx.AsyncClient() as client:
            deadline = time.monotonic() + 60
            while True:
                if task.done():
                    task.result()
                    raise AssertionError("service stopped")
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(url + "/readyz")).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise AssertionError("service not ready")
                await asyncio.sleep(0.1)
        yield url
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)


def stable(study: Study, modalities=("CT", "OT"), revision: int = 1) -> ev.StudyStable:
    return ev.StudyStable(study_instance_uid=study.study_uid, patient_id=study.patient_id,
                          number_of_series=len(study.series),
                          number_of_instances=len(study.sop_uids), modalities=list(modalities),
                          calling_aes=["MODALITY1"], station_names=["CT01"], revision=revision)
