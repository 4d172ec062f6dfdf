"""New bytes under a SOP Instance UID a volume already holds (the gateway's duplicate policy
``replace``) are written again: in place while the old copy is on the open volume and it has
room for the difference, else into the study's next part — a Closed volume and its disc are
never rewritten. A retrieve reads each instance's latest write only, and does not ask for a
disc that holds nothing but superseded copies; StudyArchived counts each instance once and
is a new fact, which the catalogue records verified again after the replace unverified it."""

from __future__ import annotations

import hashlib
from pathlib import Path

from pydicom import dcmread

from dicomvault.bus.broker import free_port
from dicomvault.dicom import instance_stored
from dicomvault.store import FileStore, instance_key
from optical_burner.burning import burn_volume
from optical_burner.retrieve import retrieve_study
from optical_burner.settings import OpticalSettings
from optical_burner.volumes import VolumeState, is_complete
from tests.optical.helpers import (
    STORE,
    archived_ids,
    extract,
    running,
    same_as_cache,
    snapshot,
    stable,
    wait_until,
)
from tests.peers.cache import cache_study, publish
from tests.peers.datasets import Study


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def changed_copy(original: Path, folder: Path, grow: int = 3000) -> Path:
    """The same instance (same UIDs) with other bytes: an added comment of ``grow`` bytes."""
    folder.mkdir(parents=True, exist_ok=True)
    ds = dcmread(original)
    ds.ImageComments = "CORRECTED " + "x" * grow
    path = folder / f"replaced_{original.name}"
    ds.save_as(path, enforce_file_format=True)
    return path


def replace(study: Study, index: int, folder: Path, catalogue, cache, grow: int = 3000
            ) -> tuple[str, bytes, bytes]:
    """Instance ``index`` of ``study`` replaced in the cache with other bytes and the
    catalogue told (InstanceStored with the new sha256), as the gateway's ``replace`` does.
    Returns its UID, old and new bytes."""
    old = study.files[index].read_bytes()
    path = changed_copy(study.files[index], folder, grow)
    ds = dcmread(path, stop_before_pixels=True)
    catalogue.ingest(Study(study_uid=study.study_uid, patient_id=study.patient_id, files=[path],
                           series={ds.SeriesInstanceUID: [ds.SOPInstanceUID]}), cache)
    return ds.SOPInstanceUID, old, path.read_bytes()


def key_of(study: Study, sop: str) -> str:
    series = next(s for s, sops in study.series.items() if sop in sops)
    return instance_key(study.study_uid, series, sop)


async def optical_location(arc, study_uid: str) -> dict:
    summary = await arc.catalogue.study(study_uid)
    (loc,) = [x for x in summary["study_locations"] if x["tier"] == "optical"]
    return loc


async def test_new_bytes_of_an_instance_on_a_closed_volume_go_into_the_next_part(
        tmp_path, optical_config, make_archive, new_study, catalogue, cache):
    study = new_study()  # 6 instances
    arc, emitted = make_archive(optical_config())
    await arc.archive_study(study.study_uid)
    catalogue.record(emitted.of("StudyArchived")[-1])
    await arc.close_volume("DVD-000001")
    first = (arc.store.root / "DVD-000001" / "manifest.json").read_bytes()
    image = arc.store.image_path("DVD-000001").read_bytes()

    # The modality sends a corrected object under the same SOP Instance UID; the gateway's
    # "replace" puts it into the cache and the catalogue records the new bytes: the optical
    # copy holds the old ones, so it no longer counts as verified (eviction must wait).
    sop, old, new = replace(study, 1, tmp_path / "replaced", catalogue, cache)
    assert (await optical_location(arc, study.study_uid))["verified"] is False

    # The next STORE writes the new bytes as part 2 on a new open volume; DVD-000001 and
    # its image stay as they were (its discs are write-once).
    result = await arc.archive_study(study.study_uid)
    assert (result.status, result.labels, result.instances, result.written) == (
        "archived", ["DVD-000001", "DVD-000002"], 6, 1)
    part = arc.store.get("DVD-000002").study(study.study_uid)
    assert (part.part, part.parts, part.labels) == (2, 2, ["DVD-000001", "DVD-000002"])
    assert [(i.sop_instance_uid, i.sha256, i.size_bytes) for i in part.instances] == [
        (sop, sha(new), len(new))]
    assert (arc.store.root / "DVD-000001" / "manifest.json").read_bytes() == first
    assert arc.store.image_path("DVD-000001").read_bytes() == image
    assert is_complete(arc.store.parts_of(study.study_uid))

    # StudyArchived counts each instance once, with the current bytes, and is a new fact:
    # the catalogue records it, verified again.
    fact = emitted.of("StudyArchived")[-1]
    assert (fact.location, fact.number_of_instances) == ("DVD-000001+DVD-000002", 6)
    assert sorted(fact.sop_instance_uids) == sorted(study.sop_uids)
    sizes = [p.stat().st_size for p in study.files]
    assert fact.size_bytes == sum(sizes) - len(old) + len(new)
    assert len(set(archived_ids(emitted))) == 2
    catalogue.record(fact)
    loc = await optical_location(arc, study.study_uid)
    assert (loc["location"], loc["number_of_instances"], loc["verified"]) == (
        "DVD-000001+DVD-000002", 6, True)

    # Nothing changed since: nothing written, the same fact again.
    before = snapshot(arc)
    again = await arc.archive_study(study.study_uid)
    assert (again.status, again.written, again.instances) == ("already", 0, 6)
    assert snapshot(arc) == before
    ids = archived_ids(emitted)
    assert ids[-1] == ids[-2]

    # A retrieve returns the new bytes for that UID, each instance once.
    dest = FileStore(tmp_path / "recalled", fsync=False)
    got = await retrieve_study(arc, study.study_uid, dest)
    assert (got.status, got.instances) == ("done", 6)
    assert sorted(got.sop_instance_uids) == sorted(study.sop_uids)
    assert dest.get(key_of(study, sop)) == new != old
    assert same_as_cache(dest, cache, study.study_uid) == 6


async def test_new_bytes_of_an_instance_on_the_open_volume_are_rewritten_in_place(
        tmp_path, optical_config, make_archive, new_study, catalogue, cache):
    study = new_study()
    arc, emitted = make_archive(optical_config())
    await arc.archive_study(study.study_uid)
    vol = arc.store.get("DVD-000001")
    used, data, size = vol.used_bytes, vol.data_bytes, vol.studies[0].size_bytes

    sop, old, new = replace(study, 4, tmp_path / "replaced", catalogue, cache)
    result = await arc.archive_study(study.study_uid)

    # Still one part on the open DVD-000001, one entry for the UID, with the new bytes.
    assert (result.status, result.labels, result.instances, result.written) == (
        "archived", ["DVD-000001"], 6, 1)
    vol = arc.store.get("DVD-000001")
    (entry,) = vol.studies
    assert vol.state == VolumeState.OPEN and (entry.part, entry.parts) == (1, 1)
    assert len(entry.instances) == 6
    (inst,) = [i for i in entry.instances if i.sop_instance_uid == sop]
    assert (inst.sha256, inst.size_bytes) == (sha(new), len(new))
    assert arc.store.data("DVD-000001").get(inst.storage_key) == new
    assert vol.used_bytes == used + arc.cost(len(new)) - arc.cost(len(old))
    assert vol.data_bytes == data + len(new) - len(old)
    assert entry.size_bytes == size + len(new) - len(old)
    # Same location, other bytes: a new fact.
    facts = emitted.of("StudyArchived")
    assert [(f.location, f.number_of_instances) for f in facts] == [
        ("DVD-000001", 6), ("DVD-000001", 6)]
    assert len(set(archived_ids(emitted))) == 2

    # Its image holds the new bytes; so does a retrieve.
    await arc.close_volume("DVD-000001")
    (inst,) = [i for i in arc.store.get("DVD-000001").studies[0].instances
               if i.sop_instance_uid == sop]
    extract(arc.store.image_path("DVD-000001"), tmp_path / "image")
    assert (tmp_path / "image" / inst.file_id).read_bytes() == new
    assert sum(1 for p in (tmp_path / "image" / "DICOM").rglob("*") if p.is_file()) == 6
    dest = FileStore(tmp_path / "recalled", fsync=False)
    got = await retrieve_study(arc, study.study_uid, dest)
    assert (got.status, got.instances) == ("done", 6)
    assert same_as_cache(dest, cache, study.study_uid) == 6


async def test_no_room_on_the_open_volume_for_the_new_bytes_makes_them_the_next_part(
        tmp_path, optical_config, make_archive, new_study, catalogue, cache):
    study = new_study()
    # A medium with room for the study and 4 KiB more (not full: it stays open).
    probe, _ = make_archive(optical_config())
    usable = sum(probe.cost(p.stat().st_size) for p in study.files) + 4096
    capacity = 2 * 1024 * 1024
    arc, emitted = make_archive(optical_config(
        volume_store=tmp_path / "tiny", media={"TINY": capacity}, media_type="TINY",
        label_prefix="TST", reserve_bytes=capacity - usable))
    await arc.archive_study(study.study_uid)
    assert arc.store.get("TST-000001").state == VolumeState.OPEN

    # The new bytes are 8 KB longer: they do not fit where the old ones are.
    sop, old, new = replace(study, 0, tmp_path / "replaced", catalogue, cache, grow=8000)
    result = await arc.archive_study(study.study_uid)
    assert (result.status, result.labels, result.written) == (
        "archived", ["TST-000001", "TST-000002"], 1)
    v1, v2 = arc.store.get("TST-000001"), arc.store.get("TST-000002")
    assert (v1.state, v1.close_reason) == (VolumeState.CLOSED, "full")
    (kept,) = [i for i in v1.studies[0].instances if i.sop_instance_uid == sop]
    assert kept.sha256 == sha(old)  # the image of TST-000001 holds the old bytes
    part = v2.study(study.study_uid)
    assert (part.part, [(i.sop_instance_uid, i.sha256) for i in part.instances]) == (
        2, [(sop, sha(new))])
    fact = emitted.of("StudyArchived")[-1]
    assert (fact.location, fact.number_of_instances) == ("TST-000001+TST-000002", 6)

    dest = FileStore(tmp_path / "recalled", fsync=False)
    got = await retrieve_study(arc, study.study_uid, dest)
    assert (got.status, got.instances) == ("done", 6)
    assert dest.get(key_of(study, sop)) == new
    assert same_as_cache(dest, cache, study.study_uid) == 6


async def test_a_disc_holding_only_superseded_copies_is_not_asked_for(
        tmp_path, optical_config, make_archive, new_study, catalogue, cache):
    study = new_study(series=1, per_series=3)
    arc, emitted = make_archive(optical_config())
    await arc.archive_study(study.study_uid)
    # DVD-000001 is closed, burned, verified and goes offline.
    await arc.close_volume("DVD-000001")
    assert (await burn_volume(arc, "DVD-000001")).state == VolumeState.VERIFIED
    await arc.release_volume("DVD-000001")

    # One instance replaced: its new bytes are part 2, on the open DVD-000002.
    sop, _old, new = replace(study, 0, tmp_path / "r0", catalogue, cache)
    await arc.archive_study(study.study_uid)
    dest = FileStore(tmp_path / "recalled", fsync=False)
    # Asked for that instance only: read from DVD-000002, the offline disc is not needed.
    got = await retrieve_study(arc, study.study_uid, dest, sop_uids=[sop])
    assert (got.status, got.sop_instance_uids, got.media_requests) == ("done", [sop], [])
    assert dest.get(key_of(study, sop)) == new
    assert emitted.of("MediaRequested") == [] and arc.media_requests == {}
    # The whole study still needs DVD-000001 for the other two.
    got = await retrieve_study(arc, study.study_uid, dest)
    assert got.status == "offline"
    assert [r["label"] for r in got.media_requests] == ["DVD-000001"]
    arc.media_requests.clear()  # (that RETRIEVE job is given up: see test_media_withdrawal)

    # The other two replaced as well: DVD-000001 holds only superseded copies now.
    for index in (1, 2):
        replace(study, index, tmp_path / f"r{index}", catalogue, cache)
    result = await arc.archive_study(study.study_uid)
    assert (result.labels, result.written) == (["DVD-000001", "DVD-000002"], 2)
    requested = len(emitted.of("MediaRequested"))
    got = await retrieve_study(arc, study.study_uid, dest)
    assert (got.status, got.instances, got.media_requests) == ("done", 3, [])
    assert sorted(got.sop_instance_uids) == sorted(study.sop_uids)
    assert len(emitted.of("MediaRequested")) == requested and arc.media_requests == {}
    assert same_as_cache(dest, cache, study.study_uid) == 3
    # The study is complete on all its parts, DVD-000001's included.
    assert is_complete(arc.store.parts_of(study.study_uid))


async def test_the_service_rearchives_a_replaced_instance_and_the_catalogue_verifies_it(
        tmp_path, bus_settings, optical_config, catalogue_service):
    # The real catalogue (a subprocess on the broker) and the service as ``run`` wires it.
    catalogue = catalogue_service
    settings = OpticalSettings(
        bus=bus_settings, http={"host": "127.0.0.1", "port": free_port()},
        cache={"root": tmp_path / "cache", "fsync": False}, auth={"enabled": False},
        optical=optical_config(
            catalogue_url=catalogue.url, adopt_retry_s=0.5,
            retry={"max_retries": 20, "initial_delay_s": 0.2, "max_delay_s": 1.0}))
    cache = FileStore(settings.cache.root, fsync=False)
    study, data = await cache_study(bus_settings, settings.cache.root, tmp_path / "ct",
                                    catalogue)

    def optical() -> dict:
        locs = [x for x in catalogue.study_locations(study.study_uid) if x["tier"] == "optical"]
        return locs[0] if locs else {}

    async with running(settings) as http:
        await publish(bus_settings, stable(study), study.study_uid)
        await wait_until(lambda: optical().get("verified") is True, "the optical copy")
        assert (await http.post("/api/v1/volumes/DVD-000001/close")).status_code == 200

        # The gateway's "replace": new bytes in the cache, InstanceStored with their sha256.
        path = changed_copy(study.files[2], tmp_path / "replaced")
        raw = path.read_bytes()
        key = key_of(study, study.sop_uids[2])
        cache.put(key, raw)
        await publish(bus_settings, instance_stored(raw, key, source="dimse"), study.study_uid)
        # The catalogue: the optical copy holds the old bytes, not verified any more.
        await wait_until(lambda: optical().get("verified") is False, "the copy unverified")

        # The new revision's StudyStable: a STORE job writes the new bytes as part 2, and the
        # new StudyArchived makes the optical copy verified again, each instance once.
        await publish(bus_settings, stable(study, revision=2), study.study_uid)
        await wait_until(lambda: catalogue.job_states(STORE) == ["DONE", "DONE"],
                         "the second STORE job")
        await wait_until(lambda: optical().get("verified") is True, "the copy verified again")
        loc = optical()
        assert (loc["location"], loc["number_of_instances"]) == (
            "DVD-000001+DVD-000002", len(data))
        volume = (await http.get("/api/v1/volumes/DVD-000002")).json()
        assert [(s["part"], s["parts"], s["number_of_instances"]) for s in volume["studies"]] == [
            (2, 2, 1)]
