"""The embedded broker's CPU per record as its topic grows, with and without a consumer.

A real Tansu broker (memory storage, as `make run` starts it) gets ``--chunks`` × ``--chunk``
records of ``--size`` bytes from one aiokafka producer (acks=all, one record per request, as
the gateway publishes), first with nobody reading, then on a fresh broker with one consumer
reading as the catalogue does (``--min-bytes`` / ``--max-wait-ms``). Printed per chunk: the
broker's CPU milliseconds per produced record and the records/s reached. A cost that grows
chunk after chunk is paid by a long-running embedded archive and hidden from benchmarks that
start a fresh broker (docs/performance.md, fifth run).

    .venv/bin/python -m benchmarks.broker_growth --help
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from benchmarks.catalogue_drain import cpu_seconds
from benchmarks.interpreter import describe
from catalogue.settings import CatalogueSection
from dicomvault.bus.broker import EmbeddedBroker

TOPIC = "growth"


async def _read(bus: str, args: argparse.Namespace, stop: asyncio.Event) -> None:
    consumer = AIOKafkaConsumer(TOPIC, bootstrap_servers=bus, group_id="growth",
                                enable_auto_commit=False, auto_offset_reset="earliest",
                                fetch_min_bytes=args.min_bytes,
                                fetch_max_wait_ms=args.max_wait_ms)
    await consumer.start()
    try:
        while not stop.is_set():
            if await consumer.getmany(timeout_ms=200):
                await consumer.commit()
    finally:
        await consumer.stop()


async def run(args: argparse.Namespace, with_consumer: bool) -> list[tuple[float, float]]:
    """(broker CPU ms per record, records/s) of every chunk."""
    broker = EmbeddedBroker()
    broker.start()
    stop = asyncio.Event()
    reader = None
    try:
        admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap_servers)
        await admin.start()
        await admin.create_topics([NewTopic(TOPIC, args.partitions, 1)])
        await admin.close()
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers, acks="all",
                                    linger_ms=0)
        await producer.start()
        if with_consumer:
            reader = asyncio.create_task(_read(broker.bootstrap_servers, args, stop))
        value = b"x" * args.size
        out = []
        for _ in range(args.chunks):
            cpu, started = cpu_seconds(broker.process.pid), time.monotonic()
            for i in range(args.chunk):
                await producer.send_and_wait(TOPIC, value, key=b"study-%d" % (i % 7))
            seconds = time.monotonic() - started
            out.append(((cpu_seconds(broker.process.pid) - cpu) / args.chunk * 1000,
                        args.chunk / seconds))
        await producer.stop()
        return out
    finally:
        stop.set()
        if reader is not None:
            with contextlib.suppress(Exception):
                await reader
        broker.stop()


async def main_async(args: argparse.Namespace) -> None:
    alone = await run(args, with_consumer=False)
    read = await run(args, with_consumer=True)
    print(f"Tansu, {args.partitions} partitions, {args.size}-byte records, one producer "
          f"(acks=all); consumer: fetch_min_bytes {args.min_bytes}, "
          f"fetch_max_wait_ms {args.max_wait_ms}")
    print(f"{'records':>15} {'alone ms/rec':>13} {'rec/s':>7} {'read ms/rec':>12} {'rec/s':>7}")
    for n, ((a_ms, a_rate), (r_ms, r_rate)) in enumerate(zip(alone, read, strict=True)):
        span = f"{n * args.chunk:,}-{(n + 1) * args.chunk:,}"
        print(f"{span:>15} {a_ms:13.3f} {a_rate:7.0f} {r_ms:12.3f} {r_rate:7.0f}")
    print("ms/rec = the broker's CPU milliseconds per produced record over that chunk")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--chunks", type=int, default=6)
    ap.add_argument("--chunk", type=int, default=5000, help="records per chunk")
    ap.add_argument("--size", type=int, default=800, help="bytes per record")
    ap.add_argument("--partitions", type=int, default=4)
    catalogue = CatalogueSection()
    ap.add_argument("--min-bytes", type=int, default=catalogue.fetch_min_bytes,
                    help="consumer fetch_min_bytes (default: the catalogue's)")
    ap.add_argument("--max-wait-ms", type=int, default=catalogue.fetch_max_wait_ms,
                    help="consumer fetch_max_wait_ms (default: the catalogue's)")
    args = ap.parse_args()
    print(f"python: {describe()}", flush=True)
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
