"""Helpers shared by the exporter's tests: the job facts it publishes."""

from __future__ import annotations

from dicomvault.events import Event
from tests.peers.facts import read_until


async def job_facts(bus, until, timeout_s: float = 30) -> list[Event]:
    """Facts on the jobs topic, from the start, until ``until(facts)`` holds."""
    return await read_until(bus, bus.topics.jobs, until, timeout_s=timeout_s)
