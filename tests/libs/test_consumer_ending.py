"""A consumer loop ends only on stop() (issue 13 item 8): a call cancelled under it or an
unexpected error reconnects; a service part that ends on its own exits non-zero."""

from __future__ import annotations

import asyncio
import subprocess
import sys

from dicomvault.bus import ConsumerLoop, Publisher
from dicomvault.settings import BusSettings
from tests.peers.facts import stored
from tests.peers.wait import wait_until


async def test_a_cancellation_under_the_loop_does_not_end_it(bus_settings: BusSettings) -> None:
    got: list[str] = []
    calls = 0

    async def policy(event) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:  # what aiokafka does to a fetch when the broker resets under it
            raise asyncio.CancelledError()
        if calls == 2:
            raise LookupError("an unexpected error from a library")  # retried, not fatal
        got.append(event.payload.sop_instance_uid)

    async with Publisher(bus_settings, "test") as pub:
        loop = ConsumerLoop(bus_settings, group_id="g-end", handler=policy, dlq=pub,
                            topics=[bus_settings.topics.instances], client_id="c-end")
        task = asyncio.create_task(loop.run())
        try:
            await pub.publish(bus_settings.topics.instances, stored("1.1"), key="1.2")
            await wait_until(lambda: got == ["1.1"] or task.done())
            assert not task.done(), task
        finally:
            loop.stop()
            await asyncio.wait_for(task, 30)
    # stop() ends it normally.
    assert task.done() and task.exception() is None


def test_a_service_whose_part_ends_on_its_own_exits_non_zero(tmp_path) -> None:
    # serve() with a run() that reports a part ended early: one ERROR line, exit code 1.
    script = (
        "import asyncio\n"
        "from dicomvault.lifecycle import ServiceFailed, serve\n"
        "from dicomvault.settings import LogSettings\n"
        "class S:\n    log = LogSettings(json_format=True)\n"
        "async def run(settings, stop):\n"
        "    raise ServiceFailed('catalogue task consumer ended early')\n"
        "serve('demo', S(), run)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 1, done.stderr
    [line] = [x for x in done.stderr.splitlines() if "stopped on its own" in x]
    assert '"level": "error"' in line and "consumer ended early" in line
