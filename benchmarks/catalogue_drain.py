"""Catalogue drain benchmark: how many InstanceStored events/s one catalogue applies from a
backlog, on SQLite and on PostgreSQL.

A real Tansu broker gets N InstanceStored events (default 100 studies × 200 instances, full
protobuf payloads like the gateway's, keyed by Study Instance UID) through the real Publisher.
Then a real catalogue process (`dicomvault run catalogue`) starts on an empty database — a
SQLite file, then a fresh PostgreSQL database — in a new consumer group, and the benchmark
polls the instances table until every event is projected. Printed per back end: the drain
rate (events projected between the first and the last committed batch, over that time), the
whole time from process start (imports, migrations, group join) and the catalogue's CPU
time per event during the drain (the figure that does not depend on how busy the machine is).

    make bench      # or: .venv/bin/python -m benchmarks.catalogue_drain --help
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import shutil
import sqlite3
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import asyncpg

from benchmarks.interpreter import describe
from dicomvault.bus import Publisher
from dicomvault.bus.broker import EmbeddedBroker, free_port
from dicomvault.events import Event
from dicomvault.events.v1 import events_pb2 as ev
from dicomvault.settings import BusSettings
from tests.peers.services import ServiceProcess, catalogue_env

ROOT = "1.2.826.0.1.3680043.8.498"
PG_ADMIN_DSN = os.environ.get("DICOMVAULT_BENCH_PG",
                              "postgresql://postgres@127.0.0.1:5432/postgres")
TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Drain:
    backend: str
    events: int
    drain_s: float  # first committed batch → last
    total_s: float  # process start → last
    cpu_s: float  # the catalogue's CPU seconds during the drain (both threads)

    @property
    def rate(self) -> float:
        return self.events / self.drain_s if self.drain_s > 0 else float("inf")


def instance_stored(study: int, series: str, study_uid: str, n: int) -> Event:
    """One InstanceStored as the gateway publishes it for a 512×512 CT slice."""
    sop = f"{study_uid}.{n + 1}"
    msg = ev.InstanceStored(
        sop_instance_uid=sop, study_instance_uid=study_uid, series_instance_uid=series,
        sop_class_uid="1.2.840.10008.5.1.4.1.1.2", transfer_syntax_uid="1.2.840.10008.1.2.1",
        patient_id=f"PAT{study % 40:05d}", patient_name=f"Patient^Number{study % 40}",
        patient_birth_date="19700101", patient_sex="F", study_date="20261203",
        study_time="101500", accession_number=f"ACC{study:06d}", study_id=str(study),
        study_description="CT chest with contrast", referring_physician_name="Ref^Doctor",
        institution_name="General Hospital", modality="CT", series_number="1",
        series_description="Axial 1mm", series_date="20261203", series_time="101600",
        body_part_examined="CHEST", station_name="CT01", instance_number=str(n + 1),
        content_date="20261203", content_time="101700", number_of_frames=1,
        specific_character_set="ISO_IR 100", size_bytes=525_312,
        sha256=hashlib.sha256(sop.encode()).hexdigest(), calling_ae="CT01",
        called_ae="DICOMVAULT", tier="cache", source="dimse",
        storage_key=f"{study_uid}/{series}/{sop}.dcm")
    now = datetime.now(UTC)
    msg.received_time.FromDatetime(now)
    return Event(payload=msg, source="dicomvault/gateway", subject=study_uid, time=now)


async def preload(bus: BusSettings, studies: int, per_study: int) -> float:
    """Publish the backlog (acks=all, one by one as the gateway does); returns seconds."""
    start = time.perf_counter()
    async with Publisher(bus, "bench-preload") as pub:
        for s in range(studies):
            study_uid = f"{ROOT}.{uuid.uuid4().int % 10**12}.{s + 1}"
            series = f"{study_uid}.0"
            for n in range(per_study):
                await pub.publish(bus.topics.instances, instance_stored(s, series, study_uid, n),
                                  key=study_uid)
    return time.perf_counter() - start


def count_sqlite(path: Path) -> int:
    if not path.exists():
        return 0
    try:
        with sqlite3.connect(path, timeout=5) as db:
            return db.execute("select count(*) from instances").fetchone()[0]
    except sqlite3.OperationalError:  # not migrated yet
        return 0


class Counter:
    """Counts the instances table, on one connection (a new PostgreSQL connection per poll
    would fork a server process each time and slow the drain it measures)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.conn: asyncpg.Connection | None = None

    async def __call__(self) -> int:
        if self.url.startswith("sqlite"):
            return await asyncio.to_thread(count_sqlite, Path(self.url.split(":///", 1)[1]))
        if self.conn is None:
            self.conn = await asyncpg.connect(self.url.replace("postgresql+asyncpg",
                                                               "postgresql"))
        try:
            return await self.conn.fetchval("select count(*) from instances")
        except asyncpg.UndefinedTableError:
            return 0

    async def close(self) -> None:
        if self.conn is not None:
            await self.conn.close()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


async def drain(backend: str, url: str, bus: BusSettings, total: int, work: Path,
                batch: int) -> Drain:
    port = free_port()
    env = catalogue_env(bus, url, port, DICOMVAULT_CATALOGUE__GROUP_ID=f"drain-{backend}",
                        DICOMVAULT_CATALOGUE__CLIENT_ID=f"drain-{backend}",
                        DICOMVAULT_CATALOGUE__STABLE_AFTER_S="3600",
                        DICOMVAULT_CATALOGUE__BATCH_MAX_RECORDS=str(batch),
                        DICOMVAULT_LOG__LEVEL="WARNING")
    proc = ServiceProcess("catalogue", env, work)
    count_instances = Counter(url)
    started = time.perf_counter()
    proc.start()
    try:
        first_at, first_count, count = None, 0, 0
        deadline = time.monotonic() + 900
        while count < total:
            if proc.process.poll() is not None:
                raise RuntimeError(f"catalogue exited:\n{proc.tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"catalogue stuck at {count}/{total}:\n{proc.tail()}")
            await asyncio.sleep(0.05)
            count = await count_instances()
            if first_at is None and count > 0:
                first_at, first_count = time.perf_counter(), count
                first_cpu = cpu_seconds(proc.process.pid)
        done = time.perf_counter()
        cpu = cpu_seconds(proc.process.pid) - first_cpu
    finally:
        proc.stop()
        await count_instances.close()
    return Drain(backend, total - first_count, done - first_at, done - started, cpu)


async def create_pg() -> tuple[str, str]:
    name = f"dicomvault_bench_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    host = PG_ADMIN_DSN.split("://", 1)[1].rsplit("/", 1)[0]
    return name, f"postgresql+asyncpg://{host}/{name}"


async def drop_pg(name: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def main_async(args: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="dicomvault-drain-"))
    broker = EmbeddedBroker(log_path=work / "tansu.log")
    broker.start()
    results: list[Drain] = []
    try:
        suffix = uuid.uuid4().hex[:8]
        bus = BusSettings(bootstrap_servers=broker.bootstrap_servers,
                          topics={name: f"drain{suffix}.{name}" for name in
                                  ("instances", "studies", "jobs", "job_commands", "dlq",
                                   "volumes")})
        total = args.studies * args.per_study
        print(f"preloading {total} InstanceStored ({args.studies} studies × {args.per_study}) "
              f"into {bus.partitions} partitions …", flush=True)
        secs = await preload(bus, args.studies, args.per_study)
        print(f"  published in {secs:.1f} s ({total / secs:.0f} events/s, acks=all, serial)",
              flush=True)
        for backend in args.backends:
            if backend == "sqlite":
                url = f"sqlite+aiosqlite:///{work / 'catalogue.db'}"
                results.append(await drain(backend, url, bus, total, work, args.batch))
            else:
                name, url = await create_pg()
                try:
                    results.append(await drain(backend, url, bus, total, work, args.batch))
                finally:
                    await drop_pg(name)
            r = results[-1]
            print(f"  {r.backend:<11} drained {r.events} events in {r.drain_s:.2f} s: "
                  f"{r.rate:,.0f} events/s", flush=True)
    finally:
        broker.stop()
        shutil.rmtree(work, ignore_errors=True)
    print()
    print(f"catalogue drain (batch_max_records={args.batch}, {os.cpu_count()} cores)")
    print(f"{'database':<11} {'events':>7} {'drain s':>8} {'events/s':>9} {'total s':>8} "
          f"{'CPU s':>6} {'CPU ms/event':>12}")
    for r in results:
        print(f"{r.backend:<11} {r.events:>7} {r.drain_s:8.2f} {r.rate:9.0f} {r.total_s:8.2f} "
              f"{r.cpu_s:6.1f} {1000 * r.cpu_s / r.events:12.3f}")
    print("drain = first committed batch to the last; total = from process start (imports, "
          "migrations, group join); CPU = the catalogue process during the drain")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--studies", type=int, default=100)
    ap.add_argument("--per-study", type=int, default=200)
    ap.add_argument("--batch", type=int, default=1000,
                    help="catalogue.batch_max_records (1: record by record, as before batching)")
    ap.add_argument("--backends", nargs="+", default=["sqlite", "postgresql"],
                    choices=["sqlite", "postgresql"])
    args = ap.parse_args()
    print(f"python: {describe()}", flush=True)
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
