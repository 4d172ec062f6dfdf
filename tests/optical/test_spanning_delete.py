"""Deleting one volume of a spanning study evicts the study from the optical archive as a
whole: the other parts leave their volumes' manifests too (an Open volume frees their space,
a Closed one keeps its image, which is what its discs hold), so no volume keeps part of a
study whose optical copy is gone."""

from __future__ import annotations

import hashlib

import pytest

from dicomvault.events.v1 import events_pb2 as ev
from dicomvault.store import FileStore
from optical_burner.errors import DeleteRefused
from optical_burner.retrieve import retrieve_study
from optical_burner.volumes import VolumeState


async def spanning(optical_config, make_archive, new_study, catalogue):
    small = new_study(series=1, per_series=2)
    big = new_study(series=2, per_series=6)
    # A tiny medium: room for about 8 instances, so the big study spans two volumes.
    arc, emitted = make_archive(optical_config(
        media={"TINY": 2 * 1024 * 1024}, media_type="TINY", label_prefix="TST",
        reserve_bytes=2 * 1024 * 1024 - 90_000))
    await arc.archive_study(small.study_uid)
    assert (await arc.archive_study(big.study_uid)).labels == ["TST-000001", "TST-000002"]
    for fact in emitted.of("StudyArchived"):
        catalogue.record(fact)
    return arc, emitted, small, big


def on_hsm(study) -> ev.StudyArchived:
    return ev.StudyArchived(study_instance_uid=study.study_uid, tier="hsm", archive_id="HSM1",
                            location="x", verified=True, number_of_instances=len(study.files))


async def test_deleting_the_last_part_evicts_the_whole_study(
        tmp_path, optical_config, make_archive, new_study, catalogue):
    arc, emitted, small, big = await spanning(optical_config, make_archive, new_study, catalogue)
    first = arc.store.get("TST-000001")
    image_sha = first.image.sha256

    # The other part on TST-000001 does not count as another copy of the big study.
    with pytest.raises(DeleteRefused) as refused:
        await arc.delete_volume("TST-000002")
    assert refused.value.studies == [big.study_uid]

    # With a verified HSM copy, deleting TST-000002 evicts the big study from optical.
    catalogue.record(on_hsm(big))
    await arc.delete_volume("TST-000002", requested_by="test")
    assert arc.store.get("TST-000002") is None
    assert [(e.study_instance_uid, e.location) for e in emitted.of("StudyEvicted")] == [
        (big.study_uid, "TST-000001+TST-000002")]
    # Part 1 left TST-000001's manifest (recorded as evicted); the closed volume keeps its
    # image unchanged, and the small study.
    first = arc.store.get("TST-000001")
    assert [s.study_instance_uid for s in first.studies] == [small.study_uid]
    (gone,) = first.evicted
    assert (gone.study_instance_uid, gone.part, gone.parts, gone.reason) == (
        big.study_uid, 1, 2, "volume TST-000002 deleted")
    assert first.state == VolumeState.CLOSED and first.image.sha256 == image_sha
    assert hashlib.sha256(arc.store.image_path("TST-000001").read_bytes()).hexdigest() == \
        image_sha
    assert arc.store.parts_of(big.study_uid) == []
    assert first.summary()["evicted"][0]["study_instance_uid"] == big.study_uid
    # No part is served any more; TST-000001 is judged on the small study alone.
    got = await retrieve_study(arc, big.study_uid, FileStore(tmp_path / "out", fsync=False))
    assert got.status == "not_found"
    with pytest.raises(DeleteRefused) as refused:
        await arc.delete_volume("TST-000001")
    assert refused.value.studies == [small.study_uid]
    # Archiving the study again writes it afresh, whole, onto new volumes.
    again = await arc.archive_study(big.study_uid)
    assert again.status == "archived" and "TST-000001" not in again.labels
    assert sum(len(s.instances) for _v, s in arc.store.parts_of(big.study_uid)) == 12


async def test_deleting_the_first_part_frees_the_open_volume(
        tmp_path, optical_config, make_archive, new_study, catalogue):
    arc, emitted, small, big = await spanning(optical_config, make_archive, new_study, catalogue)
    last = arc.store.get("TST-000002")
    assert last.state == VolumeState.OPEN and last.used_bytes > 0
    keys = [i.storage_key for i in last.study(big.study_uid).instances]

    catalogue.record(on_hsm(big))
    with pytest.raises(DeleteRefused):  # the small study has no other copy yet
        await arc.delete_volume("TST-000001")
    catalogue.record(on_hsm(small))
    await arc.delete_volume("TST-000001")

    # The open volume drops part 2 and its files: its space is free for the next study.
    last = arc.store.get("TST-000002")
    assert last.studies == [] and (last.used_bytes, last.data_bytes) == (0, 0)
    assert [e.part for e in last.evicted] == [2]
    data = arc.store.data("TST-000002")
    assert not any(data.exists(k) for k in keys)
    assert sorted(e.study_instance_uid for e in emitted.of("StudyEvicted")) == sorted(
        [small.study_uid, big.study_uid])
    assert arc.store.parts_of(big.study_uid) == []
    # The manifest change survives a restart.
    arc2, _ = make_archive(arc.cfg)
    assert arc2.store.get("TST-000002").studies == []
    assert (await arc2.archive_study(new_study().study_uid)).labels == ["TST-000002"]
