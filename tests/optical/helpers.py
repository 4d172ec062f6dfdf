"""Helpers shared by the optical burner's tests: reading media back, the service under test
and its jobs, the volumes catalogue."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pycdlib
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from catalogue.db import make_engine, migrate, sessions
from catalogue.volumes_api import volumes_router
from catalogue.volumes_projection import VOLUME_FACTS, OpticalVolume, apply_volumes
from dicomvault.bus.broker import free_port
from dicomvault.events import Event
from dicomvault.events.v1 import events_pb2 as ev
from dicomvault.store import FileStore
from optical_burner.burning import burn_volume
from optical_burner.service import run
from optical_burner.settings import OpticalSettings
from tests.peers.catalogue import CatalogueService
from tests.peers.datasets import Study
from tests.peers.wait import wait_until as _wait_until

XORRISO = "/usr/bin/xorriso"


def extract(image: Path, dest: Path) -> list[str]:
    """Copy every file of an ISO 9660 image to ``dest`` under its level-1 name."""
    iso = pycdlib.PyCdlib()
    iso.open(str(image))
    names = []
    try:
        for dirpath, _dirs, files in iso.walk(iso_path="/"):
            for name in files:
                full = dirpath.rstrip("/") + "/" + name
                names.append(full)
                rel = "/".join(p.split(";")[0].rstrip(".") for p in full.strip("/").split("/"))
                out = dest / rel
                out.parent.mkdir(parents=True, exist_ok=True)
                with open(out, "wb") as fh:
                    iso.get_file_from_iso_fp(fh, iso_path=full)
    finally:
        iso.close()
    return names


def archived_ids(emitted) -> list[str]:
    return [i for _t, p, _k, i in emitted if type(p).__name__ == "StudyArchived"]


def snapshot(arc) -> dict[str, str]:
    return {v.label: v.model_dump_json() for v in arc.store.all()}


def same_as_cache(dest: FileStore, cache: FileStore, study_uid: str) -> int:
    keys = [k for k, _m in cache.keys() if k.startswith(study_uid)]
    for key in keys:
        assert dest.get(key) == cache.get(key), key
    return len(keys)


STORE, RETRIEVE = "OPTICAL1", "OPTICAL1-retrieve"

# The catalogue peer's client blocks: these tests poll it off the event loop, which runs the
# service under test.
wait_until = functools.partial(_wait_until, thread=True, interval=0.1)


@pytest.fixture(name="catalogue")
def real_catalogue(catalogue_service: CatalogueService) -> CatalogueService:
    """``catalogue`` for a test module that imports this fixture: the real service (the
    conftest's in-process one has no broker)."""
    return catalogue_service


@pytest.fixture(name="settings")
def service_settings(tmp_path, bus_settings, optical_config, catalogue) -> OpticalSettings:
    """``settings`` for a test module that imports this fixture: the service's, on the test's
    broker and catalogue."""
    return OpticalSettings(
        bus=bus_settings, http={"host": "127.0.0.1", "port": free_port()},
        cache={"root": tmp_path / "cache", "fsync": False}, auth={"enabled": False},
        optical=optical_config(
            catalogue_url=catalogue.url, media_recheck_s=600, adopt_retry_s=0.5,
            retry={"max_retries": 20, "initial_delay_s": 0.2, "max_delay_s": 1.0}))


@contextlib.asynccontextmanager
async def running(settings: OpticalSettings) -> AsyncIterator[httpx.AsyncClient]:
    """The service in this process (the code the container runs); yields a client of its API."""
    stop = asyncio.Event()
    task = asyncio.create_task(run(settings, stop))
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{settings.http.port}",
                                     timeout=30) as http:
            deadline = time.monotonic() + 60
            while True:
                if task.done():
                    task.result()
                    raise AssertionError("optical-burner stopped")
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get("/readyz")).status_code == 200:
                        break
                assert time.monotonic() < deadline, "optical-burner never became ready"
                await asyncio.sleep(0.1)
            yield http
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)


def stable(study: Study, modality: str = "CT", revision: int = 1) -> ev.StudyStable:
    return ev.StudyStable(study_instance_uid=study.study_uid, patient_id=study.patient_id,
                          number_of_instances=len(study.sop_uids), modalities=[modality],
                          calling_aes=["MODALITY1"], revision=revision)


async def command(catalogue: CatalogueService, path: str, **body) -> None:
    """The administrator's REST call: the catalogue publishes JobCommandIssued."""
    r = await asyncio.to_thread(catalogue.post, path, **body)
    assert r.status_code == 202, r.text


def volume_facts(emitted) -> list:
    return [p for _t, p, _k, _i in emitted if isinstance(p, VOLUME_FACTS)]


class VolumesCatalogue:
    """The volumes projection and REST API on a fresh SQLite catalogue: ``feed`` journals and
    applies facts, ``http`` asks the API, ``replay_matches`` rebuilds a fresh database from
    the journal and compares the rows."""

    def __init__(self, tmp_path) -> None:
        self.tmp_path = tmp_path
        self.engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'volumes.db'}")

    async def __aenter__(self) -> VolumesCatalogue:
        await migrate(self.engine)
        self.maker = sessions(self.engine)
        self.feed = Journal(self.maker)
        app = FastAPI()
        app.include_router(volumes_router(self.maker))
        self.http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                      base_url="http://cat")
        return self

    async def replay_matches(self) -> bool:
        fresh = make_engine(f"sqlite+aiosqlite:///{self.tmp_path / 'replay.db'}")
        try:
            await migrate(fresh)
            replay = sessions(fresh)
            await apply_all(replay, self.feed)
            return await rows(replay) == await rows(self.maker)
        finally:
            await fresh.dispose()

    async def __aexit__(self, *_exc) -> None:
        await self.http.aclose()
        await self.engine.dispose()


async def offline_volume(arc, label: str, *studies) -> None:
    """The studies written onto ``label``, which is closed, burned, verified and released:
    the disc is offline."""
    for study in studies:
        await arc.archive_study(study.study_uid)
    await arc.close_volume(label)
    await burn_volume(arc, label)
    await arc.release_volume(label)


async def apply_all(maker, events: list[Event]) -> None:
    for event in events:
        async with maker() as session, session.begin():
            await apply_volumes(session, event)


class Journal(list):
    """The facts as the catalogue journals them (one event each, in order) and applies them."""

    def __init__(self, maker) -> None:
        super().__init__()
        self.maker = maker

    async def __call__(self, facts) -> None:
        events = [Event(payload=p, source="dicomvault/optical-burner",
                        subject=getattr(p, "study_instance_uid", "")) for p in facts]
        self.extend(events)
        await apply_all(self.maker, events)


async def rows(maker) -> list[dict]:
    async with maker() as session:
        found = (await session.scalars(select(OpticalVolume))).all()
        return [{c.name: getattr(r, c.name) for c in OpticalVolume.__table__.columns}
                for r in found]


async def verified(http: httpx.AsyncClient, label: str) -> None:
    """Close the volume and let the sweep burn and verify it."""
    assert (await http.post(f"/api/v1/volumes/{label}/close")).status_code == 200
    for _ in range(600):
        if (await http.get(f"/api/v1/volumes/{label}")).json()["state"] == "Verified":
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{label} was not verified")
