"""Publisher on the real Tansu broker: each record sent in its own ProduceRequest (the direct
path) lands where the producer would have put it, once, in order, with its headers; a topic
the producer's client knows nothing about yet goes through the producer first."""

from __future__ import annotations

import time
import uuid

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.partitioner import DefaultPartitioner

from dicomvault.bus import Publisher
from dicomvault.events import Event
from dicomvault.settings import BusSettings
from tests.peers.facts import stored


async def _read(bus: BusSettings, topic: str, count: int) -> tuple[list, list[int]]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bus.bootstrap_servers,
                                auto_offset_reset="earliest", group_id=None)
    await consumer.start()
    records: list = []
    try:
        for _ in range(50):  # bounded: a missing record fails the test instead of hanging
            for batch in (await consumer.getmany(timeout_ms=500)).values():
                records += batch
            if len(records) >= count:
                break
        partitions = sorted(consumer.partitions_for_topic(topic) or ())
    finally:
        await consumer.stop()
    return records, partitions


async def test_direct_records_land_on_their_keys_partition_once_in_order(
        bus_settings: BusSettings) -> None:
    topic = bus_settings.topics.instances
    studies = [f"1.2.{n}" for n in range(6)]
    sent: dict[str, list[str]] = {s: [] for s in studies}
    started_ms = time.time() * 1000
    async with Publisher(bus_settings, "test") as pub:
        for i in range(4):
            for study in studies:
                uid = f"{study}.{i}"
                await pub.publish(topic, stored(uid, study_uid=study))
                sent[study].append(uid)
        assert pub.direct_sends == 24  # every record took the direct path

    records, partitions = await _read(bus_settings, topic, 24)
    assert len(records) == 24  # each once
    default = DefaultPartitioner()
    got: dict[str, list[str]] = {s: [] for s in studies}
    for r in sorted(records, key=lambda r: (r.partition, r.offset)):
        event = Event.from_record(r.value, r.headers)  # CloudEvents headers intact
        study = r.key.decode()
        assert event.subject == study
        assert started_ms - 5000 <= r.timestamp <= time.time() * 1000  # stamped when sent
        # The partition aiokafka's own partitioner picks for the key: a study's facts stay on
        # one partition whichever path sent them.
        assert r.partition == default(r.key, partitions, partitions)
        got[study].append(event.payload.sop_instance_uid)
    assert got == sent  # per study, in the order published


async def test_a_topic_new_to_the_client_goes_through_the_producer_first(
        bus_settings: BusSettings) -> None:
    async with Publisher(bus_settings, "test") as pub:
        await pub.publish(bus_settings.topics.instances, stored("1.1"))
        assert pub.direct_sends == 1
        # A topic created after the publisher started: its client has no metadata for it.
        topic = f"late-{uuid.uuid4().hex[:8]}"
        admin = AIOKafkaAdminClient(bootstrap_servers=bus_settings.bootstrap_servers)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(topic, 4, 1)])
        finally:
            await admin.close()
        await pub.publish(topic, stored("2.1"))
        assert pub.direct_sends == 1  # the producer took it, waiting for the metadata
        await pub.publish(topic, stored("2.2"))
        assert pub.direct_sends == 2  # known now: direct

    records, _ = await _read(bus_settings, topic, 2)
    assert sorted(Event.from_record(r.value, r.headers).payload.sop_instance_uid
                  for r in records) == ["2.1", "2.2"]
