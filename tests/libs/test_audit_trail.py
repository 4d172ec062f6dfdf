"""Audit facts never hold up what they record: ``AuditTrail.record`` buffers and returns, a
fact reaches the audit topic when the broker is there, and when it is not (or the buffer is
full) facts are dropped and counted, never raised."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from aiokafka import AIOKafkaConsumer

from dicomvault.audit import MINOR_FAILURE, Action, AuditTrail
from dicomvault.bus import Publisher
from dicomvault.bus.broker import EmbeddedBroker
from dicomvault.events import Event
from dicomvault.settings import BusSettings


async def test_facts_reach_the_topic_then_are_dropped_when_the_broker_is_gone(
        tmp_path: Path) -> None:
    broker = EmbeddedBroker(log_path=tmp_path / "tansu.log")
    broker.start()
    bus = BusSettings(bootstrap_servers=broker.bootstrap_servers, request_timeout_s=1.0)
    drops: list[int] = []
    try:
        async with Publisher(bus, "audit-test") as publisher:
            trail = AuditTrail(publisher, bus.topics.audit, "dicom-gateway", capacity=2,
                               on_drop=lambda: drops.append(1), send_timeout_s=1.0)
            await trail.start()
            # From a pynetdicom-like thread, as the C-FIND handler does.
            thread = threading.Thread(target=lambda: trail.record(
                Action.ASSOCIATION_REFUSED, outcome=MINOR_FAILURE, user_id="INTRUDER",
                peer_address="127.0.0.1:40000", service="A-ASSOCIATE"))
            thread.start()
            thread.join()
            consumer = AIOKafkaConsumer(bus.topics.audit, bootstrap_servers=bus.bootstrap_servers,
                                        auto_offset_reset="earliest", group_id=None)
            await consumer.start()
            try:
                record = await asyncio.wait_for(consumer.getone(), timeout=30)
            finally:
                await consumer.stop()
            fact = Event.from_record(record.value, record.headers).payload
            assert (fact.action, fact.user_id, fact.outcome) == (
                Action.ASSOCIATION_REFUSED, "INTRUDER", MINOR_FAILURE)
            assert fact.application == "dicom-gateway" and fact.time.seconds > 0
            assert drops == []

            # The broker goes away: recording still returns at once; what does not fit the
            # buffer, or is not taken, is dropped and counted.
            broker.process.kill()  # (SIGTERM waits for its clients for seconds)
            broker.process.wait()
            for n in range(10):
                trail.record(Action.QUERY, user_id=f"CT{n}", service="C-FIND")
            assert len(drops) >= 7  # 10 facts, a buffer of 2, at most one being sent
            await trail.stop(flush_s=0.5)
            assert trail.dropped == len(drops)
    finally:
        broker.stop()
