"""Scale-out: two catalogue replicas (real processes, one consumer group, one PostgreSQL)
drain a backlog while one of them is killed and restarted; every fact is applied once and
each study's facts in the order they were published."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from catalogue.db import make_engine, sessions
from catalogue.models import Instance, Journal, Study
from catalogue.rebuild import decode, rebuild
from catalogue.settings import CatalogueSettings
from dicomvault.bus import Publisher
from dicomvault.bus.broker import free_port
from dicomvault.events import Event
from dicomvault.settings import BusSettings
from tests.catalogue.conftest import reset_postgres
from tests.catalogue.helpers import instance_stored, total, uid, wait_until
from tests.peers.services import FAST_BUS_ENV, ServiceProcess, catalogue_env

STUDIES = 8


class Replica:
    """One `dicomvault run catalogue` process of the group, with its own HTTP port."""

    def __init__(self, name: str, bus: BusSettings, url: str, tmp_path: Path) -> None:
        port = free_port()
        # The group of this test only (the session broker's "catalogue" group is other tests').
        group = f"catalogue-{bus.topics.instances}"
        folder = tmp_path / name
        folder.mkdir()
        self.process = ServiceProcess("catalogue", catalogue_env(
            bus, url, port, **FAST_BUS_ENV, DICOMVAULT_CATALOGUE__STABLE_AFTER_S="3600",
            DICOMVAULT_CATALOGUE__GROUP_ID=group,
            DICOMVAULT_CATALOGUE__BATCH_MAX_RECORDS="25"), folder,
            ready_url=f"http://127.0.0.1:{port}/readyz")
        self.client = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10)

    async def start(self) -> None:
        await asyncio.to_thread(self.process.start, 90.0)

    async def close(self) -> None:
        await asyncio.to_thread(self.process.stop)
        await self.client.aclose()


async def journal_by_study(url: str) -> tuple[int, int, dict[str, list[str]]]:
    """(journal rows, distinct ce_ids, each study's SOP Instance UIDs in journal order)."""
    engine = make_engine(url)
    try:
        async with sessions(engine)() as s:
            rows_n = int(await s.scalar(select(func.count()).select_from(Journal)))
            distinct = int(await s.scalar(select(func.count(func.distinct(Journal.ce_id)))))
            order: dict[str, list[str]] = defaultdict(list)
            for row in (await s.scalars(select(Journal).order_by(Journal.seq))).all():
                p = decode(row).payload
                order[p.study_instance_uid].append(p.sop_instance_uid)
            # A study's revision is its last fact's seq: the last one published.
            for study in order:
                revision = (await s.get(Study, study)).revision
                last = await s.get(Instance, order[study][-1])
                assert last.revision == revision
        return rows_n, distinct, order
    finally:
        await engine.dispose()


@pytest.mark.e2e
async def test_two_replicas_one_killed_apply_every_fact_once_in_order(
        pg_database: str, bus_settings: BusSettings, tmp_path: Path) -> None:
    await reset_postgres(pg_database)
    topic = bus_settings.topics.instances
    studies = [uid() for _ in range(STUDIES)]
    published: dict[str, list[Event]] = {s: [] for s in studies}

    async def send(pub: Publisher, per_study: int, resend: int = 0) -> None:
        """``per_study`` new facts of every study, after ``resend`` of its earlier ones again
        (a gateway's redelivery: the same ce_id)."""
        for study in studies:
            for event in published[study][:resend]:
                await pub.publish(topic, event, key=study)
            for _ in range(per_study):
                event = instance_stored(study, f"{study}.1",
                                        instance_number=str(len(published[study]) + 1))
                published[study].append(event)
                await pub.publish(topic, event, key=study)

    a = Replica("a", bus_settings, pg_database, tmp_path)
    b = Replica("b", bus_settings, pg_database, tmp_path)
    try:
        async with Publisher(bus_settings, "test") as pub:
            # A backlog waits for two replicas of one group on one database.
            await send(pub, 60)
            await asyncio.gather(a.start(), b.start())

            async def some() -> bool:
                return await total(b.client, "IMAGE") >= 60

            await wait_until(some, "the replicas draining")
            # One replica dies mid-batch (kill -9): its transaction is rolled back, its
            # offsets were not committed, the other takes its partitions over.
            await asyncio.to_thread(a.process.kill)
            await send(pub, 40, resend=10)
            # It comes back and the group splits the partitions again while facts flow.
            await a.start()
            await send(pub, 40, resend=5)
        every = sum(len(v) for v in published.values())

        async def all_of_them() -> bool:
            return await total(b.client, "IMAGE") == every

        await wait_until(all_of_them, "every instance catalogued", timeout=180)
    finally:
        await a.close()
        await b.close()

    # Exactly once: one journal row per ce_id, no more, no fewer.
    rows_n, distinct, order = await journal_by_study(pg_database)
    assert rows_n == distinct == every
    # Each study's facts were applied in the order they were published.
    for study in studies:
        assert order[study] == [e.payload.sop_instance_uid for e in published[study]]
    # And the projections are what a replay of the journal gives.
    report = await rebuild(CatalogueSettings(database={"url": pg_database}), check_only=True)
    assert report.ok, report.differences
