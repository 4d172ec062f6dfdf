"""Builders of catalogue test events, the catalogue service run in-process, and reading what
it publishes."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import itertools
import random
import time
from datetime import UTC, datetime, timedelta

import httpx
from aiokafka import AIOKafkaConsumer

from catalogue.service import run
from catalogue.settings import CatalogueSettings
from dicomvault.bus.broker import free_port
from dicomvault.events import Event
from dicomvault.events.v1 import events_pb2 as ev
from dicomvault.settings import BusSettings
from tests.peers.wait import wait_until as _wait_until

ROOT = "1.2.826.0.1.3680043.8.498"
_counter = itertools.count(1)
CT = "1.2.840.10008.5.1.4.1.1.2"
MR = "1.2.840.10008.5.1.4.1.1.4"
ELE = "1.2.840.10008.1.2.1"


def uid() -> str:
    """A fresh, valid UID (unique across the test session)."""
    return f"{ROOT}.{random.randint(1, 10**9)}.{next(_counter)}"


def instance_stored(study: str, series: str, sop: str | None = None, *,
                    received: datetime | None = None, body: bytes | None = None,
                    **fields) -> Event:
    """An InstanceStored event as the gateway publishes it (fields override the defaults)."""
    sop = sop or uid()
    body = body if body is not None else sop.encode()
    received = received or datetime.now(UTC)
    values = {
        "sop_class_uid": CT, "patient_id": "PAT-1", "patient_name": "Doe^John",
        "study_date": "20240115", "study_time": "101500", "modality": "CT",
        "transfer_syntax_uid": ELE, "calling_ae": "MODALITY1", "called_ae": "DICOMVAULT",
        "tier": "cache", "source": "dimse", "series_number": "1", "instance_number": "1",
        "accession_number": "ACC1", "study_description": "Head", "station_name": "CT01",
        **fields,
    }
    msg = ev.InstanceStored(
        sop_instance_uid=sop, study_instance_uid=study, series_instance_uid=series,
        size_bytes=len(body), sha256=hashlib.sha256(body).hexdigest(),
        storage_key=f"{study}/{series}/{sop}.dcm", **values)
    msg.received_time.FromDatetime(received)
    return Event(payload=msg, source="dicomvault/gateway", subject=study, time=received)


def study_archived(study: str, tier: str = "hsm", archive_id: str = "hsm1",
                   verified: bool = True, n: int = 1) -> Event:
    msg = ev.StudyArchived(study_instance_uid=study, tier=tier, archive_id=archive_id,
                           location=f"/mnt/hsm/{study}", number_of_instances=n, size_bytes=100,
                           verified=verified, job_id="job-1")
    return Event(payload=msg, source="dicomvault/hsm-archiver", subject=study)


def study_evicted(study: str, tier: str, archive_id: str = "") -> Event:
    msg = ev.StudyEvicted(study_instance_uid=study, tier=tier, archive_id=archive_id,
                          reason="test")
    return Event(payload=msg, source="dicomvault/hsm-archiver", subject=study)


def ago(seconds: float) -> datetime:
    return datetime.now(UTC) - timedelta(seconds=seconds)


TIMEOUT_S = 90.0


# The catalogue's API answers errors while it starts: those count as "not yet".
wait_until = functools.partial(_wait_until, timeout=TIMEOUT_S, interval=0.1,
                               tolerate=(httpx.HTTPError,))


async def read_topic(bus: BusSettings, topic: str, idle_s: float = 1.0) -> list:
    """Every record of a topic so far (reads until it has been idle for ``idle_s``)."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bus.bootstrap_servers,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    records = []
    try:
        quiet_since = time.monotonic()
        while time.monotonic() - quiet_since < idle_s:
            batch = await consumer.getmany(timeout_ms=200)
            for recs in batch.values():
                records += recs
                quiet_since = time.monotonic()
    finally:
        await consumer.stop()
    return records


async def total(client: httpx.AsyncClient, level: str, **filters: str) -> int:
    r = await client.post("/api/v1/find", json={"level": level, "filters": filters, "limit": 1})
    r.raise_for_status()
    return r.json()["total"]


class InProcess:
    """The service's ``run`` as a task of the test's event loop."""

    def __init__(self, settings: CatalogueSettings) -> None:
        self.settings = settings
        self.stop = asyncio.Event()
        self.task: asyncio.Task | None = None
        self.client = httpx.AsyncClient(base_url=f"http://127.0.0.1:{settings.http.port}",
                                        timeout=10)

    async def __aenter__(self) -> InProcess:
        self.task = asyncio.create_task(run(self.settings, self.stop))

        async def ready() -> bool:
            if self.task.done():
                self.task.result()  # raise what made it stop
            return (await self.client.get("/readyz")).status_code == 200

        await wait_until(ready, "catalogue ready")
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.stop.set()
        await asyncio.wait_for(self.task, 60)
        await self.client.aclose()


def settings_for(bus: BusSettings, url: str, **catalogue) -> CatalogueSettings:
    return CatalogueSettings(bus=bus, database={"url": url}, http={"port": free_port()},
                             catalogue=catalogue, auth={"enabled": False})
