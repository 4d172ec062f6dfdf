"""`dicomvault dlq list|replay`: a dead letter can be inspected and sent back where it failed."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys

from aiokafka import AIOKafkaConsumer

from dicomvault.bus import ConsumerLoop, PermanentError, Publisher
from dicomvault.events import Event
from dicomvault.events.v1 import events_pb2 as ev
from dicomvault.settings import BusSettings
from tests.peers.wait import wait_until


def cli_env(s: BusSettings) -> dict[str, str]:
    env = {**os.environ, "DICOMVAULT_BUS__BOOTSTRAP_SERVERS": s.bootstrap_servers}
    for name in ("instances", "studies", "jobs", "job_commands", "dlq"):
        env[f"DICOMVAULT_BUS__TOPICS__{name.upper()}"] = getattr(s.topics, name)
    return env


async def test_dead_letters_are_listed_and_replayed(bus_settings: BusSettings) -> None:
    fail = {"on": True}
    applied: list[str] = []

    async def policy(event: Event) -> None:
        if fail["on"]:
            raise PermanentError("catalogue rejected it")
        applied.append(event.id)

    async with Publisher(bus_settings, "t") as pub:
        loop = ConsumerLoop(bus_settings, group_id="dlq-test", topics=[bus_settings.topics.instances],
                            handler=policy, dlq=pub, client_id="t")
        task = asyncio.create_task(loop.run())
        event = Event(ev.InstanceStored(sop_instance_uid="1.2.3"), source="t", subject="1.2")
        await pub.publish(bus_settings.topics.instances, event)
        probe = AIOKafkaConsumer(bus_settings.topics.dlq, bootstrap_servers=bus_settings.bootstrap_servers,
                                 auto_offset_reset="earliest")
        await probe.start()
        try:
            while not await probe.getmany(timeout_ms=500):
                pass
        finally:
            await probe.stop()

        listed = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-m", "dicomvault_cli", "dlq", "list"],
            env=cli_env(bus_settings), capture_output=True, text=True, timeout=60)
        rows = [json.loads(line) for line in listed.stdout.splitlines()]
        assert listed.returncode == 0, listed.stderr
        assert [r["ce_id"] for r in rows] == [event.id]
        assert rows[0]["error"] == "PermanentError: catalogue rejected it"
        assert rows[0]["from"].startswith(bus_settings.topics.instances)

        # Fixed: replaying sends it back to the original topic, where it now applies.
        fail["on"] = False
        replayed = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-m", "dicomvault_cli", "dlq", "replay"],
            env=cli_env(bus_settings), capture_output=True, text=True, timeout=60)
        assert "replayed 1 record(s)" in replayed.stdout, replayed.stderr
        await wait_until(lambda: applied == [event.id])
        loop.stop()
        await task
