"""Fixtures of the commitment tests: the service in-process (its real `run`), the real
catalogue service as a subprocess, Orthanc, and readers of the facts on the bus."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaConsumer

from commitment.service import run
from commitment.settings import CommitmentSettings
from dicomvault.bus.broker import free_port
from dicomvault.events import Event
from dicomvault.settings import BusSettings
from tests.peers.services import ServiceProcess, catalogue_env
from tests.peers.wait import wait_until

AE = "DICOMVAULT"


class Vault:
    """A running commitment service: its settings, URLs and ports."""

    def __init__(self, settings: CommitmentSettings) -> None:
        self.settings = settings
        self.stop = asyncio.Event()
        self.task: asyncio.Task | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.settings.http.port}"

    @property
    def dimse_port(self) -> int:
        return self.settings.commitment.dimse_port

    async def commitments(self, role: str | None = None) -> list[dict]:
        async with httpx.AsyncClient() as c:
            r = await c.get(f"{self.url}/api/v1/commitments",
                            params={"role": role} if role else {})
            r.raise_for_status()
            return r.json()["commitments"]


@pytest.fixture
async def start_vault(tmp_path: Path) -> AsyncIterator[Callable]:
    """start_vault(bus_settings, modalities=…, **commitment section) -> Vault (stopped after)."""
    started: list[Vault] = []

    async def start(bus: BusSettings, *, dimse_port: int | None = None, **section) -> Vault:
        settings = CommitmentSettings(
            bus=bus, http={"host": "127.0.0.1", "port": free_port()},
            cache={"root": tmp_path / "cache", "fsync": False},
            log={"level": "INFO", "json_format": False}, auth={"enabled": False},
            commitment={"ae_title": AE, "dimse_host": "127.0.0.1",
                        "dimse_port": dimse_port or free_port(), "dimse_timeout_s": 10,
                        "acse_timeout_s": 10, **section})
        vault = Vault(settings)
        vault.task = asyncio.create_task(run(settings, vault.stop))
        started.append(vault)

        async def ready() -> bool:
            if vault.task.done():
                vault.task.result()
            try:
                async with httpx.AsyncClient() as c:
                    return (await c.get(f"{vault.url}/readyz", timeout=1)).status_code == 200
            except httpx.HTTPError:
                return False

        try:
            await wait_until(ready, timeout=60, what="commitment service ready")
        except AssertionError as exc:
            async with httpx.AsyncClient() as c:
                why = (await c.get(f"{vault.url}/readyz", timeout=5)).text
            raise AssertionError(f"commitment service not ready: {why}") from exc
        return vault

    yield start
    for vault in started:
        vault.stop.set()
        await asyncio.wait_for(vault.task, 60)


@pytest.fixture
def catalogue(bus_settings: BusSettings, tmp_path: Path, sqlite_url: str):
    """The real catalogue service (`dicomvault run catalogue`), fed by the bus; yields its URL."""
    port = free_port()
    env = catalogue_env(bus_settings, sqlite_url, port, DICOMVAULT_HTTP__HOST="127.0.0.1",
                        DICOMVAULT_LOG__JSON_FORMAT="false")
    ready = f"http://127.0.0.1:{port}/readyz"
    service = ServiceProcess("catalogue", env, tmp_path, ready_url=ready)
    try:
        service.start()
        yield f"http://127.0.0.1:{port}"
    finally:
        service.stop()


async def read_facts(bus: BusSettings, topic: str, until_pred: Callable[[list[Event]], bool],
                     timeout_s: float = 60.0) -> list[Event]:
    """Every event on `topic` from the beginning, until the predicate holds."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bus.bootstrap_servers,
                                auto_offset_reset="earliest")
    await consumer.start()
    out: list[Event] = []
    deadline = time.monotonic() + timeout_s
    try:
        while not until_pred(out):
            if time.monotonic() > deadline:
                raise TimeoutError(f"facts on {topic}: {[e.type for e in out]}")
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                out.extend(Event.from_record(r.value, r.headers) for r in records)
    finally:
        await consumer.stop()
    return out
