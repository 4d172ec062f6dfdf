"""A later revision of a study already on optical volumes (a late reconstruction: a new series
stored in the cache after the study was archived) is appended: the cache instances no volume
holds yet become the study's further part(s) on the open (or next) volume; the earlier parts
on Closed / burned volumes are not rewritten; StudyArchived is announced again with every
instance and label; retrieve reads every part; deleting a volume still evicts every part; an
identical re-run writes nothing."""

from __future__ import annotations

from pathlib import Path

from pydicom.uid import generate_uid

from dicomvault.events.v1 import events_pb2 as ev
from dicomvault.store import FileStore
from optical_burner.burning import burn_volume
from optical_burner.image import read_back
from optical_burner.retrieve import retrieve_study
from optical_burner.volumes import VolumeState, is_complete
from tests.optical.helpers import archived_ids, extract, same_as_cache, snapshot
from tests.peers.datasets import ROOT, Study, make_instance


def late_instances(study: Study, folder: Path, catalogue, cache, n: int = 1) -> Study:
    """``n`` instances of a new series of ``study`` (a reconstruction made later), put into
    the cache and recorded by the catalogue as the gateway does."""
    folder.mkdir(parents=True, exist_ok=True)
    late = Study(study_uid=study.study_uid, patient_id=study.patient_id)
    series_uid = generate_uid(ROOT)
    late.series[series_uid] = []
    for i in range(n):
        ds = make_instance(study_uid=study.study_uid, series_uid=series_uid,
                           patient_id=study.patient_id, series_number=9, instance_number=i + 1,
                           seed=900, description="RECON")
        path = folder / f"late_{i}.dcm"
        ds.save_as(path, enforce_file_format=True)
        late.files.append(path)
        late.series[series_uid].append(ds.SOPInstanceUID)
    catalogue.ingest(late, cache)
    return late


async def test_a_later_revision_goes_onto_the_next_volume_and_is_retrieved_whole(
        tmp_path, optical_config, make_archive, new_study, catalogue, cache):
    study = new_study()  # 6 instances
    arc, emitted = make_archive(optical_config())
    assert (await arc.archive_study(study.study_uid)).labels == ["DVD-000001"]
    # DVD-000001 is closed, burned, verified and goes offline (its discs are on the shelf).
    await arc.close_volume("DVD-000001")
    assert (await burn_volume(arc, "DVD-000001")).state == VolumeState.VERIFIED
    await arc.release_volume("DVD-000001")
    first = (arc.store.root / "DVD-000001" / "manifest.json").read_bytes()
    disc = tmp_path / "iso" / "DVD-000001-1.iso"
    disc_bytes = disc.read_bytes()

    # A reconstruction arrives later; the catalogue's new revision makes a new STORE job.
    late = late_instances(study, tmp_path / "late", catalogue, cache)
    result = await arc.archive_study(study.study_uid)

    assert (result.status, result.labels, result.instances, result.written) == (
        "archived", ["DVD-000001", "DVD-000002"], 7, 1)
    # The new instance is part 2 of 2 on the new open volume; DVD-000001 is untouched.
    v2 = arc.store.get("DVD-000002")
    part = v2.study(study.study_uid)
    assert (v2.state, part.part, part.parts, part.labels) == (
        VolumeState.OPEN, 2, 2, ["DVD-000001", "DVD-000002"])
    assert [i.sop_instance_uid for i in part.instances] == late.sop_uids
    assert (arc.store.root / "DVD-000001" / "manifest.json").read_bytes() == first
    assert arc.store.get("DVD-000001").study(study.study_uid).parts == 1  # as its disc says
    assert disc.read_bytes() == disc_bytes
    assert is_complete(arc.store.parts_of(study.study_uid))

    # Re-announced with every instance and label: a new fact (new id).
    facts = emitted.of("StudyArchived")
    assert [(f.location, f.number_of_instances) for f in facts] == [
        ("DVD-000001", 6), ("DVD-000001+DVD-000002", 7)]
    assert sorted(facts[-1].sop_instance_uids) == sorted(study.sop_uids + late.sop_uids)
    assert facts[-1].size_bytes == sum(p.stat().st_size for p in study.files + late.files)
    assert len(set(archived_ids(emitted))) == 2
    # The catalogue's optical location now covers every cache instance.
    for fact in facts:
        catalogue.record(fact)
    summary = await arc.catalogue.study(study.study_uid)
    (loc,) = [x for x in summary["study_locations"] if x["tier"] == "optical"]
    assert (loc["location"], loc["number_of_instances"], loc["verified"]) == (
        "DVD-000001+DVD-000002", 7, True)
    assert summary["instances_per_tier"]["cache"] == 7

    # The same revision again: nothing written, the same fact (same id).
    before = snapshot(arc)
    again = await arc.archive_study(study.study_uid)
    assert (again.status, again.written, again.instances, again.labels) == (
        "already", 0, 7, ["DVD-000001", "DVD-000002"])
    assert snapshot(arc) == before
    ids = archived_ids(emitted)
    assert len(ids) == 3 and ids[-1] == ids[-2]

    # A retrieve reads both parts: DVD-000001 from its disc, once it is mounted.
    dest = FileStore(tmp_path / "recalled", fsync=False)
    got = await retrieve_study(arc, study.study_uid, dest)
    assert got.status == "offline"
    assert [r["label"] for r in got.media_requests] == ["DVD-000001"]
    extract(disc, tmp_path / "mnt" / "DVD-000001")
    got = await retrieve_study(arc, study.study_uid, dest)
    assert (got.status, got.instances) == ("done", 7)
    assert sorted(got.sop_instance_uids) == sorted(study.sop_uids + late.sop_uids)
    assert same_as_cache(dest, cache, study.study_uid) == 7


async def test_a_later_revision_grows_the_part_on_the_open_volume(
        tmp_path, optical_config, make_archive, new_study, catalogue, cache):
    study = new_study()
    arc, emitted = make_archive(optical_config())
    await arc.archive_study(study.study_uid)
    used = arc.store.get("DVD-000001").used_bytes

    late = late_instances(study, tmp_path / "late", catalogue, cache, n=2)
    result = await arc.archive_study(study.study_uid)

    # Still one part on the (open) DVD-000001, now with the new instances.
    assert (result.status, result.labels, result.instances, result.written) == (
        "archived", ["DVD-000001"], 8, 2)
    vol = arc.store.get("DVD-000001")
    (entry,) = vol.studies
    assert (entry.part, entry.parts, len(entry.instances)) == (1, 1, 8)
    assert vol.used_bytes == used + sum(arc.cost(p.stat().st_size) for p in late.files)
    # Same location, more instances: a new fact, not a replay of the first one.
    facts = emitted.of("StudyArchived")
    assert [(f.location, f.number_of_instances) for f in facts] == [
        ("DVD-000001", 6), ("DVD-000001", 8)]
    assert len(set(archived_ids(emitted))) == 2

    # The image holds all of them; a retrieve returns them byte for byte.
    await arc.close_volume("DVD-000001")
    files = read_back(arc.store.image_path("DVD-000001"))
    assert sum(1 for f in files if f.startswith("DICOM/")) == 8
    dest = FileStore(tmp_path / "recalled", fsync=False)
    got = await retrieve_study(arc, study.study_uid, dest)
    assert (got.status, got.instances) == ("done", 8)
    assert same_as_cache(dest, cache, study.study_uid) == 8


async def test_a_large_later_revision_spans_and_deleting_any_volume_evicts_every_part(
        tmp_path, optical_config, make_archive, new_study, catalogue, cache):
    small = new_study(series=1, per_series=2)
    big = new_study(series=2, per_series=6)
    # A tiny medium: room for about 8 instances.
    arc, emitted = make_archive(optical_config(
        media={"TINY": 2 * 1024 * 1024}, media_type="TINY", label_prefix="TST",
        reserve_bytes=2 * 1024 * 1024 - 90_000))
    await arc.archive_study(small.study_uid)
    assert (await arc.archive_study(big.study_uid)).labels == ["TST-000001", "TST-000002"]
    v1 = arc.store.get("TST-000001")
    v1_image, v1_entry = v1.image.sha256, v1.study(big.study_uid).model_copy()

    # Ten more instances: more than a medium holds, so they span again.
    late = late_instances(big, tmp_path / "late", catalogue, cache, n=10)
    result = await arc.archive_study(big.study_uid)
    assert result.status == "archived" and (result.instances, result.written) == (22, 10)
    labels = result.labels
    assert labels[:2] == ["TST-000001", "TST-000002"] and len(labels) >= 3
    parts = arc.store.parts_of(big.study_uid)
    assert [v.label for v, _s in parts] == labels
    assert [s.part for _v, s in parts] == list(range(1, len(labels) + 1))
    assert is_complete(parts)
    # Part 1's volume was closed before: its entry and image are as they were.
    v1 = arc.store.get("TST-000001")
    assert v1.image.sha256 == v1_image and v1.study(big.study_uid) == v1_entry
    # The parts written now carry the new total and every label; all but the last closed.
    for _vol, entry in parts[1:]:
        assert (entry.parts, entry.labels) == (len(labels), labels)
    assert all(v.state != VolumeState.OPEN for v, _s in parts[:-1])
    assert {i.sop_instance_uid for _v, s in parts for i in s.instances} == set(
        big.sop_uids + late.sop_uids)
    fact = emitted.of("StudyArchived")[-1]
    assert (fact.location, fact.number_of_instances) == ("+".join(labels), 22)

    dest = FileStore(tmp_path / "recalled", fsync=False)
    got = await retrieve_study(arc, big.study_uid, dest)
    assert (got.status, got.instances) == ("done", 22)
    assert same_as_cache(dest, cache, big.study_uid) == 22

    # Deleting TST-000001 (whose entry still names only TST-000001+TST-000002) evicts the
    # big study as a whole: every part leaves its volume.
    for f in emitted.of("StudyArchived"):
        catalogue.record(f)
    for study in (small, big):
        catalogue.record(ev.StudyArchived(
            study_instance_uid=study.study_uid, tier="hsm", archive_id="HSM1", location="x",
            verified=True, number_of_instances=len(study.files)))
    await arc.delete_volume("TST-000001")
    evicted = {e.study_instance_uid: e.location for e in emitted.of("StudyEvicted")}
    assert evicted[big.study_uid] == "+".join(labels)
    assert arc.store.parts_of(big.study_uid) == []
    for label in labels[1:]:
        vol = arc.store.get(label)
        assert vol.study(big.study_uid) is None
        assert [e.study_instance_uid for e in vol.evicted] == [big.study_uid]
