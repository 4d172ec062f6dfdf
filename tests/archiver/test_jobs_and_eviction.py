"""Administrators' commands through the catalogue's REST API, and cache eviction by the copies
rule (the sweep, and on demand)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from dicomvault.bus import Publisher
from dicomvault.bus.broker import free_port
from dicomvault.events.v1 import events_pb2 as ev
from dicomvault.events.v1 import jobs_pb2 as jb
from dicomvault.store import FileStore
from hsm_archiver.context import CatalogueClient, Context
from hsm_archiver.eviction import sweep
from hsm_archiver.on_demand import CATALOGUE_UNAVAILABLE, EVICTED, TOO_FEW_COPIES, evict_study
from hsm_archiver.settings import EvictionSettings
from tests.peers.cache import cache_study, publish
from tests.peers.wait import wait_until

from .conftest import hsm_archive, make_settings, running, stable

C = jb.JobCommandIssued


async def test_pause_resume_cancel_retry_through_the_catalogue_api(
        bus_settings, catalogue, hsm_mount, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    study, data = await cache_study(bus_settings, cache, tmp_path / "in", catalogue)
    # The rule stores an hour after StudyStable: the job waits, scheduled.
    settings = make_settings(bus_settings, cache, catalogue.url, [
        hsm_archive(hsm_mount, rules=[{"name": "later", "delay_s": 3600}])])

    async def command(path: str, **body) -> None:
        # The administrator's REST call: the catalogue publishes JobCommandIssued.
        r = await asyncio.to_thread(catalogue.post, path, **body)
        assert r.status_code == 202, r.text

    async with running(settings):
        await publish(bus_settings, stable(study), study.study_uid)
        await wait_until(lambda: catalogue.job_states("HSM1") == ["NEW"])
        (job,) = catalogue.jobs.values()
        assert job["not_before"] is not None
        # Cancel it.
        await command(f"/api/v1/jobs/{job['job_id']}/cancel", reason="wrong study")
        await wait_until(lambda: catalogue.job_states("HSM1") == ["CANCELLED"])
        # Pause the queue; a retried job then waits while the queue is halted.
        await command("/api/v1/queues/HSM1/pause", reason="tape library maintenance")
        await wait_until(lambda: catalogue.queues["HSM1"]["state"] == "HALTED")
        assert catalogue.queues["HSM1"]["reason"] == "tape library maintenance"
        await command(f"/api/v1/jobs/{job['job_id']}/retry")
        await wait_until(lambda: catalogue.job_states("HSM1") == ["NEW"])
        assert not (hsm_mount / "vault" / study.study_uid).exists()
        # Resume: the retried job runs now (retry clears the schedule) and the study lands.
        await command("/api/v1/queues/HSM1/resume")
        await wait_until(lambda: catalogue.job_states("HSM1") == ["DONE"])
        await wait_until(lambda: catalogue.queues["HSM1"]["state"] == "RUNNING")
    for key, raw in data.items():
        assert (hsm_mount / "vault" / key).read_bytes() == raw
    changes = [(c.command, c.issued_by) for c in catalogue.of_type(jb.JobStateChanged)]
    assert changes == [("cancel", "api:admin"), ("retry", "api:admin")]
    # Retrying the finished job is refused with the reason.
    r = await asyncio.to_thread(catalogue.post, f"/api/v1/jobs/{job['job_id']}/retry")
    assert r.status_code == 409 and "DONE" in r.json()["detail"]


async def test_eviction_respects_the_copies_rule(bus_settings, catalogue, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    store = FileStore(cache)
    one, d1 = await cache_study(bus_settings, cache, tmp_path / "one", catalogue)
    two, d2 = await cache_study(bus_settings, cache, tmp_path / "two", catalogue)
    lonely, d3 = await cache_study(bus_settings, cache, tmp_path / "three", catalogue)
    n1, n2 = len(d1), len(d2)
    # Study one: verified on HSM1 and on PACS1; study two: on HSM1 only, plus an unverified
    # PACS copy; study three: nowhere but the cache.
    for study, tier, archive, verified, n in (
            (one, "hsm", "HSM1", True, n1), (one, "pacs", "PACS1", True, n1),
            (two, "hsm", "HSM1", True, n2), (two, "pacs", "PACS1", False, n2)):
        await publish(bus_settings, ev.StudyArchived(
            study_instance_uid=study.study_uid, tier=tier, archive_id=archive, verified=verified,
            number_of_instances=n, location="x"), study.study_uid)
    # Study one's facts and study two's travel on different partitions: wait for both.
    await wait_until(lambda: [len(catalogue.study_locations(s.study_uid))
                              for s in (one, two)] == [2, 2])

    async with Publisher(bus_settings, "test-evict") as pub:
        ctx = Context(bus_settings.topics, pub, store, CatalogueClient(catalogue.url))
        # Not idle long enough: nothing goes.
        assert await sweep(ctx, EvictionSettings(min_archive_copies=1, idle_s=3600)) == []
        # Dry run: reported, nothing deleted.
        dry = await sweep(ctx, EvictionSettings(min_archive_copies=2, idle_s=0, dry_run=True))
        assert dry == [one.study_uid]
        assert all(store.exists(k) for k in d1)
        # Two verified copies required: only study one qualifies.
        assert await sweep(ctx, EvictionSettings(min_archive_copies=2, idle_s=0)) == [
            one.study_uid]
        assert not any(store.exists(k) for k in d1)
        assert all(store.exists(k) for k in {**d2, **d3})
        await wait_until(lambda: catalogue.of_type(ev.StudyEvicted))
        (fact,) = catalogue.of_type(ev.StudyEvicted)
        assert fact.study_instance_uid == one.study_uid and fact.tier == "cache"
        # One copy required: study two goes; study three, the only copy, never.
        assert await sweep(ctx, EvictionSettings(min_archive_copies=1, idle_s=0)) == [
            two.study_uid]
        assert all(store.exists(k) for k in d3)
        await ctx.catalogue.close()


async def test_evict_on_demand_counts_only_verified_copies_and_says_why(
        bus_settings, catalogue, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    store = FileStore(cache)
    study, data = await cache_study(bus_settings, cache, tmp_path / "one", catalogue)
    # Verified on HSM1; the PACS copy is not verified (yet).
    for tier, archive, verified in (("hsm", "HSM1", True), ("pacs", "PACS1", False)):
        await publish(bus_settings, ev.StudyArchived(
            study_instance_uid=study.study_uid, tier=tier, archive_id=archive,
            verified=verified, number_of_instances=len(data), location="x"), study.study_uid)
    await wait_until(lambda: len(catalogue.study_locations(study.study_uid)) == 2)

    async with Publisher(bus_settings, "test-evict-now") as pub:
        ctx = Context(bus_settings.topics, pub, store, CatalogueClient(catalogue.url))
        # Two copies required: the unverified PACS copy does not count; the files stay.
        two = await evict_study(ctx, EvictionSettings(min_archive_copies=2), study.study_uid,
                                "admin-1")
        assert two.status == TOO_FEW_COPIES and two.copies == ("hsm:HSM1",)
        assert "needs 2 verified archive copies" in two.reason
        assert "it has 1 (hsm:HSM1)" in two.reason
        assert all(store.exists(k) for k in data)
        # The catalogue unreachable: nothing is deleted, and the answer says so.
        down = Context(bus_settings.topics, pub, store,
                       CatalogueClient(f"http://127.0.0.1:{free_port()}"))
        gone = await evict_study(down, EvictionSettings(), study.study_uid, "admin-1")
        assert gone.status == CATALOGUE_UNAVAILABLE and all(store.exists(k) for k in data)
        await down.catalogue.close()
        # One copy required (the default), idle time not waited for: evicted now.
        one = await evict_study(ctx, EvictionSettings(idle_s=3600), study.study_uid, "admin-1")
        assert one.status == EVICTED and one.instances == len(data)
        assert not any(store.exists(k) for k in data)
        await wait_until(lambda: catalogue.of_type(ev.StudyEvicted))
        (fact,) = catalogue.of_type(ev.StudyEvicted)
        assert fact.tier == "cache" and fact.reason.startswith("on demand by admin-1")
        await ctx.catalogue.close()
