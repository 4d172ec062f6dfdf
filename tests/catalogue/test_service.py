"""The catalogue service on the real broker: ingest, find, StudyStable, DLQ, restart."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from sqlalchemy import func, select

from catalogue.db import make_engine, sessions
from catalogue.metrics import REGISTRY
from catalogue.models import Journal
from catalogue.rebuild import rebuild
from dicomvault.bus import Publisher
from dicomvault.bus.broker import free_port
from dicomvault.events import Event, deterministic_id
from dicomvault.events.v1 import events_pb2 as ev
from dicomvault.settings import BusSettings
from tests.catalogue.helpers import (
    MR,
    InProcess,
    instance_stored,
    read_topic,
    settings_for,
    total,
    uid,
    wait_until,
)
from tests.peers.services import ServiceProcess


async def journal_count(url: str, ce_type: str | None = None) -> int:
    engine = make_engine(url)
    try:
        async with sessions(engine)() as s:
            stmt = select(func.count()).select_from(Journal)
            if ce_type:
                stmt = stmt.where(Journal.ce_type == ce_type)
            return int(await s.scalar(stmt))
    finally:
        await engine.dispose()


async def test_ingest_find_stable_and_rebuild(db_url: str, bus_settings: BusSettings) -> None:
    topics = bus_settings.topics
    settings = settings_for(bus_settings, db_url, stable_after_s=1.0,
                            stable_check_interval_s=0.2)
    study, ct, mr = uid(), uid(), uid()
    events = [instance_stored(study, ct, instance_number=str(n), series_number="1")
              for n in range(1, 4)]
    events += [instance_stored(study, mr, modality="MR", sop_class_uid=MR, series_number="2",
                               instance_number=str(n), station_name="MR01",
                               calling_ae="MRSCANNER") for n in range(1, 3)]
    emitted_before = REGISTRY.get_sample_value("dicomvault_catalogue_study_stable_emitted_total") or 0
    async with InProcess(settings) as svc, Publisher(bus_settings, "test") as pub:
        # A modality's study arrives on the instances topic, one event resent.
        for event in [*events, events[0]]:
            await pub.publish(topics.instances, event, key=study)

        # It is catalogued and found at every level.
        async def five() -> bool:
            return await total(svc.client, "IMAGE", StudyInstanceUID=study) == 5

        await wait_until(five, "five instances catalogued")
        assert await total(svc.client, "STUDY", StudyInstanceUID=study) == 1
        assert await total(svc.client, "SERIES", StudyInstanceUID=study) == 2
        r = await svc.client.post("/api/v1/find", json={
            "level": "PATIENT", "root": "PATIENT", "filters": {"PatientID": "PAT-1"}})
        assert r.json()["matches"][0]["NumberOfPatientRelatedInstances"] >= 5
        assert len((await svc.client.get(f"/api/v1/studies/{study}/instances")).json()) == 5

        # After the quiet period the catalogue announces the study stable, once.
        async def stable() -> dict | None:
            s = (await svc.client.get(f"/api/v1/studies/{study}")).json()
            return s if s.get("stable") else None

        summary = await wait_until(stable, "study stable")
        records = [r for r in await read_topic(bus_settings, topics.studies)
                   if dict(r.headers)["ce_type"] == b"dicomvault.study.stable.v1"]
        assert len(records) == 1
        fact = Event.from_record(records[0].value, records[0].headers)
        assert fact.id == deterministic_id(study, str(summary["revision"]))
        assert records[0].key == study.encode()
        p: ev.StudyStable = fact.payload
        assert (p.study_instance_uid, p.patient_id, p.number_of_series,
                p.number_of_instances) == (study, "PAT-1", 2, 5)
        assert p.size_bytes == sum(e.payload.size_bytes for e in events)
        assert list(p.modalities) == ["CT", "MR"]
        assert list(p.calling_aes) == ["MODALITY1", "MRSCANNER"]
        assert list(p.station_names) == ["CT01", "MR01"]
        assert p.revision == summary["revision"] and p.last_received_time.seconds > 0

        # Five instances and one StudyStable: the resent event left no trace.
        assert await journal_count(db_url) == 6
        metrics = (await svc.client.get("/metrics/")).text
        assert "dicomvault_catalogue_events_consumed_total" in metrics
        assert 'outcome="duplicate"' in metrics
        assert 'route="/api/v1/find"' in metrics
        assert REGISTRY.get_sample_value("dicomvault_catalogue_study_stable_emitted_total") == (
            emitted_before + 1)

    # A rebuild from the journal gives the live projections.
    report = await rebuild(settings, check_only=True)
    assert report.ok, report.differences


async def test_malformed_records_go_to_the_dlq(sqlite_url: str,
                                               bus_settings: BusSettings) -> None:
    topics = bus_settings.topics
    settings = settings_for(bus_settings, sqlite_url)
    study, series = uid(), uid()
    bad_uid = instance_stored(study, series, sop="../../x")
    async with InProcess(settings) as svc, Publisher(bus_settings, "test") as pub:
        # No CloudEvents headers at all; a payload that is not protobuf; a UID like ../../x.
        await pub.send_raw(topics.instances, b"garbage", study.encode(), [])
        await pub.send_raw(topics.instances, b"\xff\xff\xff", study.encode(), [
            ("ce_id", b"bad-1"), ("ce_type", b"dicomvault.instance.stored.v1"),
            ("ce_source", b"test")])
        await pub.publish(topics.instances, bad_uid, key=study)
        # A good event behind them is still catalogued.
        await pub.publish(topics.instances, instance_stored(study, series), key=study)

        async def one() -> bool:
            return await total(svc.client, "IMAGE", StudyInstanceUID=study) == 1

        await wait_until(one, "the good instance catalogued")

        async def three_dead() -> list:
            recs = await read_topic(bus_settings, topics.dlq, idle_s=0.3)
            return recs if len(recs) >= 3 else []

        dead = await wait_until(three_dead, "three dead letters")
        errors = [dict(r.headers)["dlq_error"].decode() for r in dead]
        assert "missing header ce_id" in errors[0]
        assert "undecodable" in errors[1] or "Error" in errors[1]
        assert "PermanentError" in errors[2] and "sop_instance_uid" in errors[2]
        assert {dict(r.headers)["dlq_topic"] for r in dead} == {topics.instances.encode()}
    assert await journal_count(sqlite_url) == 1


@pytest.mark.e2e
async def test_restart_mid_stream_loses_and_duplicates_nothing(
        db_url: str, bus_settings: BusSettings, tmp_path) -> None:
    topics = bus_settings.topics
    port = free_port()
    env = {
        "DICOMVAULT_BUS__BOOTSTRAP_SERVERS": bus_settings.bootstrap_servers,
        "DICOMVAULT_BUS__TOPICS__INSTANCES": topics.instances,
        "DICOMVAULT_BUS__TOPICS__STUDIES": topics.studies,
        "DICOMVAULT_BUS__TOPICS__JOBS": topics.jobs,
        "DICOMVAULT_BUS__TOPICS__JOB_COMMANDS": topics.job_commands,
        "DICOMVAULT_BUS__TOPICS__DLQ": topics.dlq,
        "DICOMVAULT_BUS__SESSION_TIMEOUT_MS": "6000",
        "DICOMVAULT_DATABASE__URL": db_url,
        "DICOMVAULT_HTTP__PORT": str(port),
        "DICOMVAULT_CATALOGUE__STABLE_AFTER_S": "3600",
        "DICOMVAULT_LOG__LEVEL": "INFO",
        "DICOMVAULT_AUTH__ENABLED": "false",
    }
    proc = ServiceProcess("catalogue", env, tmp_path, ready_url=f"http://127.0.0.1:{port}/readyz")
    studies = [uid() for _ in range(3)]
    events = [instance_stored(s, uid() if n % 10 == 0 else f"{s}.{n // 10}", instance_number=str(n))
              for s in studies for n in range(40)]
    client = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10)
    try:
        await asyncio.to_thread(proc.start)
        async with Publisher(bus_settings, "test") as pub:
            async def send(batch) -> None:
                for e in batch:
                    await pub.publish(topics.instances, e, key=e.subject)
                    await asyncio.sleep(0.005)

            # The stream is flowing when the catalogue is stopped.
            sender = asyncio.create_task(send(events[:80]))

            async def some() -> bool:
                return await total(client, "IMAGE") >= 10

            await wait_until(some, "the first instances catalogued")
            assert await asyncio.to_thread(proc.stop) == 0
            await sender
            # While it is down: the rest, and some of the first ones again.
            await send(events[80:] + events[:15])
            await asyncio.to_thread(proc.start)

            async def all_of_them() -> bool:
                return await total(client, "IMAGE") == len(events)

            await wait_until(all_of_them, "every instance catalogued")
        assert await journal_count(db_url) == len(events)
        assert await total(client, "STUDY") == 3
    finally:
        await client.aclose()
        await asyncio.to_thread(proc.stop)
