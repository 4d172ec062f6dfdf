"""Fixtures of the optical-burner tests: a cache with generated studies, the real catalogue
(in this process, or as the service on the broker for the service tests), and an optical
archive whose emitted events are collected."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from dicomvault.settings import BusSettings
from dicomvault.store import FileStore
from optical_burner.archive import OpticalArchive, Topics
from optical_burner.catalogue import CatalogueClient
from optical_burner.settings import OpticalSection
from optical_burner.volumes import VolumeStore
from tests.optical.catalogue_inprocess import InProcessCatalogue
from tests.peers.catalogue import CatalogueService
from tests.peers.datasets import Study, write_study


class Emitted(list):
    """(topic, payload, key, event id) of every event the archive emitted."""

    async def __call__(self, topic, payload, key, event_id) -> None:
        self.append((topic, payload, key, event_id))

    def of(self, name: str) -> list:
        return [p for _t, p, _k, _i in self if type(p).__name__ == name]


@pytest.fixture
async def catalogue(tmp_path: Path) -> AsyncIterator[InProcessCatalogue]:
    c = InProcessCatalogue(tmp_path / "catalogue")
    yield c
    await c.close()


@pytest.fixture
def catalogue_service(bus_settings: BusSettings, tmp_path: Path
                      ) -> Iterator[CatalogueService]:
    """The real catalogue service (a subprocess on the test's topics), for the service tests."""
    c = CatalogueService(bus_settings, tmp_path / "catalogue-service")
    try:
        yield c.start()
    finally:
        c.stop()


@pytest.fixture
def cache(tmp_path: Path) -> FileStore:
    return FileStore(tmp_path / "cache", fsync=False)


@pytest.fixture
def new_study(tmp_path: Path, catalogue: InProcessCatalogue, cache: FileStore
              ) -> Callable[..., Study]:
    counter = iter(range(1000))

    def make(**kw) -> Study:
        n = next(counter)
        study = write_study(tmp_path / f"study{n}", patient_id=f"PAT{n:03d}", seed=n, **kw)
        catalogue.ingest(study, cache)
        return study

    return make


@pytest.fixture
def optical_config(tmp_path: Path) -> Callable[..., OpticalSection]:
    def make(**overrides) -> OpticalSection:
        base = {
            "archive_id": "OPTICAL1", "volume_store": tmp_path / "volumes",
            "mount_path": tmp_path / "mnt", "rules": [{"modalities": ["CT"]}],
            "burner": {"backend": "iso-folder", "iso_folder": tmp_path / "iso",
                       "retry_backoff_s": 0.01, "max_attempts": 2, "retry_after_s": 0},
            "sweep_s": 0.1,
        }
        burner = {**base["burner"], **overrides.pop("burner", {})}
        return OpticalSection.model_validate({**base, **overrides, "burner": burner})

    return make


@pytest.fixture
async def make_archive(cache: FileStore, catalogue: InProcessCatalogue
                       ) -> AsyncIterator[Callable[..., tuple[OpticalArchive, Emitted]]]:
    clients: list[CatalogueClient] = []

    def make(cfg: OpticalSection, locations=None) -> tuple[OpticalArchive, Emitted]:
        client = CatalogueClient("http://catalogue.test", transport=catalogue.transport())
        clients.append(client)
        emitted = Emitted()
        arc = OpticalArchive(cfg, VolumeStore(cfg.volume_store, fsync=False), cache, client,
                             emitted, Topics(studies="studies", volumes="volumes"),
                             locations=locations)
        return arc, emitted

    yield make
    for c in clients:
        await c.close()
