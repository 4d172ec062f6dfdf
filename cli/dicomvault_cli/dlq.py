"""Dead-letter queue tools: list what failed and why; replay records to where they came from."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition

from dicomvault.bus import Publisher
from dicomvault.settings import BusSettings

DLQ_HEADERS = ("dlq_error", "dlq_topic", "dlq_partition", "dlq_offset", "dlq_group")


@dataclass
class DeadLetter:
    offset: int
    partition: int
    headers: dict[str, str]
    raw_headers: list[tuple[str, bytes]]
    key: bytes | None
    value: bytes | None

    def summary(self) -> dict[str, str | int]:
        h = self.headers
        return {"dlq_partition": self.partition, "dlq_offset": self.offset,
                "from": f"{h.get('dlq_topic')}[{h.get('dlq_partition')}]@{h.get('dlq_offset')}",
                "group": h.get("dlq_group", ""), "ce_type": h.get("ce_type", ""),
                "ce_id": h.get("ce_id", ""), "subject": h.get("ce_subject", ""),
                "error": h.get("dlq_error", "")}


async def read_all(settings: BusSettings) -> list[DeadLetter]:
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap_servers,
                                enable_auto_commit=False)
    await consumer.start()
    try:
        if settings.topics.dlq not in await consumer.topics():  # also loads the metadata
            return []
        parts = consumer.partitions_for_topic(settings.topics.dlq) or set()
        tps = [TopicPartition(settings.topics.dlq, p) for p in sorted(parts)]
        if not tps:
            return []
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        out: list[DeadLetter] = []
        async def behind() -> bool:
            return any([await consumer.position(tp) < ends[tp] for tp in tps])

        while await behind():
            batch = await consumer.getmany(timeout_ms=1000)
            for records in batch.values():
                for r in records:
                    hdrs = list(r.headers or ())
                    out.append(DeadLetter(
                        r.offset, r.partition,
                        {k: v.decode("utf-8", "replace") for k, v in hdrs}, hdrs, r.key, r.value))
        return out
    finally:
        await consumer.stop()


async def replay(settings: BusSettings, *, ce_type: str | None = None,
                 ce_id: str | None = None) -> int:
    """Send matching dead letters back to their original topic, without the dlq_* headers.

    Consumers are idempotent on ce_id, so replaying something already applied is harmless."""
    letters = [d for d in await read_all(settings)
               if (ce_type is None or d.headers.get("ce_type") == ce_type)
               and (ce_id is None or d.headers.get("ce_id") == ce_id)]
    async with Publisher(settings, "dicomvault-cli") as pub:
        for d in letters:
            headers = [(k, v) for k, v in d.raw_headers if k not in DLQ_HEADERS]
            await pub.send_raw(d.headers["dlq_topic"], d.value, d.key, headers)
    return len(letters)


def list_main(settings: BusSettings) -> None:
    for d in asyncio.run(read_all(settings)):
        print(json.dumps(d.summary()))


def replay_main(settings: BusSettings, ce_type: str | None, ce_id: str | None) -> int:
    return asyncio.run(replay(settings, ce_type=ce_type, ce_id=ce_id))
