"""Schedule windows (a clock the test controls), export rules, and the exports REST API."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import httpx
import pytest

from dicomvault.events import Event
from dicomvault.events.v1 import events_pb2 as ev
from stow_exporter.api import build_app
from stow_exporter.metrics import REGISTRY
from stow_exporter.policies import Policy
from stow_exporter.schedule import in_window, next_window, parse_schedule
from tests.exporter.conftest import Clock, drain, exporter
from tests.exporter.servers import StowServer, serve
from tests.peers.datasets import write_study
from tests.peers.wait import wait_until

# 2024-01-05 is a Friday; 2024-01-06 a Saturday; 2024-01-07 a Sunday.
FRIDAY_NOON = datetime(2024, 1, 5, 12, 0, tzinfo=UTC)


def test_schedule_expressions():
    night = [parse_schedule("hour=18-6 dayOfWeek=*")]
    assert not in_window(night, FRIDAY_NOON)
    assert in_window(night, FRIDAY_NOON.replace(hour=18))
    assert in_window(night, FRIDAY_NOON.replace(hour=23, minute=59))
    assert in_window(night, FRIDAY_NOON.replace(hour=0))
    assert in_window(night, FRIDAY_NOON.replace(hour=6, minute=59))  # wraps midnight
    assert not in_window(night, FRIDAY_NOON.replace(hour=7))
    assert next_window(night, FRIDAY_NOON) == FRIDAY_NOON.replace(hour=18)
    weekend = [parse_schedule("hour=* dayOfWeek=0,6")]
    assert not in_window(weekend, FRIDAY_NOON)
    assert in_window(weekend, datetime(2024, 1, 6, 12, tzinfo=UTC))   # Saturday = 6
    assert in_window(weekend, datetime(2024, 1, 7, 3, tzinfo=UTC))    # Sunday = 0
    assert next_window(weekend, FRIDAY_NOON) == datetime(2024, 1, 6, 0, tzinfo=UTC)
    both = night + weekend  # any schedule opens the window
    assert in_window(both, datetime(2024, 1, 6, 12, tzinfo=UTC))
    assert in_window([], FRIDAY_NOON)  # no schedule: always
    assert in_window([parse_schedule("dayOfWeek=1-5")], FRIDAY_NOON)
    for bad in ("hour=25", "hour=a-b", "minute=5", "hour"):
        with pytest.raises(ValueError):
            parse_schedule(bad)


async def test_outside_the_window_the_study_waits_visibly(tmp_path, catalogue, hosting):
    study = write_study(tmp_path / "study", series=1, per_series=2)
    catalogue[0].add(study)
    clock = Clock(FRIDAY_NOON)
    server = StowServer()
    async with serve(server) as port:
        h = hosting(exporter("NIGHT", url=f"http://127.0.0.1:{port}/dicom-web",
                             schedules=["hour=18-6 dayOfWeek=*"]), clock=clock)
        api = httpx.AsyncClient(transport=httpx.ASGITransport(build_app([h], lambda: None)),
                                base_url="http://exporter")
        # A manual request at noon: the export waits for the evening window.
        r = await api.post("/api/v1/exports", json={"study_instance_uid": study.study_uid,
                                                     "exporter_id": "NIGHT"})
        assert r.status_code == 202
        stop = asyncio.Event()
        task = asyncio.create_task(h.queue.run(stop))
        try:
            # The queue looks at the job and leaves it waiting for the window (it shows
            # in_progress meanwhile); nothing may be sent.
            export = h.queue.get(r.json()["id"])
            async with asyncio.timeout(30):
                while not (export.job.state.value == "WAITING"
                           and export.state == "waiting_schedule"):
                    await asyncio.sleep(0.05)
            listing = (await api.get("/api/v1/exports", params={"exporter_id": "NIGHT"})).json()
            assert [e["state"] for e in listing] == ["waiting_schedule"]
            assert listing[0]["next_window"] == "2024-01-05T18:00:00+00:00"
            assert "hour=18-6" in listing[0]["reason"]
            assert REGISTRY.get_sample_value("dicomvault_exporter_queue_depth",
                                             {"exporter": "NIGHT",
                                              "state": "waiting_schedule"}) == 1
            metrics_text = (await api.get("/metrics")).text
            assert 'dicomvault_exporter_queue_depth{exporter="NIGHT",state="waiting_schedule"} 1.0' \
                in metrics_text
            assert server.requests == []
            # Evening comes: the study goes.
            clock.advance(hours=6)
            h.queue.wake()
            await asyncio.wait_for(h.queue.idle.wait(), 30)
        finally:
            stop.set()
            h.queue.wake()
            await task
        listing = (await api.get("/api/v1/exports", params={"state": "exported"})).json()
        assert [e["study_instance_uid"] for e in listing] == [study.study_uid]
        assert sorted(server.stored_uids()) == sorted(study.sop_uids)
        # A manual request may ignore the window when asked to.
        r = await api.post("/api/v1/exports", json={
            "study_instance_uid": study.study_uid, "exporter_id": "NIGHT", "immediate": True})
        clock.advance(hours=12)  # Saturday 06:00 -> 18:00: outside the window again
        await drain(h)
        assert (await api.get(f"/api/v1/exports/{r.json()['id']}")).json()["state"] == "exported"
        # Bad requests are refused clearly.
        assert (await api.post("/api/v1/exports", json={
            "study_instance_uid": study.study_uid, "exporter_id": "NOPE"})).status_code == 404
        assert (await api.post("/api/v1/exports", json={
            "study_instance_uid": "1.2.abc", "exporter_id": "NIGHT"})).status_code == 422
        await api.aclose()


async def test_a_waiting_export_sleeps_until_its_window_unless_asked_for_now(
        tmp_path, catalogue, hosting):
    study = write_study(tmp_path / "study", series=1, per_series=2)
    catalogue[0].add(study)
    clock = Clock(FRIDAY_NOON)
    server = StowServer()
    async with serve(server) as port:
        h = hosting(exporter("NIGHT", url=f"http://127.0.0.1:{port}/dicom-web",
                             schedules=["hour=18-6 dayOfWeek=*"]), clock=clock)
        await h.queue.submit(study.study_uid, trigger="rule")
        stop = asyncio.Event()
        task = asyncio.create_task(h.queue.run(stop))
        try:
            for _ in range(100):
                (job,) = h.queue.jobs.jobs.values()
                if job.state.value == "WAITING":
                    break
                await asyncio.sleep(0.05)
            # Looked at again when the window opens, not every minute (one fact per wait).
            assert (job.state.value, job.not_before) == ("WAITING", FRIDAY_NOON.replace(hour=18))
            clock.advance(minutes=30)
            looks = h.queue.jobs.looks
            h.queue.wake()
            await wait_until(lambda: h.queue.jobs.looks > looks, "the queue to look again")
            assert (job.attempt, server.requests) == (0, [])
            # The radiologist asks for it now: the waiting export goes at once.
            again = await h.queue.submit(study.study_uid, trigger="manual", immediate=True)
            assert again.job is job
            await asyncio.wait_for(h.queue.idle.wait(), 30)
        finally:
            stop.set()
            h.queue.wake()
            await task
    assert job.state.value == "DONE"
    assert sorted(server.stored_uids()) == sorted(study.sop_uids)


def _stable(study_uid: str, *, modalities=("CT",), aes=("CT01",), stations=("ST1",)) -> Event:
    return Event(payload=ev.StudyStable(study_instance_uid=study_uid, modalities=modalities,
                                        calling_aes=aes, station_names=stations),
                 source="test", subject=study_uid)


async def test_rules_match_calling_ae_modality_station_and_delay(hosting):
    clock = Clock(FRIDAY_NOON)
    h = hosting(exporter("RULES", rules=[
        {"callingAETitles": ["CT01"], "modalities": ["CT"], "delaySeconds": 600},
        {"stationNames": ["mr-west"], "modalities": ["MR"]},
    ]), clock=clock)
    policy = Policy(h)
    uid = "1.2.826.0.1.3680043.10.1234.{}"
    await policy(_stable(uid.format(1)))                                 # rule 1
    await policy(_stable(uid.format(2), aes=("US01",)))                  # wrong AE
    await policy(_stable(uid.format(3), modalities=("MR", "SR"), stations=("MR-WEST",)))  # rule 2
    await policy(_stable(uid.format(4), modalities=("MR",), stations=("MR-EAST",)))      # no
    event = _stable(uid.format(5), modalities=("OT", "CT"), aes=("ct01",))
    await policy(event)                                                  # rule 1, any case
    await policy(event)                                                  # redelivery: once
    queued = {e.study_instance_uid: e for e in h.queue.exports()}
    assert sorted(queued) == [uid.format(1), uid.format(3), uid.format(5)]
    assert queued[uid.format(1)].state == "delayed"
    assert (queued[uid.format(1)].not_before - FRIDAY_NOON).total_seconds() == 600
    assert queued[uid.format(3)].state == "queued"
    # An exporter without rules takes every stable study.
    h2 = hosting(exporter("ALL"), clock=clock)
    await Policy(h2)(_stable(uid.format(6), modalities=("XA",)))
    assert [e.study_instance_uid for e in h2.queue.exports()] == [uid.format(6)]
