"""The service skeleton (``dicomvault.service.Service``): readiness follows the consumers, the
stop keeps one order (tasks end, then what the service closes, then Application Stop on the
audit topic), and a part that ends on its own fails the service."""

from __future__ import annotations

import asyncio

import pytest

from dicomvault.audit import Action
from dicomvault.auth import AuthSettings
from dicomvault.lifecycle import ServiceFailed
from dicomvault.service import NOT_ASSIGNED, Service, ServiceSettings
from dicomvault.settings import BusSettings, HttpSettings
from tests.peers.facts import read_until, stored
from tests.peers.wait import wait_until


def settings_on(bus: BusSettings) -> ServiceSettings:
    return ServiceSettings(bus=bus, http=HttpSettings(port=0), auth=AuthSettings(enabled=False))


async def test_a_service_is_ready_once_consuming_and_stops_in_one_order(
        bus_settings: BusSettings) -> None:
    stop, seen, said = asyncio.Event(), [], []

    async def policy(event) -> None:
        seen.append(event.payload.sop_instance_uid)

    async def part() -> None:
        await stop.wait()
        said.append("part ended")

    async def closing(what: str) -> None:
        said.append(f"{what} closed")

    async with Service("skeleton-test", settings_on(bus_settings), stop,
                       client_id="skeleton-test") as service:
        service.on_close(lambda: closing("catalogue client"))
        service.on_close(lambda: closing("senders"))
        service.consume("g-skeleton", [bus_settings.topics.instances], policy)
        service.spawn(part(), "part")
        # Not ready until the consumer has its partitions; then it consumes.
        assert service.ready() == NOT_ASSIGNED
        await wait_until(lambda: service.ready() is None, "the consumer's assignment")
        await service.publisher.publish(bus_settings.topics.instances, stored("1.1"), key="1.2")
        await wait_until(lambda: seen == ["1.1"], "the published fact consumed")
        stop.set()
        await service.until_stopped()
    # The parts ended first; then what the service closes, the last registered first.
    assert said == ["part ended", "senders closed", "catalogue client closed"]
    # The trail said Application Start and, at the stop, Application Stop.
    facts = await read_until(bus_settings, bus_settings.topics.audit, lambda f: len(f) >= 2)
    assert [f.payload.action for f in facts] == [Action.APPLICATION_START,
                                                 Action.APPLICATION_STOP]


async def test_a_part_ending_on_its_own_fails_the_service_and_all_still_stops(
        bus_settings: BusSettings) -> None:
    stop, said = asyncio.Event(), []

    async def sweep() -> None:
        raise OSError("disk gone")

    async def part() -> None:
        await stop.wait()
        said.append("part ended")

    with pytest.raises(ServiceFailed, match="skeleton-test task sweep failed: OSError"):
        async with Service("skeleton-test", settings_on(bus_settings), stop,
                           client_id="skeleton-test", fail_on_early_end=True) as service:
            service.on_close(lambda: asyncio.sleep(0, said.append("closed")))
            service.spawn(part(), "part")
            service.spawn(sweep(), "sweep")
            await service.until_stopped()
    # The other parts were stopped and what the service closes was closed.
    assert stop.is_set() and said == ["part ended", "closed"]


async def test_parts_that_end_at_the_stop_do_not_fail_the_service(
        bus_settings: BusSettings) -> None:
    stop = asyncio.Event()

    async def part() -> None:  # a queue: it returns once stop is set
        await stop.wait()

    async with Service("skeleton-test", settings_on(bus_settings), stop,
                       client_id="skeleton-test", fail_on_early_end=True) as service:
        for i in range(3):
            service.spawn(part(), f"part-{i}")
        asyncio.get_running_loop().call_soon(stop.set)
        # The parts end on the stop, maybe before the skeleton sees it: that is no failure.
        await service.until_stopped()
    assert stop.is_set()
