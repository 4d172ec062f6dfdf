"""Helpers shared by the exporter's tests: the job facts it publishes."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer

from dicomvault.events import Event


async def job_facts(bus, until, timeout_s: float = 30) -> list[Event]:
    """Facts on the jobs topic, from the start, until ``until(facts)`` holds."""
    consumer = AIOKafkaConsumer(bus.topics.jobs, bootstrap_servers=bus.bootstrap_servers,
                                auto_offset_reset="earliest", group_id=None)
    await consumer.start()
    found: list[Event] = []
    try:
        async with asyncio.timeout(timeout_s):
            while not until(found):
                batch = await consumer.getmany(timeout_ms=200)
                for records in batch.values():
                    found += [Event.from_record(r.value, r.headers) for r in records]
    finally:
        await consumer.stop()
    return found
