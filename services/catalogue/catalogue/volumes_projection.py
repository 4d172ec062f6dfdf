"""The optical volumes projection: the facts of the volumes topic (``dicomvault.volumes.v1``).

One row per (archive, volume label), from the optical-burner's facts: VolumeClosed (the
volume with its image and studies), VolumeBurned / VolumeBurnFailed (per copy),
VolumeVerified, VolumeDeleted, MediaRequested ("insert volume DVD-000042"),
MediaRequestWithdrawn (a study no longer waits for the disc: its RETRIEVE jobs were cancelled
or failed; the request goes once no study is left); and a StudyRecalled(tier="optical") from
the studies topic clears the media request of the volumes it was read from (``location`` =
their labels joined by ``+``).

States here: ``Closed``; ``Burned`` once a copy was burned (the service's own Burned means
*every configured* copy, which its facts do not carry); ``Verified`` (every copy read
back); ``Deleted`` (the row stays, as a record). Open volumes have no fact yet: they show up
at their close (their studies are already in ``study_locations``).

Like ``projection``, a pure function of the journal: every time it records is the event's
CloudEvents ``time``; a replay gives the same rows.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from catalogue.models import OpticalVolume
from dicomvault.events import Event
from dicomvault.events.v1 import archive_pb2 as ar
from dicomvault.events.v1 import optical_pb2 as op

VOLUME_FACTS = (op.VolumeClosed, op.VolumeBurned, op.VolumeBurnFailed, op.VolumeVerified,
                op.VolumeDeleted, op.MediaRequested, op.MediaRequestWithdrawn,
                ar.StudyRecalled)
TIER = "optical"


async def _row(session: AsyncSession, archive_id: str, label: str, when: datetime
               ) -> OpticalVolume:
    row = await session.get(OpticalVolume, (archive_id, label))
    if row is None:  # a fact before (or without) its VolumeClosed: start the record here
        row = OpticalVolume(archive_id=archive_id, label=label, state="Closed",
                            study_instance_uids=[], copies={}, media_request_studies=[],
                            updated_at=when)
        session.add(row)
    row.updated_at = when
    return row


async def apply_volumes(session: AsyncSession, event: Event) -> bool:
    """Apply one volume fact; True if a row changed."""
    p, when = event.payload, event.time
    if isinstance(p, ar.StudyRecalled):
        return await _recalled(session, p, when)
    if isinstance(p, op.MediaRequestWithdrawn):
        return await _withdrawn(session, p, when)
    if not p.archive_id or not p.label:
        return False
    row = await _row(session, p.archive_id, p.label, when)
    if isinstance(p, op.VolumeClosed):
        row.media_type, row.capacity_bytes, row.used_bytes = (
            p.media_type, p.capacity_bytes, p.used_bytes)
        row.image_bytes, row.image_sha256 = p.image_bytes, p.image_sha256
        row.number_of_studies, row.number_of_instances = p.number_of_studies, p.number_of_instances
        row.study_instance_uids = list(p.study_instance_uids)
        row.close_reason, row.closed_at = p.reason, when
    elif isinstance(p, op.VolumeBurned):
        row.copies = {**row.copies, str(p.copy): {
            "backend": p.backend, "target": p.target, "bytes": p.bytes,
            "exit_status": p.exit_status, "burned_at": when.isoformat()}}
        row.last_error = ""
        if row.state == "Closed":
            row.state = "Burned"
    elif isinstance(p, op.VolumeBurnFailed):
        row.burn_failures += 1
        row.last_error = f"copy {p.copy} (attempt {p.attempt}): {p.error}"[-2000:]
    elif isinstance(p, op.VolumeVerified):
        if row.state != "Deleted":
            row.state = "Verified"
        row.copies_verified, row.verified_at, row.last_error = p.copies, when, ""
    elif isinstance(p, op.VolumeDeleted):
        row.state, row.deleted_at, row.deleted_by = "Deleted", when, p.requested_by
        _clear_media_request(row)
    elif isinstance(p, op.MediaRequested):
        row.media_requested, row.media_request = True, p.message
        row.media_mount_path = p.mount_path
        if not row.media_request_studies:
            row.media_requested_at = when
        if p.study_instance_uid and p.study_instance_uid not in row.media_request_studies:
            row.media_request_studies = [*row.media_request_studies, p.study_instance_uid]
    return True


def _clear_media_request(row: OpticalVolume) -> None:
    row.media_requested, row.media_request, row.media_request_studies = False, "", []
    row.media_requested_at = None


async def _withdrawn(session: AsyncSession, p: op.MediaRequestWithdrawn, when: datetime
                     ) -> bool:
    """The study no longer waits for the volume; the request is cleared when none is left.
    A withdrawal of a study the row does not list (no request projected) changes nothing."""
    if not p.archive_id or not p.label:
        return False
    row = await session.get(OpticalVolume, (p.archive_id, p.label))
    if row is None or p.study_instance_uid not in (row.media_request_studies or []):
        return False
    row.media_request_studies = [s for s in row.media_request_studies
                                 if s != p.study_instance_uid]
    if not row.media_request_studies:
        _clear_media_request(row)
    row.updated_at = when
    return True


async def _recalled(session: AsyncSession, p: ar.StudyRecalled, when: datetime
                    ) -> bool:
    """A recall from optical read its volumes: their media requests are satisfied."""
    if p.tier != TIER or not p.archive_id or not p.location:
        return False
    changed = False
    for label in p.location.split("+"):
        row = await session.get(OpticalVolume, (p.archive_id, label))
        if row is not None and row.media_requested:
            _clear_media_request(row)
            row.updated_at = when
            changed = True
    return changed
