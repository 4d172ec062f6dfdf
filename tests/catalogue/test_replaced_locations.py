"""New bytes under a known SOP Instance UID (the gateway's ``replace``) leave the study's copies
on the other tiers holding the old bytes: their ``study_locations`` rows are marked not
verified, so the cache eviction (which counts verified copies) keeps the new bytes until a
re-archive's StudyArchived verifies a copy again. An identical resend, a recall and a new
instance change nothing there. A pure function of the journal: a rebuild gives the same."""

from __future__ import annotations

import hashlib
from pathlib import Path

from pydicom import dcmread

from catalogue.rebuild import rebuild
from dicomvault.bus import Publisher
from dicomvault.dicom import instance_stored as header_stored
from dicomvault.events.v1 import events_pb2 as ev
from dicomvault.store import FileStore, instance_key
from hsm_archiver.context import CatalogueClient, Context
from hsm_archiver.eviction import _copies, sweep
from hsm_archiver.settings import EvictionSettings
from tests.catalogue.conftest import Catalogue
from tests.catalogue.helpers import instance_stored, study_archived, uid
from tests.peers.cache import cache_study, publish
from tests.peers.catalogue import CatalogueService
from tests.peers.wait import wait_until


async def summary(cat: Catalogue, study: str) -> dict:
    r = await cat.client.get(f"/api/v1/studies/{study}")
    assert r.status_code == 200, r.text
    return r.json()


def verified(s: dict) -> list[tuple[str, str, bool, int]]:
    return sorted((x["tier"], x["archive_id"], x["verified"], x["number_of_instances"])
                  for x in s["study_locations"])


async def test_a_replace_unverifies_the_other_tiers_copies_until_archived_again(
        cat: Catalogue) -> None:
    study, series, sop, other = uid(), uid(), uid(), uid()
    await cat.feed(instance_stored(study, series, sop, body=b"as first sent"),
                   instance_stored(study, series, other, body=b"second instance"),
                   study_archived(study, "hsm", "HSM1", n=2),
                   study_archived(study, "optical", "OPTICAL1", n=2))
    assert verified(await summary(cat, study)) == [
        ("hsm", "HSM1", True, 2), ("optical", "OPTICAL1", True, 2)]

    # The modality sends corrected bytes under the same SOP Instance UID: both copies hold
    # the old ones. They stay listed (what they hold is still there) but not verified, so
    # the eviction counts none of them and the cache keeps the only copy of the new bytes.
    await cat.feed(instance_stored(study, series, sop, body=b"corrected, acknowledged"))
    s = await summary(cat, study)
    assert verified(s) == [("hsm", "HSM1", False, 2), ("optical", "OPTICAL1", False, 2)]
    assert _copies(s, cached_instances=2) == []

    # The new revision archived again on HSM1: that copy is verified again, optical not yet.
    await cat.feed(study_archived(study, "hsm", "HSM1", n=2))
    s = await summary(cat, study)
    assert verified(s) == [("hsm", "HSM1", True, 2), ("optical", "OPTICAL1", False, 2)]
    assert _copies(s, cached_instances=2) == [("hsm", "HSM1")]

    # A replay of the journal gives the same rows.
    report = await rebuild(cat.settings(), check_only=True)
    assert report.ok, report.differences


def archived_with(study: str, tier: str, archive_id: str, copies: dict[str, bytes]) -> object:
    """A StudyArchived that says which bytes the copy holds (its ``sha256s``)."""
    event = study_archived(study, tier, archive_id, n=len(copies))
    uids = sorted(copies)
    event.payload.sop_instance_uids.extend(uids)
    event.payload.sha256s.extend(hashlib.sha256(copies[u]).hexdigest() for u in uids)
    return event


async def test_a_copy_of_the_old_bytes_archived_after_the_replace_is_not_verified(
        cat: Catalogue) -> None:
    """The archiver read the cache before the replace and reports after it: its copy holds
    the old bytes, which its checksums say, so it does not count as a verified copy."""
    study, series, sop, other = uid(), uid(), uid(), uid()
    await cat.feed(instance_stored(study, series, sop, body=b"as first sent"),
                   instance_stored(study, series, other, body=b"second instance"),
                   instance_stored(study, series, sop, body=b"corrected, acknowledged"))
    old = {sop: b"as first sent", other: b"second instance"}
    await cat.feed(archived_with(study, "hsm", "HSM1", old))
    s = await summary(cat, study)
    assert verified(s) == [("hsm", "HSM1", False, 2)]
    assert _copies(s, cached_instances=2) == []
    # The new revision's job reports the current bytes: verified.
    await cat.feed(archived_with(study, "hsm", "HSM1", {**old, sop: b"corrected, acknowledged"}))
    assert verified(await summary(cat, study)) == [("hsm", "HSM1", True, 2)]
    # A copy of the bytes a PACS sent back in a recall (recorded as the cache's copy) is
    # those bytes, current too; a fact without checksums is taken as it says.
    await cat.feed(instance_stored(study, series, other, body=b"the PACS's encoding",
                                   source="recall"),
                   archived_with(study, "optical", "OPTICAL1", {
                       sop: b"corrected, acknowledged", other: b"the PACS's encoding"}),
                   study_archived(study, "pacs", "PACS1", n=2))
    assert verified(await summary(cat, study)) == [
        ("hsm", "HSM1", True, 2), ("optical", "OPTICAL1", True, 2), ("pacs", "PACS1", True, 2)]
    report = await rebuild(cat.settings(), check_only=True)
    assert report.ok, report.differences


async def test_a_resend_a_recall_or_a_new_instance_keeps_the_copies_verified(
        cat: Catalogue) -> None:
    study, series, sop = uid(), uid(), uid()
    await cat.feed(instance_stored(study, series, sop, body=b"as first sent"),
                   study_archived(study, "hsm", "HSM1", n=1),
                   study_archived(study, "pacs", "PACS1", n=1))
    # The same bytes again (a resend under a new event id).
    await cat.feed(instance_stored(study, series, sop, body=b"as first sent"))
    # Our own instance coming back from the PACS with its own file meta group.
    await cat.feed(instance_stored(study, series, sop, body=b"the PACS's encoding",
                                   source="recall"))
    assert verified(await summary(cat, study)) == [
        ("hsm", "HSM1", True, 1), ("pacs", "PACS1", True, 1)]
    # A new instance: the copies still hold every old one, verified; they say they hold
    # fewer instances than the cache, which the eviction sees by itself.
    await cat.feed(instance_stored(study, series, uid(), body=b"a late instance"))
    s = await summary(cat, study)
    assert verified(s) == [("hsm", "HSM1", True, 1), ("pacs", "PACS1", True, 1)]
    assert _copies(s, cached_instances=2) == []
    report = await rebuild(cat.settings(), check_only=True)
    assert report.ok, report.differences


async def test_the_eviction_keeps_a_replaced_study_until_it_is_archived_again(
        bus_settings, tmp_path: Path) -> None:
    # The real catalogue service on the broker, the hsm-archiver's eviction sweep.
    catalogue = CatalogueService(bus_settings, tmp_path / "catalogue").start()
    try:
        cache_root = tmp_path / "cache"
        store = FileStore(cache_root, fsync=False)
        study, data = await cache_study(bus_settings, cache_root, tmp_path / "in", catalogue)
        n = len(data)
        await publish(bus_settings, ev.StudyArchived(
            study_instance_uid=study.study_uid, tier="hsm", archive_id="HSM1", verified=True,
            number_of_instances=n, location="x", job_id="job-1"), study.study_uid)
        await wait_until(lambda: catalogue.study_locations(study.study_uid))

        # A replace: new bytes in the cache, InstanceStored with their sha256.
        ds = dcmread(study.files[0])
        ds.ImageComments = "CORRECTED"
        ds.save_as(tmp_path / "corrected.dcm", enforce_file_format=True)
        raw = (tmp_path / "corrected.dcm").read_bytes()
        key = instance_key(study.study_uid, ds.SeriesInstanceUID, ds.SOPInstanceUID)
        store.put(key, raw)
        await publish(bus_settings, header_stored(raw, key, source="dimse"), study.study_uid)
        await wait_until(lambda: not catalogue.study_locations(study.study_uid)[0]["verified"])

        async with Publisher(bus_settings, "test-evict") as pub:
            ctx = Context(bus_settings.topics, pub, store, CatalogueClient(catalogue.url))
            settings = EvictionSettings(min_archive_copies=1, idle_s=0)
            # HSM1 holds the old bytes only: the new ones stay in the cache.
            assert await sweep(ctx, settings) == []
            assert store.get(key) == raw
            # Archived again (the new revision's STORE job): now the study may go.
            await publish(bus_settings, ev.StudyArchived(
                study_instance_uid=study.study_uid, tier="hsm", archive_id="HSM1",
                verified=True, number_of_instances=n, location="x", job_id="job-2"),
                study.study_uid)
            await wait_until(lambda: catalogue.study_locations(study.study_uid)[0]["verified"])
            assert await sweep(ctx, settings) == [study.study_uid]
            assert not store.exists(key)
            await ctx.catalogue.close()
    finally:
        catalogue.stop()
