"""The policy: journal + projection in one transaction, idempotent on ce_id; rebuild."""

from __future__ import annotations

import asyncio
import hashlib

import pytest
from sqlalchemy import delete, func, select, update

from catalogue.models import Instance, Journal, Location, Study, StudyLocation
from catalogue.rebuild import rebuild, rebuild_main
from dicomvault.events import Event
from dicomvault.events.v1 import events_pb2 as ev
from tests.catalogue.conftest import Catalogue
from tests.catalogue.helpers import instance_stored, study_archived, study_evicted, uid


async def journal_rows(cat: Catalogue) -> int:
    async with cat.sessions() as s:
        return int(await s.scalar(select(func.count()).select_from(Journal)))


async def test_same_event_twice_is_one_row(cat: Catalogue) -> None:
    study, series = uid(), uid()
    event = instance_stored(study, series)
    await cat.feed(event, event)
    assert await journal_rows(cat) == 1
    assert len(await cat.find("IMAGE", filters={"StudyInstanceUID": study})) == 1


async def test_resend_and_replace(cat: Catalogue) -> None:
    study, series, sop = uid(), uid(), uid()
    await cat.feed(instance_stored(study, series, sop, body=b"first"))
    async with cat.sessions() as s:
        revision = (await s.get(Study, study)).revision
    # The same bytes again under a new event id (a resend): journalled, nothing changes.
    await cat.feed(instance_stored(study, series, sop, body=b"first"))
    async with cat.sessions() as s:
        assert (await s.get(Study, study)).revision == revision
    # Different bytes under the same SOP Instance UID (the gateway's "replace"): updated.
    await cat.feed(instance_stored(study, series, sop, body=b"second, longer"))
    async with cat.sessions() as s:
        inst = await s.get(Instance, sop)
        loc = await s.get(Location, (sop, "cache"))
        assert inst.size_bytes == loc.size_bytes == len(b"second, longer")
        assert inst.sha256 == loc.sha256
        assert (await s.get(Study, study)).revision > revision
    assert await journal_rows(cat) == 3
    assert len(await cat.find("IMAGE", filters={"StudyInstanceUID": study})) == 1


async def test_archive_evict_stable_recall_and_timeline(cat: Catalogue) -> None:
    study, series = uid(), uid()
    await cat.feed(instance_stored(study, series), instance_stored(study, series))
    # StudyStable records the stable revision.
    async with cat.sessions() as s:
        revision = (await s.get(Study, study)).revision
    stable = ev.StudyStable(study_instance_uid=study, revision=revision)
    await cat.feed(Event(payload=stable, source="dicomvault/catalogue", subject=study))
    summary = (await cat.client.get(f"/api/v1/studies/{study}")).json()
    assert summary["stable"] is True and summary["stable_revision"] == revision
    # Archived to HSM, then the cache copy evicted: the study is only on HSM.
    await cat.feed(study_archived(study, n=2), study_evicted(study, "cache"))
    summary = (await cat.client.get(f"/api/v1/studies/{study}")).json()
    assert [(x["tier"], x["archive_id"], x["verified"]) for x in summary["study_locations"]] == [
        ("hsm", "hsm1", True)]
    assert summary["instances_per_tier"] == {}
    assert (await cat.client.get(f"/api/v1/studies/{study}/instances")).json() == []
    # A recall request is journalled only.
    recall = ev.RecallRequested(study_instance_uid=study, requested_by="VIEWER")
    await cat.feed(Event(payload=recall, source="dicomvault/gateway", subject=study))
    # Evicted from HSM too: no study location left.
    await cat.feed(study_evicted(study, "hsm", "hsm1"))
    async with cat.sessions() as s:
        assert (await s.scalars(select(StudyLocation))).all() == []
    # The timeline is the study's whole life, decoded.
    timeline = (await cat.client.get(f"/api/v1/studies/{study}/timeline")).json()["events"]
    assert [e["type"] for e in timeline] == [
        "dicomvault.instance.stored.v1", "dicomvault.instance.stored.v1",
        "dicomvault.study.stable.v1", "dicomvault.study.archived.v1",
        "dicomvault.study.evicted.v1", "dicomvault.study.recall-requested.v1",
        "dicomvault.study.evicted.v1"]
    assert timeline[5]["data"]["requested_by"] == "VIEWER"
    assert [e["seq"] for e in timeline] == sorted(e["seq"] for e in timeline)
    assert (await cat.client.get(f"/api/v1/studies/{uid()}/timeline")).status_code == 404


async def test_rebuild_check_and_apply(cat: Catalogue) -> None:
    # A life with replaces, stability, archives and evictions.
    s1, s2, series, sop = uid(), uid(), uid(), uid()
    await cat.feed(
        instance_stored(s1, series, sop, body=b"v1"),
        instance_stored(s1, series),
        instance_stored(s2, uid(), patient_id="P2", modality="MR"),
        instance_stored(s1, series, sop, body=b"v2"),
        study_archived(s1), study_archived(s2, tier="optical", archive_id="dvd"),
        study_evicted(s1, "cache"),
    )
    settings = cat.settings()
    report = await rebuild(settings, check_only=True)
    assert report.ok, report.differences
    assert report.journal_rows == 7 and report.rows["instances"] == 3

    # Tamper with the live projection: a changed value, a lost row, an invented row.
    async with cat.sessions() as s, s.begin():
        await s.execute(update(Study).where(Study.study_instance_uid == s2)
                        .values(study_description="tampered"))
        await s.execute(delete(StudyLocation).where(StudyLocation.study_instance_uid == s2))
        await s.execute(update(Instance).where(Instance.sop_instance_uid == sop)
                        .values(size_bytes=1))
    report = await rebuild(settings, check_only=True)
    assert not report.ok and report.difference_count == 3
    text = "\n".join(report.differences)
    assert "study_description" in text and "tampered" in text
    assert "study_locations" in text and "missing from the live projection" in text
    assert "size_bytes" in text

    # Apply rewrites the projections from the journal; the check is clean again.
    applied = await rebuild(settings, check_only=False)
    assert applied.journal_rows == 7
    assert (await rebuild(settings, check_only=True)).ok
    async with cat.sessions() as s:
        assert (await s.get(Study, s2)).study_description == "Head"
        assert (await s.get(Instance, sop)).size_bytes == 2


async def test_rebuild_main_uses_the_environment(cat: Catalogue, monkeypatch,
                                                 capsys: pytest.CaptureFixture) -> None:
    await cat.feed(instance_stored(uid(), uid()))
    monkeypatch.setenv("DICOMVAULT_DATABASE__URL", cat.url)
    assert await asyncio.to_thread(rebuild_main, True) == 0
    assert '"ok": true' in capsys.readouterr().out
    async with cat.sessions() as s, s.begin():
        await s.execute(delete(Location))
    assert await asyncio.to_thread(rebuild_main, True) == 1
    assert await asyncio.to_thread(rebuild_main, False) == 0
    assert await asyncio.to_thread(rebuild_main, True) == 0


async def test_recall_with_other_bytes_records_only_the_cache_copy(cat: Catalogue) -> None:
    # Archived on HSM and on a remote PACS, stable, then evicted from the cache.
    study, series, sop, other = uid(), uid(), uid(), uid()
    await cat.feed(instance_stored(study, series, sop, body=b"as the modality sent it"),
                   instance_stored(study, series, other, body=b"second instance"))
    async with cat.sessions() as s:
        revision = (await s.get(Study, study)).revision
    await cat.feed(Event(payload=ev.StudyStable(study_instance_uid=study, revision=revision),
                         source="dicomvault/catalogue", subject=study),
                   study_archived(study, "hsm", "HSM1", n=2),
                   study_archived(study, "pacs", "PACS1", n=2),
                   study_evicted(study, "cache"))
    # The remote PACS sends it back with its own file meta group: other Part 10 bytes.
    recalled = b"same data set, the PACS's own file meta group"
    await cat.feed(instance_stored(study, series, sop, body=recalled, source="recall",
                                   calling_ae="ORTHANC"))
    summary = (await cat.client.get(f"/api/v1/studies/{study}")).json()
    # Nothing to re-archive: same revision, still stable, both archive copies still there.
    assert summary["stable"] is True and summary["stable_revision"] == revision
    assert sorted((x["tier"], x["archive_id"]) for x in summary["study_locations"]) == [
        ("hsm", "HSM1"), ("pacs", "PACS1")]
    async with cat.sessions() as s:
        assert (await s.get(Study, study)).revision == revision
        inst = await s.get(Instance, sop)
        assert inst.sha256 == hashlib.sha256(b"as the modality sent it").hexdigest()
        assert inst.calling_ae == "MODALITY1" and inst.source == "dimse"
    # The cache copy is recorded with its own size and checksum.
    cached = (await cat.client.get(f"/api/v1/studies/{study}/instances",
                                   params={"tier": "cache"})).json()
    assert [(c["sop_instance_uid"], c["size_bytes"], c["sha256"]) for c in cached] == [
        (sop, len(recalled), hashlib.sha256(recalled).hexdigest())]
    # The same again (a redelivery with a new id) changes nothing; a rebuild gives the same.
    await cat.feed(instance_stored(study, series, sop, body=recalled, source="recall"))
    report = await rebuild(cat.settings(), check_only=True)
    assert report.ok, report.differences
    # A recall of an instance the catalogue never knew is recorded like any new instance.
    new = uid()
    await cat.feed(instance_stored(study, series, new, body=b"unknown", source="recall"))
    async with cat.sessions() as s:
        assert (await s.get(Instance, new)) is not None
        assert (await s.get(Study, study)).revision > revision
