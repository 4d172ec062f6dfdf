"""Fixtures of the exporter tests: cache tier, the real catalogue, TLS material, Orthanc."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import trustme

from dicomvault.auth import AuthSettings
from dicomvault.bus import Publisher, ensure_topics
from dicomvault.settings import CacheSettings
from dicomvault.store import FileStore
from stow_exporter.catalogue import CatalogueClient
from stow_exporter.policies import Hosted
from stow_exporter.service import build_hosted
from stow_exporter.settings import ExporterSection, ExporterSettings
from stow_exporter.spec import Exporter
from tests.exporter.servers import Catalogue, serve
from tests.peers.orthanc import Orthanc


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def cache(tmp_path: Path) -> FileStore:
    return FileStore(tmp_path / "cache", fsync=False)


@pytest.fixture
async def catalogue(cache: FileStore, tmp_path: Path) -> AsyncIterator[tuple[Catalogue, str]]:
    """The real catalogue on a loopback port: the exporter's HTTP client asks it where a
    study's instances are."""
    real = Catalogue(tmp_path / "catalogue", cache)
    try:
        async with serve(real) as port:
            yield real, f"http://127.0.0.1:{port}"
    finally:
        await real.real.close()


@dataclass
class Tls:
    ca: trustme.CA
    ca_file: Path
    good: Path            # certificate for 127.0.0.1 / localhost, signed by the trusted CA
    wrong_name: Path      # signed by the trusted CA, but for another host name
    untrusted: Path       # for 127.0.0.1, signed by a CA the exporter does not know


@pytest.fixture(scope="session")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Tls:
    d = tmp_path_factory.mktemp("tls")
    ca, stranger = trustme.CA(), trustme.CA()
    ca.cert_pem.write_to_path(str(d / "ca.pem"))
    paths = {}
    for name, issuer, hosts in (("good", ca, ("127.0.0.1", "localhost")),
                                ("wrong", ca, ("pacs.elsewhere.example",)),
                                ("untrusted", stranger, ("127.0.0.1", "localhost"))):
        paths[name] = d / f"{name}.pem"
        issuer.issue_cert(*hosts).private_key_and_cert_chain_pem.write_to_path(str(paths[name]))
    return Tls(ca, d / "ca.pem", paths["good"], paths["wrong"], paths["untrusted"])


@pytest.fixture
def secrets_dir(tmp_path: Path) -> Path:
    d = tmp_path / "secrets"
    (d / "pacs-token").mkdir(parents=True)
    (d / "pacs-token" / "token").write_text("s3cr3t-token\n")
    (d / "pacs-basic").mkdir()
    (d / "pacs-basic" / "username").write_text("vault")
    (d / "pacs-basic" / "password").write_text("pa:ss word")
    return d


def exporter(exporter_id: str = "EXP1", url: str = "http://127.0.0.1:9/dicom-web",
             properties: dict | None = None, **spec) -> Exporter:
    """An Exporter spec as an administrator writes it (camelCase, dcm4chee property names)."""
    doc = {"exporterID": exporter_id, "uri": "stowrs:webapp",
           "webApplication": {"name": "webapp", "url": url, "properties": properties or {}},
           "retry": {"maxRetries": 0, "initialDelaySeconds": 0}, **spec}
    return Exporter.model_validate(doc)


@pytest.fixture
def make_settings(tmp_path: Path, cache: FileStore, secrets_dir: Path, tls: Tls):
    def make(catalogue_url: str, **section) -> ExporterSettings:
        fields = {"secrets_dir": secrets_dir, "catalogue_url": catalogue_url,
                  "ca_file": tls.ca_file, "tick_s": 0.05, "request_timeout_s": 20.0, **section}
        return ExporterSettings(cache=CacheSettings(root=cache.root, fsync=False),
                                auth=AuthSettings(enabled=False),
                                exporter=ExporterSection(**fields))
    return make


@pytest.fixture
async def hosting(make_settings, catalogue, bus_settings):
    """Build hosted exporters on the real broker (their job facts go to the jobs topic)."""
    opened: list[Hosted] = []
    clients: list[CatalogueClient] = []
    await ensure_topics(bus_settings)
    publisher = Publisher(bus_settings, client_id="exporter-tests")
    await publisher.start()

    def host(exp: Exporter, clock=None, **section) -> Hosted:
        settings = make_settings(catalogue[1], **section).model_copy(update={"bus": bus_settings})
        client = CatalogueClient(settings.exporter.catalogue_url, 10)
        clients.append(client)
        kwargs = {"clock": clock} if clock else {"clock": lambda: datetime.now().astimezone()}
        h = build_hosted(settings, [exp], publisher, client, **kwargs)[0]
        opened.append(h)
        return h

    yield host
    for h in opened:
        await h.sender.close()
    for c in clients:
        await c.close()
    await publisher.stop()


async def drain(h: Hosted, timeout_s: float = 60.0) -> None:
    """Run the exporter's queue until nothing is pending."""
    assert h.queue is not None
    stop = asyncio.Event()
    task = asyncio.create_task(h.queue.run(stop))
    try:
        await asyncio.sleep(0)
        await asyncio.wait_for(h.queue.idle.wait(), timeout_s)
    finally:
        stop.set()
        h.queue.wake()
        await task


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Orthanc]:
    with Orthanc(tmp_path_factory.mktemp("orthanc"), aet="ORTHANC") as o:
        yield o
