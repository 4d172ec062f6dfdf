"""A consumer never steps over a record the broker shows late.

Several producers writing to one partition at once (two gateway workers, several gateway
pods) make the embedded Tansu broker show a partition's records out of order now and then: a
fetch returns offset n+9 before the other producer's n+1..n+8 are visible. Taken as it came,
such a fetch moves the consumer past records it then never gets (the catalogue lost one of
2,000 instances that way under `make bench`).
"""

from __future__ import annotations

import asyncio

from aiokafka import ConsumerRecord, TopicPartition

from dicomvault.bus import ConsumerLoop, Publisher
from dicomvault.bus.gaps import OffsetGaps
from dicomvault.events import Event
from dicomvault.settings import BusSettings
from tests.peers.facts import stored
from tests.peers.wait import wait_until

TP = TopicPartition("t", 0)


def fetched(*offsets: int) -> dict[TopicPartition, list[ConsumerRecord]]:
    return {TP: [ConsumerRecord("t", 0, o, 0, 0, b"k", b"v", None, 1, 1, []) for o in offsets]}


async def test_records_of_four_producers_racing_into_one_partition_all_arrive(
        bus_settings: BusSettings) -> None:
    """4 producers × 5,000 events, 8 in flight each, into one partition (one study); a
    consumer that fetches as soon as a byte is there gets every event. The race is the
    broker's, so not every run meets it: a plain aiokafka consumer lost 8–48 of 20,000
    records in each of four runs; this loop holds at a gap once or twice per 40,000."""
    producers, each = 4, 5000
    got: set[str] = set()

    async def one(event: Event) -> None:
        got.add(event.id)

    async def many(events: list[Event]) -> None:
        got.update(e.id for e in events)

    async def produce(pub: Publisher, p: int) -> list[str]:
        events = [stored(f"5.{p}.{n}", study_uid="5.1") for n in range(each)]
        for e in events:  # the size of a gateway's InstanceStored: larger writes, wider race
            e.payload.storage_key = f"5.1/5.1.1/{e.payload.sop_instance_uid}.dcm".ljust(500, "_")
        gate = asyncio.Semaphore(8)

        async def send(event: Event) -> None:
            async with gate:
                await pub.publish(bus_settings.topics.instances, event)
        await asyncio.gather(*map(send, events))
        return [e.id for e in events]

    async with Publisher(bus_settings, "dlq") as dlq:
        loop = ConsumerLoop(bus_settings, group_id="g-race", topics=[bus_settings.topics.instances],
                            handler=one, batch_handler=many, dlq=dlq, client_id="g-race",
                            fetch_min_bytes=1, fetch_max_wait_ms=50)
        task = asyncio.create_task(loop.run())
        await wait_until(loop.ready.is_set)
        pubs = [Publisher(bus_settings, f"p{p}") for p in range(producers)]
        for pub in pubs:
            await pub.__aenter__()
        try:
            sent = await asyncio.gather(*(produce(pub, p) for p, pub in enumerate(pubs)))
        finally:
            for pub in pubs:
                await pub.__aexit__(None, None, None)
        ids = {i for s in sent for i in s}
        await wait_until(lambda: len(got) >= len(ids), timeout=60)
        loop.stop()
        await task
    assert got == ids
    assert loop.gaps.skipped == 0


async def test_the_loop_fetches_a_partition_again_from_a_missing_offset(
        bus_settings: BusSettings) -> None:
    """What the loop does with a fetch the broker showed with a hole (offsets 3-5 missing
    from what the consumer got): it takes 0-2, seeks back to 3 and gets 3-9 next."""
    topic = bus_settings.topics.instances
    async with Publisher(bus_settings, "t") as pub:
        for n in range(10):
            await pub.publish(topic, stored(f"6.{n}", study_uid="6.1"))
        loop = ConsumerLoop(bus_settings, group_id="g-hole", topics=[topic], handler=_never,
                            dlq=pub, client_id="g-hole")
        consumer = loop._make_consumer()
        await consumer.start()
        try:
            consumer.subscribe([topic])
            batches: dict = {}
            while sum(len(r) for r in batches.values()) < 10:
                for tp, records in (await consumer.getmany(timeout_ms=1000)).items():
                    batches.setdefault(tp, []).extend(records)
            (tp, records), = batches.items()
            shown = {tp: [r for r in records if not 3 <= r.offset <= 5]}
            assert await loop._hold_gaps(consumer, shown)
            assert [r.offset for r in shown[tp]] == [0, 1, 2]
            again: list[int] = []
            for _ in range(10):  # a bound on a hang: without the seek nothing more comes
                for records in (await consumer.getmany(timeout_ms=300)).values():
                    again += [r.offset for r in records]
                if len(again) >= 7:
                    break
            assert again == [3, 4, 5, 6, 7, 8, 9]
        finally:
            await consumer.stop()


async def _never(event: Event) -> None:
    raise AssertionError("not called")


def test_a_fetch_is_cut_at_a_missing_offset_and_the_partition_fetched_again() -> None:
    gaps = OffsetGaps(grace_s=5)
    batches = fetched(0, 1, 2)
    assert gaps.trim(batches, now=0) == {}  # a partition's first fetch sets what comes next
    assert [r.offset for r in batches[TP]] == [0, 1, 2]

    batches = fetched(3, 4, 9, 10)  # 5..8 not shown yet
    assert gaps.trim(batches, now=1) == {TP: 5}
    assert [r.offset for r in batches[TP]] == [3, 4]

    batches = fetched(9, 10)  # fetched again from 5: still missing: nothing taken
    assert gaps.trim(batches, now=2) == {TP: 5} and batches == {}

    batches = fetched(5, 6, 7, 8, 9, 10)  # there now
    assert gaps.trim(batches, now=3) == {}
    assert [r.offset for r in batches[TP]] == [5, 6, 7, 8, 9, 10]
    assert gaps.held == 2 and gaps.skipped == 0


def test_a_gap_that_outlasts_the_grace_is_stepped_over_once() -> None:
    gaps = OffsetGaps(grace_s=5)
    gaps.expect(TP, 20)  # the committed offset when the partition was assigned
    assert gaps.trim(fetched(23, 24), now=100) == {TP: 20}
    assert gaps.trim(fetched(23, 24), now=104.9) == {TP: 20}
    batches = fetched(23, 24)
    assert gaps.trim(batches, now=105) == {}  # deleted, or a compacted topic: step over
    assert [r.offset for r in batches[TP]] == [23, 24] and gaps.skipped == 3
    # a new gap gets its own grace
    assert gaps.trim(fetched(30), now=106) == {TP: 25}


def test_a_rebalance_forgets_what_came_next() -> None:
    gaps = OffsetGaps(grace_s=5)
    gaps.trim(fetched(0, 1), now=0)
    gaps.forget([TP])  # another member may have committed further meanwhile
    batches = fetched(40, 41)
    assert gaps.trim(batches, now=1) == {} and len(batches[TP]) == 2
