"""Catalogue under live ingest: CPU per fact and lag while InstanceStored arrives at a steady
rate, as it does while modalities send (one or a few facts per fetch), not as a backlog.

A real Tansu broker and a real catalogue process (`dicomvault run catalogue`, SQLite, then
PostgreSQL) are started; a publisher then sends InstanceStored events (the same payloads as
the drain benchmark) at ``--rate`` per second for ``--seconds``. Printed per back end and per
setting (``fetch_min_bytes``, ``batch_linger_ms``, ``fetch_max_wait_ms``): the catalogue's CPU milliseconds per fact
over the run (the figure that decides how much of a 2-core machine is left for the gateway),
the broker's, and the lag from publish to the journal row (p50/p95).

    .venv/bin/python -m benchmarks.catalogue_live --help
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sqlite3
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from benchmarks.catalogue_drain import (
    ROOT,
    Counter,
    cpu_seconds,
    create_pg,
    drop_pg,
    instance_stored,
)
from benchmarks.interpreter import describe
from catalogue.settings import CatalogueSection
from dicomvault.bus import Publisher
from dicomvault.bus.broker import EmbeddedBroker, free_port
from dicomvault.settings import BusSettings
from tests.peers.services import ServiceProcess, catalogue_env


@dataclass
class Live:
    backend: str
    linger_ms: int
    min_bytes: int
    wait_ms: int
    events: int
    catalogue_cpu_s: float
    broker_cpu_s: float
    lag_ms: list[float]

    def pct(self, q: float) -> float:
        values = sorted(self.lag_ms)
        return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


async def lags(url: str, sent: dict[str, float]) -> list[float]:
    """Publish → journal row (``recorded_at``) per event, in ms."""
    if url.startswith("sqlite"):
        with sqlite3.connect(url.split(":///", 1)[1]) as db:
            rows = db.execute("select ce_id, recorded_at from journal").fetchall()
    else:
        conn = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
        try:
            rows = [(r[0], r[1]) for r in
                    await conn.fetch("select ce_id, recorded_at from journal")]
        finally:
            await conn.close()
    out = []
    for ce_id, recorded in rows:
        if ce_id in sent:
            at = recorded if not isinstance(recorded, str) else _parse(recorded)
            out.append((at.timestamp() - sent[ce_id]) * 1000)
    return out


def _parse(text: str):
    from datetime import UTC, datetime
    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


async def run(backend: str, url: str, broker: EmbeddedBroker, bus: BusSettings, work: Path,
              rate: float, seconds: float, linger_ms: int, fetch_wait_ms: int,
              fetch_min_bytes: int = 1) -> Live:
    port = free_port()
    group = f"live-{backend}-{linger_ms}-{uuid.uuid4().hex[:6]}"
    env = catalogue_env(bus, url, port, DICOMVAULT_CATALOGUE__GROUP_ID=group,
                        DICOMVAULT_CATALOGUE__CLIENT_ID=group,
                        DICOMVAULT_CATALOGUE__STABLE_AFTER_S="3600",
                        DICOMVAULT_CATALOGUE__BATCH_LINGER_MS=str(linger_ms),
                        DICOMVAULT_CATALOGUE__FETCH_MAX_WAIT_MS=str(fetch_wait_ms),
                        DICOMVAULT_CATALOGUE__FETCH_MIN_BYTES=str(fetch_min_bytes),
                        DICOMVAULT_LOG__LEVEL="WARNING")
    proc = ServiceProcess("catalogue", env, work, ready_url=f"http://127.0.0.1:{port}/readyz")
    count = Counter(url)
    proc.start()
    sent: dict[str, float] = {}
    try:
        before = await count()
        async with Publisher(bus, "bench-live") as pub:
            await asyncio.sleep(2)  # the group joined, the first idle fetches done
            cat0, brk0 = cpu_seconds(proc.process.pid), cpu_seconds(broker.process.pid)
            total = int(rate * seconds)
            study_uid = f"{ROOT}.{uuid.uuid4().int % 10**12}.7"
            series = f"{study_uid}.0"
            start = time.perf_counter()
            for n in range(total):
                due = start + n / rate
                if (wait := due - time.perf_counter()) > 0:
                    await asyncio.sleep(wait)
                event = instance_stored(n // 500, series, study_uid, n)
                await pub.publish(bus.topics.instances, event, key=study_uid)
                sent[event.id] = time.time()
        deadline = time.monotonic() + 120
        while await count() < before + total:
            if time.monotonic() > deadline:
                raise RuntimeError(f"catalogue did not catch up:\n{proc.tail()}")
            await asyncio.sleep(0.05)
        cat1, brk1 = cpu_seconds(proc.process.pid), cpu_seconds(broker.process.pid)
    finally:
        proc.stop()
        await count.close()
    return Live(backend, linger_ms, fetch_min_bytes, fetch_wait_ms, total, cat1 - cat0,
                brk1 - brk0, await lags(url, sent))


async def main_async(args: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="dicomvault-live-"))
    broker = EmbeddedBroker(log_path=work / "tansu.log")
    broker.start()
    results: list[Live] = []
    try:
        for backend in args.backends:
            for min_bytes, linger, wait in args.configs:
                suffix = uuid.uuid4().hex[:8]
                bus = BusSettings(bootstrap_servers=broker.bootstrap_servers,
                                  topics={name: f"live{suffix}.{name}" for name in
                                          ("instances", "studies", "jobs", "job_commands",
                                           "dlq", "volumes")})
                if backend == "sqlite":
                    url = f"sqlite+aiosqlite:///{work / f'catalogue-{suffix}.db'}"
                    results.append(await run(backend, url, broker, bus, work, args.rate,
                                             args.seconds, linger, wait, min_bytes))
                else:
                    name, url = await create_pg()
                    try:
                        results.append(await run(backend, url, broker, bus, work, args.rate,
                                                 args.seconds, linger, wait, min_bytes))
                    finally:
                        await drop_pg(name)
                r = results[-1]
                print(f"  {r.backend:<11} min bytes {r.min_bytes:>6}, linger {r.linger_ms:>3} ms, "
                      f"wait {r.wait_ms:>3} ms: "
                      f"catalogue "
                      f"{1000 * r.catalogue_cpu_s / r.events:.2f} ms CPU/fact", flush=True)
    finally:
        broker.stop()
        shutil.rmtree(work, ignore_errors=True)
    print()
    print(f"catalogue under live ingest ({args.rate:.0f} InstanceStored/s for {args.seconds:.0f} s,"
          f" {os.cpu_count()} cores)")
    print(f"{'database':<11} {'min bytes':>9} {'linger ms':>9} {'wait ms':>7} {'facts':>6} "
          f"{'catalogue CPU ms/fact':>21} "
          f"{'broker CPU ms/fact':>18} {'lag p50 ms':>10} {'lag p95 ms':>10}")
    for r in results:
        print(f"{r.backend:<11} {r.min_bytes:>9} {r.linger_ms:>9} {r.wait_ms:>7} {r.events:>6} "
              f"{1000 * r.catalogue_cpu_s / r.events:21.2f} "
              f"{1000 * r.broker_cpu_s / r.events:18.2f} {r.pct(0.5):10.0f} {r.pct(0.95):10.0f}")
    print("CPU = process CPU time over the run / facts; lag = publish → journal row "
          "(includes the linger)")


WAIT_MS = CatalogueSection.model_fields["fetch_max_wait_ms"].default  # today's default


def _config(text: str) -> tuple[int, int, int]:
    """MIN_BYTES[:LINGER_MS[:WAIT_MS]]; WAIT_MS defaults to catalogue.fetch_max_wait_ms's."""
    min_bytes, linger, wait = (text.split(":") + ["", ""])[:3]
    return int(min_bytes), int(linger or 0), int(wait or WAIT_MS)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rate", type=float, default=300.0, help="InstanceStored per second")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--configs", type=_config, nargs="+",
                    default=[(16384, 0, WAIT_MS), (16384, 0, 50)],
                    help="MIN_BYTES:LINGER_MS:WAIT_MS (catalogue.fetch_min_bytes, "
                    "catalogue.batch_linger_ms, catalogue.fetch_max_wait_ms; WAIT_MS defaults "
                    f"to today's {WAIT_MS}) to compare; default: today's defaults and the "
                    "previous wait (16384:0:50)")
    ap.add_argument("--backends", nargs="+", default=["sqlite", "postgresql"],
                    choices=["sqlite", "postgresql"])
    args = ap.parse_args()
    print(f"python: {describe()}", flush=True)
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
