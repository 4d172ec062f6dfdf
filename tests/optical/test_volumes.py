"""Logical volumes: spanning, failed burns, deletion guard, offline recall, restarts."""

from __future__ import annotations

import shutil

import pytest

from dicomvault.events.v1 import events_pb2 as ev
from dicomvault.store import FileStore
from optical_burner.burning import burn_volume
from optical_burner.errors import DeleteRefused
from optical_burner.image import read_back
from optical_burner.retrieve import retrieve_study
from optical_burner.volumes import VolumeState, VolumeStore
from tests.optical.helpers import XORRISO, extract


async def test_study_larger_than_a_medium_spans_two_volumes(
        tmp_path, optical_config, make_archive, new_study, cache):
    small = new_study(series=1, per_series=2)
    big = new_study(series=2, per_series=6)
    # A tiny medium: room for about 8 of these instances (each ~8.5 KB -> 10 KB counted).
    cfg = optical_config(media={"TINY": 2 * 1024 * 1024}, media_type="TINY",
                         label_prefix="TST", reserve_bytes=2 * 1024 * 1024 - 90_000)
    arc, emitted = make_archive(cfg)

    assert (await arc.archive_study(small.study_uid)).labels == ["TST-000001"]
    result = await arc.archive_study(big.study_uid)

    # The big study fills what TST-000001 has left, then continues on TST-000002.
    assert result.labels == ["TST-000001", "TST-000002"]
    v1, v2 = arc.store.get("TST-000001"), arc.store.get("TST-000002")
    p1, p2 = v1.study(big.study_uid), v2.study(big.study_uid)
    assert (p1.part, p1.parts, p2.part, p2.parts) == (1, 2, 2, 2)
    assert p1.labels == p2.labels == ["TST-000001", "TST-000002"]
    assert len(p1.instances) + len(p2.instances) == 12
    assert {i.sop_instance_uid for i in p1.instances + p2.instances} == set(big.sop_uids)
    # The full first volume closed with its image; the second is still open.
    assert (v1.state, v1.close_reason, v2.state) == (VolumeState.CLOSED, "full", VolumeState.OPEN)
    assert v1.image.size_bytes <= v1.capacity_bytes
    # One location for the whole spanning study: the labels of its parts, in order.
    assert [a.location for a in emitted.of("StudyArchived")] == [
        "TST-000001", "TST-000001+TST-000002"]
    last = emitted.of("StudyArchived")[-1]
    assert dict(zip(last.sop_instance_uids, last.sha256s, strict=True)) == {
        i.sop_instance_uid: i.sha256 for i in p1.instances + p2.instances}
    assert emitted.of("VolumeClosed")[0].label == "TST-000001"

    # Archiving again is idempotent: same parts, the same fact re-emitted (same id).
    again = await arc.archive_study(big.study_uid)
    assert again.status == "already" and again.labels == result.labels
    ids = [i for _t, p, _k, i in emitted if type(p).__name__ == "StudyArchived"]
    assert ids[-1] == ids[-2]

    # Recall reads both parts back, byte-identical.
    dest = FileStore(tmp_path / "recalled", fsync=False)
    got = await retrieve_study(arc, big.study_uid, dest)
    assert got.status == "done" and got.instances == 12
    for key, _m in cache.keys():
        if key.startswith(big.study_uid):
            assert dest.get(key) == cache.get(key)


async def test_failing_burn_is_retried_and_loses_nothing(
        tmp_path, optical_config, make_archive, new_study):
    study = new_study()
    failing = "sh -c 'echo no medium in drive {device} >&2; exit 1'"
    cfg = optical_config(burner={"backend": "command", "command": failing,
                                 "devices": ["stdio:" + str(tmp_path / "drive.bin")],
                                 "max_attempts": 3})
    arc, emitted = make_archive(cfg)
    await arc.archive_study(study.study_uid)
    await arc.close_volume("DVD-000001")

    vol = await burn_volume(arc, "DVD-000001")

    # Tried three times, then left Closed with the error and the tool's output recorded.
    assert vol.state == VolumeState.CLOSED
    assert len(emitted.of("VolumeBurnFailed")) == 3
    assert [f.exit_status for f in emitted.of("VolumeBurnFailed")] == [1, 1, 1]
    assert "exited with status 1" in vol.last_error
    assert "no medium in drive" in vol.copies[0].output
    assert vol.copies[0].exit_status == 1 and not vol.copies[0].burned
    assert vol.next_burn_at is not None
    # Nothing lost: the files and the image are intact, also after a restart.
    reloaded = VolumeStore(cfg.volume_store).get("DVD-000001")
    assert reloaded.state == VolumeState.CLOSED and reloaded.last_error == vol.last_error
    image = arc.store.image_path("DVD-000001")
    assert read_back(image) == {k: v for k, v in vol.image.files.items()}
    data = arc.store.data("DVD-000001")
    assert all(data.stat(i.storage_key).sha256 == i.sha256
               for s in vol.studies for i in s.instances)

    # With the drive working again the next run burns and verifies it.
    arc.burner.cfg.command = f"{XORRISO} -as cdrecord -v dev={{device}} {{iso}}"
    vol = await burn_volume(arc, "DVD-000001")
    assert vol.state == VolumeState.VERIFIED and vol.last_error == ""


async def test_delete_refused_while_volume_holds_the_only_copy(
        optical_config, make_archive, new_study, catalogue):
    study = new_study()
    arc, emitted = make_archive(optical_config())
    await arc.archive_study(study.study_uid)
    for archived in emitted.of("StudyArchived"):
        catalogue.record(archived)  # the catalogue knows the volume as a location

    # The volume's own location does not count as another copy.
    with pytest.raises(DeleteRefused) as refused:
        await arc.delete_volume("DVD-000001")
    assert refused.value.studies == [study.study_uid]
    assert arc.store.get("DVD-000001") is not None

    # An unverified HSM copy does not count either; a verified one does.
    def on_hsm(verified: bool) -> ev.StudyArchived:
        return ev.StudyArchived(study_instance_uid=study.study_uid, tier="hsm",
                                archive_id="HSM1", location="x", verified=verified,
                                number_of_instances=len(study.sop_uids))

    catalogue.record(on_hsm(verified=False))
    with pytest.raises(DeleteRefused):
        await arc.delete_volume("DVD-000001")
    catalogue.record(on_hsm(verified=True))
    await arc.delete_volume("DVD-000001")
    assert arc.store.get("DVD-000001") is None
    assert not (arc.store.root / "DVD-000001").exists()
    evicted = emitted.of("StudyEvicted")
    assert [(e.tier, e.location) for e in evicted] == [("optical", "DVD-000001")]
    assert emitted.of("VolumeDeleted")[0].label == "DVD-000001"


async def test_delete_uses_an_injected_locations_provider(optical_config, make_archive,
                                                          new_study):
    study = new_study()
    held: dict[str, list[dict]] = {}

    async def locations(uid: str) -> list[dict]:
        return held.get(uid, [])

    arc, _ = make_archive(optical_config(), locations=locations)
    await arc.archive_study(study.study_uid)
    held[study.study_uid] = [{"tier": "optical", "archive_id": "OPTICAL1",
                              "location": "DVD-000001", "verified": True}]
    with pytest.raises(DeleteRefused):
        await arc.delete_volume("DVD-000001")
    held[study.study_uid].append({"tier": "pacs", "archive_id": "PACS1", "location": "ORTHANC",
                                  "verified": True})
    await arc.delete_volume("DVD-000001")


async def test_recall_from_an_offline_volume_once_it_is_mounted(
        tmp_path, optical_config, make_archive, new_study, cache):
    study = new_study()
    arc, emitted = make_archive(optical_config())
    await arc.archive_study(study.study_uid)
    await arc.close_volume("DVD-000001")
    vol = await burn_volume(arc, "DVD-000001")
    assert vol.state == VolumeState.VERIFIED
    burned = tmp_path / "offline.iso"
    shutil.copyfile(tmp_path / "iso" / "DVD-000001-1.iso", burned)  # the disc on the shelf

    # The volume goes offline: its files leave the volume store.
    await arc.release_volume("DVD-000001")
    assert not (arc.store.root / "DVD-000001" / "data").exists()

    # A retrieve now asks for the disc.
    dest = FileStore(tmp_path / "recalled", fsync=False)
    got = await retrieve_study(arc, study.study_uid, dest)
    assert got.status == "offline"
    assert got.media_requests[0]["message"] == "insert volume DVD-000001"
    assert list(arc.media_requests) == ["DVD-000001"]
    assert emitted.of("MediaRequested")[0].message == "insert volume DVD-000001"
    from optical_burner import metrics
    assert metrics.MEDIA_REQUESTS.labels("OPTICAL1")._value.get() == 1

    # The operator mounts the disc (here: its contents extracted) at the mount path.
    extract(burned, tmp_path / "mnt" / "DVD-000001")
    got = await retrieve_study(arc, study.study_uid, dest)
    assert got.status == "done" and got.instances == len(study.files)
    for path in study.files:
        assert path.read_bytes() in {dest.get(k) for k, _m in dest.keys()}
    assert arc.media_requests == {}
    assert metrics.MEDIA_REQUESTS.labels("OPTICAL1")._value.get() == 0


async def test_volumes_survive_a_restart(optical_config, make_archive, new_study):
    cfg = optical_config()
    arc, _ = make_archive(cfg)
    first = new_study()
    await arc.archive_study(first.study_uid)

    arc2, _ = make_archive(cfg)  # a new process over the same volume store
    assert arc2.store.get("DVD-000001").study(first.study_uid) is not None
    second = new_study()
    assert (await arc2.archive_study(second.study_uid)).labels == ["DVD-000001"]
    await arc2.close_volume("DVD-000001")
    third = new_study()
    assert (await arc2.archive_study(third.study_uid)).labels == ["DVD-000002"]
