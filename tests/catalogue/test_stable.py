"""The StudyStable emitter, on the real broker, and database trouble as TransientError."""

from __future__ import annotations

from datetime import timedelta

import pytest

from catalogue.db import make_engine, sessions
from catalogue.models import Study
from catalogue.policies import Policy
from catalogue.stable import StableEmitter
from dicomvault.bus import Publisher, TransientError
from dicomvault.bus.broker import free_port
from dicomvault.events import Event, deterministic_id
from dicomvault.settings import BusSettings
from tests.catalogue.conftest import Catalogue
from tests.catalogue.helpers import ago, instance_stored, read_topic, uid


async def test_emitter_announces_once_per_revision(cat: Catalogue,
                                                   bus_settings: BusSettings) -> None:
    study, series = uid(), uid()
    await cat.feed(instance_stored(study, series, received=ago(120)))
    settings = cat.settings(stable_after_s=30)
    settings.bus = bus_settings
    async with Publisher(bus_settings, "test") as pub:
        emitter = StableEmitter(settings, cat.sessions, pub)
        # Quiet for two minutes by the gateway's clock, but journalled just now: not yet.
        assert await emitter.tick() == 0
        async with cat.sessions() as s:
            later = (await s.get(Study, study)).last_received + timedelta(minutes=5)
        # Later: announced once, then not again on the next ticks.
        assert await emitter.tick(now=later) == 1
        assert await emitter.tick(now=later) == 0
        records = await read_topic(bus_settings, bus_settings.topics.studies, idle_s=0.5)
        assert len(records) == 1
        fact = Event.from_record(records[0].value, records[0].headers)
        async with cat.sessions() as s:
            revision = (await s.get(Study, study)).revision
        assert fact.id == deterministic_id(study, str(revision))
        # The catalogue consumes its own fact: the study is no longer pending.
        await cat.feed(fact)
        assert await emitter.tick(now=later + timedelta(hours=1)) == 0
        # A late instance makes it pending again; a new revision, a new fact id.
        await cat.feed(instance_stored(study, series, received=later))
        assert await emitter.tick(now=later + timedelta(hours=1)) == 1
        records = await read_topic(bus_settings, bus_settings.topics.studies, idle_s=0.5)
        ids = [Event.from_record(r.value, r.headers).id for r in records]
        assert len(set(ids)) == 2


async def test_unreachable_database_is_transient() -> None:
    engine = make_engine(f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/nothing")
    try:
        with pytest.raises(TransientError):
            await Policy(sessions(engine))(instance_stored(uid(), uid()))
    finally:
        await engine.dispose()
