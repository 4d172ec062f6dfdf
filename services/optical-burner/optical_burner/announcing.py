"""The facts the optical archive announces, built here with their deterministic ids.

A study written to a volume is an archive location at once: StudyArchived(tier="optical",
location=label) — for a spanning study one fact with ``location`` = the labels of its parts
joined by ``+`` in part order (e.g. ``DVD-000007+DVD-000008``), so it counts as one copy.
Announcing the same copy again is the same fact; a copy that grew or holds new bytes of an
instance is a new one."""

from __future__ import annotations

import hashlib

from dicomvault.events import deterministic_id
from dicomvault.events.v1 import events_pb2 as ev
from dicomvault.events.v1 import optical_pb2 as op
from optical_burner.volumes import StudyEntry, Volume, effective, study_labels

TIER = "optical"


def study_archived(archive_id: str, study_uid: str, parts: list[tuple[Volume, StudyEntry]]
                   ) -> tuple[ev.StudyArchived, str]:
    """StudyArchived for what the volumes hold: each SOP Instance UID once, its latest
    copy (a replaced instance's superseded entries do not count). Its id derives from the
    location *and* the instances with their checksums: re-announcing the same copy is the
    same fact, a copy that grew (new instances appended, perhaps on the same volume) or
    holds new bytes of an instance is a new one — which the catalogue records (verified
    again after a replace had unverified the location)."""
    location = "+".join(study_labels(parts))
    current = [i for _v, s in effective(parts) for i in s.instances]
    sops = [i.sop_instance_uid for i in current]
    digest = hashlib.sha256("\n".join(
        sorted(f"{i.sop_instance_uid}:{i.sha256}" for i in current)).encode()).hexdigest()
    msg = ev.StudyArchived(
        study_instance_uid=study_uid, tier=TIER, archive_id=archive_id, location=location,
        number_of_instances=len(sops), size_bytes=sum(i.size_bytes for i in current),
        sop_instance_uids=sops, sha256s=[i.sha256 for i in current], verified=True)
    return msg, deterministic_id("optical-archived", archive_id, study_uid, location,
                                 str(len(sops)), digest)


def volume_closed(archive_id: str, vol: Volume, reason: str) -> tuple[op.VolumeClosed, str]:
    image = vol.image
    msg = op.VolumeClosed(
        archive_id=archive_id, label=vol.label, media_type=vol.media_type,
        capacity_bytes=vol.capacity_bytes, used_bytes=vol.data_bytes,
        image_bytes=image.size_bytes, image_sha256=image.sha256,
        number_of_studies=len(vol.studies), number_of_instances=vol.instance_count,
        reason=reason, study_instance_uids=[s.study_instance_uid for s in vol.studies])
    return msg, deterministic_id("optical-closed", archive_id, vol.label)


def study_evicted(archive_id: str, study_uid: str, location: str, label: str
                  ) -> tuple[ev.StudyEvicted, str]:
    msg = ev.StudyEvicted(study_instance_uid=study_uid, tier=TIER, archive_id=archive_id,
                          location=location, reason=f"volume {label} deleted")
    return msg, deterministic_id("optical-evicted", archive_id, study_uid, label)


def volume_deleted(archive_id: str, vol: Volume, requested_by: str
                   ) -> tuple[op.VolumeDeleted, str]:
    msg = op.VolumeDeleted(archive_id=archive_id, label=vol.label, requested_by=requested_by,
                           study_instance_uids=[s.study_instance_uid for s in vol.studies])
    return msg, deterministic_id("optical-deleted", archive_id, vol.label)
