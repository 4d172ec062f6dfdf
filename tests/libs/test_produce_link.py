"""ProduceLink, the publisher's bare produce connection: records acknowledged by the real Tansu
broker at consecutive offsets; a broker without ProduceRequest v3 and a connection that drops
mid-request are refused with LinkError (loopback peers that speak just enough Kafka), and a
publisher whose link was lost opens a new one and loses nothing."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest
from aiokafka.record.default_records import DefaultRecordBatchBuilder

from dicomvault.bus import Publisher
from dicomvault.bus.produce_link import LinkError, ProduceLink, Unsupported
from dicomvault.bus.topics import ensure_topics
from dicomvault.events import Event
from dicomvault.settings import BusSettings
from tests.libs.test_publisher_direct import _read
from tests.peers.facts import stored


def batch(value: bytes) -> bytes:
    builder = DefaultRecordBatchBuilder(2, 0, is_transactional=0, producer_id=-1,
                                        producer_epoch=-1, base_sequence=0, batch_size=1 << 20)
    builder.append(0, None, b"k", value, [])
    return bytes(builder.build())


async def test_records_are_acknowledged_by_the_broker_in_order(bus_settings: BusSettings) -> None:
    await ensure_topics(bus_settings)
    topic = bus_settings.topics.instances
    host, port = bus_settings.bootstrap_servers.split(":")
    link = await ProduceLink.open(host, int(port), "test", 10)
    try:
        answers = await asyncio.gather(*(link.produce(topic, 0, batch(b"v%d" % i), 10_000)
                                         for i in range(5)))
    finally:
        link.close()
    assert [code for code, _ in answers] == [0] * 5
    offsets = [offset for _, offset in answers]
    assert offsets == list(range(offsets[0], offsets[0] + 5))  # one record each, in order
    records, _ = await _read(bus_settings, topic, 5)
    assert sorted(r.value for r in records if r.partition == 0) == [b"v%d" % i for i in range(5)]
    with pytest.raises(LinkError):
        await link.produce(topic, 0, batch(b"late"), 10_000)


def _answer(correlation: int, body: bytes) -> bytes:
    return struct.pack(">ii", 4 + len(body), correlation) + body


def _versions(produce_max: int) -> bytes:
    ranges = [(0, 0, produce_max), (3, 0, 9), (18, 0, 3)]
    return struct.pack(">hi", 0, len(ranges)) + b"".join(struct.pack(">hhh", *r) for r in ranges)


@asynccontextmanager
async def fake_broker(on_produce: Callable[[asyncio.StreamWriter, int], None],
                      produce_max: int = 9) -> AsyncIterator[int]:
    """A loopback listener answering ApiVersions, and ProduceRequests with ``on_produce``."""
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                size = struct.unpack(">i", await reader.readexactly(4))[0]
                request = await reader.readexactly(size)
                key, _version, correlation = struct.unpack_from(">hhi", request)
                if key == 18:
                    writer.write(_answer(correlation, _versions(produce_max)))
                else:
                    on_produce(writer, correlation)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


async def test_a_broker_without_produce_v3_gets_no_link() -> None:
    async with fake_broker(lambda w, c: None, produce_max=2) as port:
        with pytest.raises(Unsupported):
            await ProduceLink.open("127.0.0.1", port, "test", 5)


async def test_requests_in_flight_fail_when_the_connection_drops() -> None:
    async with fake_broker(lambda writer, _c: writer.close()) as port:
        link = await ProduceLink.open("127.0.0.1", port, "test", 5)
        with pytest.raises(LinkError):
            await asyncio.wait_for(link.produce("t", 0, batch(b"x"), 5000), 5)
        assert link.closed


async def test_an_answer_without_the_partition_is_an_error() -> None:
    def other_partition(writer: asyncio.StreamWriter, correlation: int) -> None:
        body = struct.pack(">ih", 1, 1) + b"t" + struct.pack(">iihqq", 1, 7, 0, 42, -1)
        writer.write(_answer(correlation, body + struct.pack(">i", 0)))

    async with fake_broker(other_partition) as port:
        link = await ProduceLink.open("127.0.0.1", port, "test", 5)
        try:
            with pytest.raises(LinkError, match="does not name the partition"):
                await asyncio.wait_for(link.produce("t", 0, batch(b"x"), 5000), 5)
        finally:
            link.close()


async def test_a_publisher_whose_link_was_lost_opens_another(bus_settings: BusSettings) -> None:
    topic = bus_settings.topics.instances
    async with Publisher(bus_settings, "test") as pub:
        await pub.publish(topic, stored("1.1"))
        [link] = pub._links.values()
        link._transport.abort()  # the connection breaks (a broker restart, a network cut)
        await asyncio.sleep(0.05)
        assert link.closed
        await pub.publish(topic, stored("1.2"))
        assert pub.direct_sends == 2  # a new link carried it
        assert [lk for lk in pub._links.values()] != [link]
    records, _ = await _read(bus_settings, topic, 2)
    assert sorted(Event.from_record(r.value, r.headers).payload.sop_instance_uid
                  for r in records) == ["1.1", "1.2"]
