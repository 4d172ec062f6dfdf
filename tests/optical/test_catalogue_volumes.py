"""The catalogue's optical volumes projection (``catalogue.volumes_projection``, migration
0003, ``catalogue.volumes_api``) fed with the facts a real optical archive emits: a volume
closed, burned, verified, released, asked for ("insert volume …"), recalled from, deleted.

Until the catalogue's dispatch includes it (``projection.apply``, the consumer's topics and
``api.build_app``) the facts are applied here the way ``apply`` would, one transaction each.
"""

from __future__ import annotations

import shutil

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from catalogue.models import Base
from dicomvault.events.v1 import events_pb2 as ev
from dicomvault.jobs import Job
from optical_burner.burning import burn_volume
from optical_burner.jobs import Executors
from tests.optical.helpers import VolumesCatalogue, extract, volume_facts


async def test_volume_facts_projected_and_served(tmp_path, optical_config, make_archive,
                                                 new_study, cache, catalogue):
    async with VolumesCatalogue(tmp_path) as vc:
        feed, http = vc.feed, vc.http
        # Migration 0003 creates exactly what the model declares.
        async with vc.engine.connect() as conn:
            diffs = await conn.run_sync(lambda c: compare_metadata(
                MigrationContext.configure(c), Base.metadata))
        assert [d for d in diffs if "optical_volumes" in repr(d)] == []

        # A study on DVD-000001: closed, burned, verified by the real archive.
        arc, emitted = make_archive(optical_config())
        study = new_study()
        await arc.archive_study(study.study_uid)
        await arc.close_volume("DVD-000001")
        await burn_volume(arc, "DVD-000001")
        await feed(volume_facts(emitted))
        (vol,) = (await http.get("/api/v1/volumes")).json()["volumes"]
        assert (vol["archive_id"], vol["label"], vol["state"], vol["close_reason"]) == (
            "OPTICAL1", "DVD-000001", "Verified", "manual")
        assert vol["study_instance_uids"] == [study.study_uid] and vol["copies_verified"] == 1
        assert vol["copies"]["1"]["backend"] == "iso-folder" and vol["media_request"] is None
        assert vol["image_sha256"] == arc.store.get("DVD-000001").image.sha256

        # Offline, a recall asks for the disc: the media request is projected …
        shutil.copyfile(tmp_path / "iso" / "DVD-000001-1.iso", tmp_path / "shelf.iso")
        await arc.release_volume("DVD-000001")
        run = Executors(arc, cache)
        job = Job(id="job-1", queue="OPTICAL1-retrieve", kind="RETRIEVE", study_uid=study.study_uid,
                  target="OPTICAL1")

        async def progress(*_a, **_k) -> None:
            return None

        assert (await run.retrieve(job, progress)).status == "waiting"
        before = len(emitted)
        await feed(volume_facts(emitted[before - 1:]))
        (req,) = (await http.get("/api/v1/media-requests")).json()["media_requests"]
        assert (req["label"], req["message"], req["studies"]) == (
            "DVD-000001", "insert volume DVD-000001", [study.study_uid])
        # … and the recall from the mounted disc (StudyRecalled, tier optical) clears it.
        extract(tmp_path / "shelf.iso", tmp_path / "mnt" / "DVD-000001")
        assert (await run.retrieve(job, progress)).status == "done"
        await feed([p for _t, p, _k, _i in emitted[before:]
                           if type(p).__name__ == "StudyRecalled"])
        assert (await http.get("/api/v1/media-requests")).json()["media_requests"] == []

        # Deleted once HSM has a verified copy: the row stays as a record.
        catalogue.record(ev.StudyArchived(study_instance_uid=study.study_uid, tier="hsm",
                                          archive_id="HSM1", location="x", verified=True))
        for fact in emitted.of("StudyArchived"):
            catalogue.record(fact)
        await arc.delete_volume("DVD-000001", requested_by="rest")
        await feed(emitted.of("VolumeDeleted"))
        got = (await http.get("/api/v1/volumes/OPTICAL1/DVD-000001")).json()
        assert (got["state"], got["deleted_by"]) == ("Deleted", "rest")
        assert (await http.get("/api/v1/volumes", params={"state": "verified"})).json() == {
            "volumes": []}
        assert (await http.get("/api/v1/volumes", params={"state": "Lost"})).status_code == 422
        assert (await http.get("/api/v1/volumes/OPTICAL1/DVD-999999")).status_code == 404

        # A replay of the journalled facts into a fresh database gives the same rows (rebuild).
        assert await vc.replay_matches()
