"""The projections as a pure function of the journal: ``apply(session, event, seq)``.

The live consumer and ``rebuild`` call the same function in journal order, so a replay gives
the same rows as the live tables. It never reads the wall clock: every time it records comes
from the event (its ``received_time`` or its CloudEvents ``time``).
"""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from catalogue.jobs_projection import JOB_FACTS, apply_jobs
from catalogue.models import Instance, Location, Patient, Series, Study, StudyLocation
from catalogue.volumes_projection import VOLUME_FACTS, apply_volumes
from dicomvault.events import Event
from dicomvault.events.v1 import events_pb2 as ev
from dicomvault.events.v1 import jobs_pb2 as jb

DEFAULT_TIER = "cache"
RECALL = "recall"  # InstanceStored.source of an instance put back into a tier by a recall


def ts(value: Timestamp, fallback: datetime) -> datetime:
    """A protobuf Timestamp as an aware datetime; the fallback when it is unset."""
    if value.seconds == 0 and value.nanos == 0:
        return fallback
    return value.ToDatetime(tzinfo=UTC)


async def apply(session: AsyncSession, event: Event, seq: int) -> bool:
    """Apply one journalled event to the projections; True if a projection changed."""
    p = event.payload
    if isinstance(p, ev.InstanceStored):
        changed = await _instance_stored(session, p, event.time, seq)
    elif isinstance(p, ev.StudyStable):
        changed = await _study_stable(session, p)
    elif isinstance(p, ev.StudyArchived):
        changed = await _study_archived(session, p, event.time)
    elif isinstance(p, ev.StudyEvicted):
        changed = await _study_evicted(session, p)
    elif isinstance(p, (*JOB_FACTS, jb.QueueStateChanged)):
        changed = await apply_jobs(session, event)
    elif isinstance(p, VOLUME_FACTS):
        changed = await apply_volumes(session, event)
    else:
        return False  # RecallRequested, JobCommandIssued, …: journal only
    await session.flush()
    return changed


def _set(row: object, values: dict[str, object], only_non_empty: bool = False) -> bool:
    changed = False
    for name, value in values.items():
        if only_non_empty and value in ("", 0, None):
            continue
        if getattr(row, name) != value:
            setattr(row, name, value)
            changed = True
    return changed


async def _instance_stored(session: AsyncSession, p: ev.InstanceStored, time: datetime,
                           seq: int) -> bool:
    received = ts(p.received_time, time)
    tier = p.tier or DEFAULT_TIER
    location = await session.get(Location, (p.sop_instance_uid, tier))
    instance = await session.get(Instance, p.sop_instance_uid)
    same = instance is not None and instance.sha256 == p.sha256
    loc_values = {"study_instance_uid": p.study_instance_uid, "storage_key": p.storage_key,
                  "size_bytes": p.size_bytes, "sha256": p.sha256}
    if same:
        # The same bytes again (a resend, a recall into the cache): only a missing location
        # is recorded; the study's revision does not move, so nothing is re-archived.
        if location is None:
            session.add(Location(sop_instance_uid=p.sop_instance_uid, tier=tier,
                                 stored_at=received, **loc_values))
            return True
        return _set(location, loc_values)
    if instance is not None and p.source == RECALL:
        # Our own instance coming back (a remote PACS C-MOVEs it to the gateway with its own
        # file meta group, so the Part 10 bytes differ): only this tier's copy is recorded,
        # with its own size and checksum. The instance, the study's revision and the other
        # tiers' copies stay: nothing is re-archived, no StudyStable follows.
        if location is None:
            session.add(Location(sop_instance_uid=p.sop_instance_uid, tier=tier,
                                 stored_at=received, **loc_values))
            return True
        return _set(location, {**loc_values, "stored_at": received})

    # New instance, or new bytes under a known SOP Instance UID (the gateway's "replace").
    patient_key = (p.patient_id, p.issuer_of_patient_id)
    patient = await session.get(Patient, patient_key)
    patient_values = {"patient_name": p.patient_name, "patient_birth_date": p.patient_birth_date,
                      "patient_sex": p.patient_sex, "updated_seq": seq}
    if patient is None:
        session.add(Patient(patient_id=p.patient_id, issuer_of_patient_id=p.issuer_of_patient_id,
                            **patient_values))
    else:
        _set(patient, patient_values)

    study_values = {
        "patient_id": p.patient_id, "issuer_of_patient_id": p.issuer_of_patient_id,
        "study_date": p.study_date, "study_time": p.study_time,
        "accession_number": p.accession_number, "study_id": p.study_id,
        "study_description": p.study_description,
        "referring_physician_name": p.referring_physician_name,
        "institution_name": p.institution_name,
    }
    study = await session.get(Study, p.study_instance_uid)
    if study is None:
        session.add(Study(study_instance_uid=p.study_instance_uid, first_received=received,
                          last_received=received, revision=seq, stable_revision=0,
                          **study_values))
    else:
        _set(study, study_values, only_non_empty=True)
        study.revision = seq
        study.last_received = max(study.last_received, received)

    series_values = {
        "study_instance_uid": p.study_instance_uid, "modality": p.modality,
        "series_number": p.series_number, "series_description": p.series_description,
        "series_date": p.series_date, "series_time": p.series_time,
        "body_part_examined": p.body_part_examined, "station_name": p.station_name,
    }
    series = await session.get(Series, p.series_instance_uid)
    if series is None:
        session.add(Series(series_instance_uid=p.series_instance_uid, **series_values))
    else:
        _set(series, series_values, only_non_empty=True)

    instance_values = {
        "series_instance_uid": p.series_instance_uid, "study_instance_uid": p.study_instance_uid,
        "sop_class_uid": p.sop_class_uid, "instance_number": p.instance_number,
        "content_date": p.content_date, "content_time": p.content_time,
        "number_of_frames": p.number_of_frames, "transfer_syntax_uid": p.transfer_syntax_uid,
        "specific_character_set": p.specific_character_set, "size_bytes": p.size_bytes,
        "sha256": p.sha256, "calling_ae": p.calling_ae, "called_ae": p.called_ae,
        "source": p.source, "received_time": received, "revision": seq,
    }
    if instance is None:
        session.add(Instance(sop_instance_uid=p.sop_instance_uid, **instance_values))
    else:
        _set(instance, instance_values)
        # Other tiers hold the old bytes: their copies are no longer this instance.
        await session.execute(delete(Location).where(
            Location.sop_instance_uid == p.sop_instance_uid, Location.tier != tier))
        # Nor are their copies of the study the current study any more: the cache eviction
        # counts verified study locations, and one holding the old bytes must not let the
        # new (acknowledged) ones go. A re-archive's StudyArchived verifies it again.
        await session.execute(update(StudyLocation).where(
            StudyLocation.study_instance_uid == p.study_instance_uid,
            StudyLocation.tier != tier).values(verified=False))
    if location is None:
        session.add(Location(sop_instance_uid=p.sop_instance_uid, tier=tier, stored_at=received,
                             **loc_values))
    else:
        _set(location, {**loc_values, "stored_at": received})
    return True


async def _study_stable(session: AsyncSession, p: ev.StudyStable) -> bool:
    study = await session.get(Study, p.study_instance_uid)
    if study is None or study.stable_revision >= p.revision:
        return False
    study.stable_revision = p.revision
    return True


CHECKSUM_CHUNK = 500


async def _holds_current_bytes(session: AsyncSession, p: ev.StudyArchived) -> bool:
    """Whether every instance the copy lists (with its checksum) holds the bytes the catalogue
    knows now: the instance's checksum, or that of a copy recorded for it (a recall's own
    bytes). A copy written from old bytes that reaches the catalogue after the new ones (the
    archiver read the cache before the replace) is stale. Instances not known yet count as
    current; a fact without checksums is taken as it says."""
    if not p.sha256s or len(p.sha256s) != len(p.sop_instance_uids):
        return True
    given = dict(zip(p.sop_instance_uids, p.sha256s, strict=True))
    uids = list(given)
    known: dict[str, set[str]] = {}
    for start in range(0, len(uids), CHECKSUM_CHUNK):
        chunk = uids[start:start + CHECKSUM_CHUNK]
        for uid, sha in (await session.execute(select(
                Instance.sop_instance_uid, Instance.sha256).where(
                Instance.sop_instance_uid.in_(chunk)))).all():
            known.setdefault(uid, set()).add(sha)
        for uid, sha in (await session.execute(select(
                Location.sop_instance_uid, Location.sha256).where(
                Location.sop_instance_uid.in_(chunk)))).all():
            known.setdefault(uid, set()).add(sha)
    return all(given[uid] in shas for uid, shas in known.items())


async def _study_archived(session: AsyncSession, p: ev.StudyArchived, time: datetime) -> bool:
    key = (p.study_instance_uid, p.tier, p.archive_id)
    verified = p.verified and await _holds_current_bytes(session, p)
    values = {"location": p.location, "verified": verified,
              "number_of_instances": p.number_of_instances, "size_bytes": p.size_bytes,
              "archived_at": time, "job_id": p.job_id}
    row = await session.get(StudyLocation, key)
    if row is None:
        session.add(StudyLocation(study_instance_uid=p.study_instance_uid, tier=p.tier,
                                  archive_id=p.archive_id, **values))
        return True
    return _set(row, values)


async def _study_evicted(session: AsyncSession, p: ev.StudyEvicted) -> bool:
    tier = p.tier or DEFAULT_TIER
    changed = False
    if tier == DEFAULT_TIER or not p.archive_id:
        # Per-instance copies on that tier (the cache) are gone.
        result = await session.execute(delete(Location).where(
            Location.study_instance_uid == p.study_instance_uid, Location.tier == tier))
        changed = bool(result.rowcount)
    rows = (await session.scalars(select(StudyLocation).where(
        StudyLocation.study_instance_uid == p.study_instance_uid, StudyLocation.tier == tier,
        *([StudyLocation.archive_id == p.archive_id] if p.archive_id else [])))).all()
    for row in rows:
        await session.delete(row)
        changed = True
    return changed
