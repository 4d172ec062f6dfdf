"""Facts for tests that drive the bus directly: events as the rest of the archive would
publish them (with just the fields a test looks at), and reading what a topic holds."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer

from dicomvault.events import Event
from dicomvault.events.v1 import events_pb2 as ev
from dicomvault.settings import BusSettings


def stored(uid: str, study_uid: str = "1.2") -> Event:
    """An InstanceStored for SOP Instance UID ``uid`` in study ``study_uid``."""
    return Event(ev.InstanceStored(sop_instance_uid=uid, study_instance_uid=study_uid),
                 source="test", subject=study_uid)


async def read_until(bus: BusSettings, topic: str, until: Callable[[list[Event]], bool],
                     keep: Callable[[Event], bool] = lambda _e: True,
                     timeout_s: float = 30) -> list[Event]:
    """The events on ``topic`` from its start that ``keep`` selects, read until
    ``until(events)`` holds (TimeoutError after ``timeout_s``: a bound on a hang)."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bus.bootstrap_servers,
                                auto_offset_reset="earliest", group_id=None)
    await consumer.start()
    found: list[Event] = []
    try:
        async with asyncio.timeout(timeout_s):
            while not until(found):
                batch = await consumer.getmany(timeout_ms=200)
                for records in batch.values():
                    found += [e for e in (Event.from_record(r.value, r.headers)
                                          for r in records) if keep(e)]
    finally:
        await consumer.stop()
    return found
