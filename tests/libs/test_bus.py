"""The bus on the real Tansu broker: delivery, DLQ, and surviving a broker that restarts empty."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer

from dicomvault.bus import ConsumerLoop, PermanentError, Publisher, TransientError
from dicomvault.bus.broker import EmbeddedBroker
from dicomvault.events import Event
from dicomvault.settings import BusSettings
from tests.peers.facts import stored
from tests.peers.wait import wait_until


async def test_events_are_delivered_and_poison_goes_to_the_dlq(bus_settings: BusSettings) -> None:
    got: list[str] = []

    async def policy(event: Event) -> None:
        if event.payload.sop_instance_uid == "9.9":
            raise PermanentError("cannot apply 9.9")
        got.append(event.payload.sop_instance_uid)

    async with Publisher(bus_settings, "test") as pub:
        loop = ConsumerLoop(bus_settings, group_id="g1", topics=[bus_settings.topics.instances],
                            handler=policy, dlq=pub, client_id="c1")
        task = asyncio.create_task(loop.run())
        for uid in ("1.1", "9.9", "1.2"):
            await pub.publish(bus_settings.topics.instances, stored(uid))
        # A record that is not an event at all also ends in the DLQ.
        await pub.send_raw(bus_settings.topics.instances, b"junk", b"k", [])
        await wait_until(lambda: got == ["1.1", "1.2"])
        dlq = AIOKafkaConsumer(bus_settings.topics.dlq, bootstrap_servers=bus_settings.bootstrap_servers,
                               auto_offset_reset="earliest")
        await dlq.start()
        try:
            errors: list[str] = []
            while len(errors) < 2:
                for records in (await dlq.getmany(timeout_ms=2000)).values():
                    errors += [dict(r.headers)["dlq_error"].decode() for r in records]
        finally:
            await dlq.stop()
        assert any("cannot apply 9.9" in e for e in errors)
        assert any("EnvelopeError" in e for e in errors)
        loop.stop()
        await task


async def test_consumer_and_producer_survive_an_empty_broker_restart(tmp_path) -> None:
    broker = EmbeddedBroker(log_path=tmp_path / "tansu.log")
    broker.start()
    try:
        settings = BusSettings(bootstrap_servers=broker.bootstrap_servers,
                               health_check_interval_s=0.5, retry_backoff_s=0.05,
                               session_timeout_ms=6000)
        got: set[str] = set()

        async def policy(event: Event) -> None:
            got.add(event.payload.sop_instance_uid)

        async with Publisher(settings, "test") as pub:
            loop = ConsumerLoop(settings, group_id="g", topics=[settings.topics.instances],
                                handler=policy, dlq=pub, client_id="c")
            task = asyncio.create_task(loop.run())
            for i in range(10):
                await pub.publish(settings.topics.instances, stored(f"1.{i}"))
            await wait_until(lambda: len(got) == 10)
            # The broker comes back with no topics, offsets or groups.
            await asyncio.to_thread(broker.restart)
            for i in range(5):
                while True:
                    try:
                        await pub.publish(settings.topics.instances, stored(f"2.{i}"))
                        break
                    except Exception:  # noqa: BLE001 - the first sends may find it down
                        await asyncio.sleep(0.2)
            # Nothing published after the restart is lost: the producer noticed offsets going
            # backwards and re-sent, the consumer noticed its positions were past the end.
            await wait_until(lambda: {f"2.{i}" for i in range(5)} <= got, timeout=60)
            assert loop.resets >= 1
            loop.stop()
            await task
    finally:
        broker.stop()


async def test_a_batch_that_fails_is_applied_record_by_record(bus_settings: BusSettings) -> None:
    applied: list[tuple[str, str]] = []  # (how, uid)

    async def one(event: Event) -> None:
        if event.payload.sop_instance_uid == "9.9":
            raise PermanentError("cannot apply 9.9")
        applied.append(("one", event.payload.sop_instance_uid))

    async def many(events: list[Event]) -> None:
        uids = [e.payload.sop_instance_uid for e in events]
        if "9.9" in uids:
            raise PermanentError("a batch holding 9.9")  # all or nothing: nothing applied
        applied.extend(("batch", u) for u in uids)

    async with Publisher(bus_settings, "test") as pub:
        # A backlog on one partition with a poison record and a junk record in it.
        for uid in ("1.1", "1.2", "9.9", "1.3"):
            await pub.publish(bus_settings.topics.instances, stored(uid))
        await pub.send_raw(bus_settings.topics.instances, b"junk", b"1.2", [])
        await pub.publish(bus_settings.topics.instances, stored("1.4"))
        loop = ConsumerLoop(bus_settings, group_id="g1", topics=[bus_settings.topics.instances],
                            handler=one, batch_handler=many, dlq=pub, client_id="c1")
        task = asyncio.create_task(loop.run())
        # Every good record is applied once, in order; the two bad ones are dead-lettered once.
        await wait_until(lambda: [u for _, u in applied] == ["1.1", "1.2", "1.3", "1.4"])
        assert loop.batch_fallbacks >= 1 and ("one", "1.1") in applied
        # What comes next goes in batches again.
        await pub.publish(bus_settings.topics.instances, stored("2.1"))
        await wait_until(lambda: ("batch", "2.1") in applied)
        loop.stop()
        await task
        dlq = AIOKafkaConsumer(bus_settings.topics.dlq,
                               bootstrap_servers=bus_settings.bootstrap_servers,
                               auto_offset_reset="earliest")
        await dlq.start()
        try:
            errors: list[str] = []
            while True:  # read until the topic is idle
                fetched = await dlq.getmany(timeout_ms=1000)
                if not fetched and errors:
                    break
                for records in fetched.values():
                    errors += [dict(r.headers)["dlq_error"].decode() for r in records]
        finally:
            await dlq.stop()
        assert sorted(e.split(":")[0] for e in errors) == ["EnvelopeError", "PermanentError"]
        assert [u for _, u in applied] == ["1.1", "1.2", "1.3", "1.4", "2.1"]


async def test_a_batch_is_retried_whole_while_the_trouble_is_transient(
        bus_settings: BusSettings) -> None:
    applied: list[tuple[str, str]] = []
    failures = 3

    async def one(event: Event) -> None:
        applied.append(("one", event.payload.sop_instance_uid))

    async def many(events: list[Event]) -> None:
        nonlocal failures
        if failures:
            failures -= 1
            raise TransientError("database unavailable")
        applied.extend(("batch", e.payload.sop_instance_uid) for e in events)

    async with Publisher(bus_settings, "test") as pub:
        for uid in ("1.1", "1.2", "1.3"):
            await pub.publish(bus_settings.topics.instances, stored(uid))
        loop = ConsumerLoop(bus_settings, group_id="g1", topics=[bus_settings.topics.instances],
                            handler=one, batch_handler=many, dlq=pub, client_id="c1")
        task = asyncio.create_task(loop.run())
        # The database comes back: the batch is applied whole, nothing went record by record.
        await wait_until(lambda: len(applied) == 3)
        loop.stop()
        await task
    assert applied == [("batch", "1.1"), ("batch", "1.2"), ("batch", "1.3")]
    assert failures == 0 and loop.batch_fallbacks == 0


async def batches_of_a_trickle(bus: BusSettings, uids: list[str],
                               **options: int) -> list[list[str]]:
    """Publish ``uids`` one every 20 ms, as a modality sends them, to a batch consumer with
    ``options``; the SOP Instance UIDs of each call of its batch handler (none go one by one)."""
    calls: list[list[str]] = []

    async def one(event: Event) -> None:
        raise AssertionError("no record should go one by one")

    async def many(events: list[Event]) -> None:
        calls.append([e.payload.sop_instance_uid for e in events])

    group = f"g-trickle-{uids[0]}"
    async with Publisher(bus, "test") as pub:
        loop = ConsumerLoop(bus, group_id=group, topics=[bus.topics.instances], handler=one,
                            batch_handler=many, dlq=pub, client_id=group, **options)
        task = asyncio.create_task(loop.run())
        await wait_until(loop.ready.is_set)
        for uid in uids:
            await pub.publish(bus.topics.instances, stored(uid))
            await asyncio.sleep(0.02)
        await wait_until(lambda: sum(len(c) for c in calls) == len(uids))
        loop.stop()
        await task
    return calls


async def test_the_broker_gathers_a_trickle_with_fetch_min_bytes(
        bus_settings: BusSettings) -> None:
    """With ``fetch_min_bytes`` the broker holds each fetch until that much arrived or
    ``fetch_max_wait_ms`` passed: a trickle (a record every 20 ms) reaches the batch handler
    a few records at a time, in order, without any lingering in the loop (with the default
    of 1 byte, nearly every record comes on its own)."""
    uids = [f"4.{n}" for n in range(1, 13)]
    calls = await batches_of_a_trickle(bus_settings, uids, fetch_min_bytes=1024 * 1024,
                                       fetch_max_wait_ms=50)
    assert [uid for call in calls for uid in call] == uids
    assert len(calls) <= len(uids) // 2, calls


async def test_a_trickle_is_applied_in_batches_when_the_loop_lingers(
        bus_settings: BusSettings) -> None:
    """Live ingest brings one record per fetch; with ``batch_linger_ms`` the loop gathers what
    arrives within that time into one call of the batch handler (one transaction)."""
    uids = [f"3.{n}" for n in range(1, 7)]
    calls = await batches_of_a_trickle(bus_settings, uids, batch_linger_ms=5000)
    assert calls == [uids]
