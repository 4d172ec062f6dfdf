"""SQLAlchemy models: the append-only journal and the projections rebuilt from it.

Projection rows are keyed by natural keys (UIDs), never by surrogate ids, so that a replay
of the journal into fresh tables yields rows that compare equal to the live ones.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcDateTime(TypeDecorator):
    """A UTC instant: stored naive (UTC) on every back end, returned timezone-aware."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a BIGINT identity.
SeqType = BigInteger().with_variant(Integer(), "sqlite")
UID = String(64)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Journal(Base):
    """Every fact the catalogue consumed, once (unique ``ce_id``), in consumption order."""

    __tablename__ = "journal"

    seq: Mapped[int] = mapped_column(SeqType, primary_key=True, autoincrement=True)
    ce_id: Mapped[str] = mapped_column(String(200), unique=True)
    ce_type: Mapped[str] = mapped_column(String(200))
    ce_source: Mapped[str] = mapped_column(String(200))
    subject: Mapped[str] = mapped_column(String(200), index=True, default="")
    ce_time: Mapped[datetime] = mapped_column(UtcDateTime())
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    recorded_at: Mapped[datetime] = mapped_column(UtcDateTime())


class Patient(Base):
    """On PostgreSQL, migration 0004 also indexes lower(patient_name) (text_pattern_ops) for
    case-insensitive PatientName matching; an expression index, so not declared here."""

    __tablename__ = "patients"

    patient_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    issuer_of_patient_id: Mapped[str] = mapped_column(String(64), primary_key=True, default="")
    patient_name: Mapped[str] = mapped_column(String(324), default="")
    patient_birth_date: Mapped[str] = mapped_column(String(16), default="")
    patient_sex: Mapped[str] = mapped_column(String(16), default="")
    updated_seq: Mapped[int] = mapped_column(BigInteger, default=0)


class Study(Base):
    __tablename__ = "studies"

    study_instance_uid: Mapped[str] = mapped_column(UID, primary_key=True)
    patient_id: Mapped[str] = mapped_column(String(64), default="")
    issuer_of_patient_id: Mapped[str] = mapped_column(String(64), default="")
    study_date: Mapped[str] = mapped_column(String(16), default="")
    study_time: Mapped[str] = mapped_column(String(32), default="")
    accession_number: Mapped[str] = mapped_column(String(64), default="")
    study_id: Mapped[str] = mapped_column(String(64), default="")
    study_description: Mapped[str] = mapped_column(String(256), default="")
    referring_physician_name: Mapped[str] = mapped_column(String(324), default="")
    institution_name: Mapped[str] = mapped_column(String(128), default="")
    first_received: Mapped[datetime] = mapped_column(UtcDateTime())
    last_received: Mapped[datetime] = mapped_column(UtcDateTime())
    revision: Mapped[int] = mapped_column(BigInteger, default=0)
    stable_revision: Mapped[int] = mapped_column(BigInteger, default=0)

    __table_args__ = (
        Index("ix_studies_patient", "patient_id", "issuer_of_patient_id"),
        Index("ix_studies_pending", "stable_revision", "revision"),
        # Migration 0004: StudyDate ranges and the order of study-level pages; accession lookup.
        Index("ix_studies_date", "study_date", "study_time", "study_instance_uid"),
        Index("ix_studies_accession_number", "accession_number"),
    )


class Series(Base):
    __tablename__ = "series"

    series_instance_uid: Mapped[str] = mapped_column(UID, primary_key=True)
    study_instance_uid: Mapped[str] = mapped_column(UID, index=True)
    modality: Mapped[str] = mapped_column(String(16), default="")
    series_number: Mapped[str] = mapped_column(String(16), default="")
    series_description: Mapped[str] = mapped_column(String(256), default="")
    series_date: Mapped[str] = mapped_column(String(16), default="")
    series_time: Mapped[str] = mapped_column(String(32), default="")
    body_part_examined: Mapped[str] = mapped_column(String(64), default="")
    station_name: Mapped[str] = mapped_column(String(64), default="")

    # Migration 0004: ModalitiesInStudy matching of a rare modality starts from its series.
    __table_args__ = (Index("ix_series_modality", "modality", "study_instance_uid"),)


class Instance(Base):
    __tablename__ = "instances"

    sop_instance_uid: Mapped[str] = mapped_column(UID, primary_key=True)
    series_instance_uid: Mapped[str] = mapped_column(UID, index=True)
    study_instance_uid: Mapped[str] = mapped_column(UID, index=True)
    sop_class_uid: Mapped[str] = mapped_column(UID, default="")
    instance_number: Mapped[str] = mapped_column(String(16), default="")
    content_date: Mapped[str] = mapped_column(String(16), default="")
    content_time: Mapped[str] = mapped_column(String(32), default="")
    number_of_frames: Mapped[int] = mapped_column(Integer, default=0)
    transfer_syntax_uid: Mapped[str] = mapped_column(UID, default="")
    specific_character_set: Mapped[str] = mapped_column(String(128), default="")
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    sha256: Mapped[str] = mapped_column(String(64), default="")
    calling_ae: Mapped[str] = mapped_column(String(16), default="")
    called_ae: Mapped[str] = mapped_column(String(16), default="")
    source: Mapped[str] = mapped_column(String(32), default="")
    received_time: Mapped[datetime] = mapped_column(UtcDateTime())
    revision: Mapped[int] = mapped_column(BigInteger, default=0)


class Location(Base):
    """Where one instance is on one tier (the cache, where the gateway wrote it)."""

    __tablename__ = "locations"

    sop_instance_uid: Mapped[str] = mapped_column(UID, primary_key=True)
    tier: Mapped[str] = mapped_column(String(32), primary_key=True)
    study_instance_uid: Mapped[str] = mapped_column(UID, index=True)
    storage_key: Mapped[str] = mapped_column(String(512))
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    sha256: Mapped[str] = mapped_column(String(64), default="")
    stored_at: Mapped[datetime] = mapped_column(UtcDateTime())


class StudyLocation(Base):
    """A whole study held by an archive tier (StudyArchived until StudyEvicted)."""

    __tablename__ = "study_locations"

    study_instance_uid: Mapped[str] = mapped_column(UID, primary_key=True)
    tier: Mapped[str] = mapped_column(String(32), primary_key=True)
    archive_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    location: Mapped[str] = mapped_column(String(1024), default="")
    verified: Mapped[bool] = mapped_column(Boolean, default=False)
    number_of_instances: Mapped[int] = mapped_column(Integer, default=0)
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    archived_at: Mapped[datetime] = mapped_column(UtcDateTime())
    job_id: Mapped[str] = mapped_column(String(128), default="")


class JobRow(Base):
    """One job of a queue, as its owner's facts on the jobs topic describe it."""

    __tablename__ = "jobs"

    job_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    queue: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(32), default="")
    study_instance_uid: Mapped[str] = mapped_column(UID, index=True, default="")
    target: Mapped[str] = mapped_column(String(256), default="")
    params: Mapped[dict] = mapped_column(JSON, default=dict)
    sop_instance_uids: Mapped[list] = mapped_column(JSON, default=list)
    state: Mapped[str] = mapped_column(String(32))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_retries: Mapped[int] = mapped_column(Integer, default=0)
    not_before: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    error: Mapped[str] = mapped_column(Text, default="")
    message: Mapped[str] = mapped_column(Text, default="")
    completed: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    remaining: Mapped[int] = mapped_column(Integer, default=0)
    result: Mapped[dict] = mapped_column(JSON, default=dict)
    worker: Mapped[str] = mapped_column(String(128), default="")
    created_by: Mapped[str] = mapped_column(String(256), default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())
    last_command: Mapped[str] = mapped_column(String(32), default="")
    last_command_by: Mapped[str] = mapped_column(String(256), default="")

    __table_args__ = (
        Index("ix_jobs_queue_state", "queue", "state"),
        Index("ix_jobs_state", "state"),
    )


class QueueRow(Base):
    """A job queue's administrative state: RUNNING, HALTED (paused) or STALLED (not ready)."""

    __tablename__ = "queues"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), default="")
    owner: Mapped[str] = mapped_column(String(128), default="")
    state: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(Text, default="")
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class OpticalVolume(Base):
    """One logical volume of an optical archive, as its facts describe it."""

    __tablename__ = "optical_volumes"
    __table_args__ = (Index("ix_optical_volumes_state", "state"),)

    archive_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    label: Mapped[str] = mapped_column(String(32), primary_key=True)
    media_type: Mapped[str] = mapped_column(String(32), default="")
    state: Mapped[str] = mapped_column(String(16), default="Closed")
    capacity_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    used_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    image_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    image_sha256: Mapped[str] = mapped_column(String(64), default="")
    number_of_studies: Mapped[int] = mapped_column(Integer, default=0)
    number_of_instances: Mapped[int] = mapped_column(Integer, default=0)
    study_instance_uids: Mapped[list] = mapped_column(JSON, default=list)
    close_reason: Mapped[str] = mapped_column(String(16), default="")
    copies: Mapped[dict] = mapped_column(JSON, default=dict)   # "n" -> {backend, target, …}
    copies_verified: Mapped[int] = mapped_column(Integer, default=0)
    burn_failures: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str] = mapped_column(Text, default="")
    media_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    media_request: Mapped[str] = mapped_column(Text, default="")
    media_request_studies: Mapped[list] = mapped_column(JSON, default=list)
    media_mount_path: Mapped[str] = mapped_column(Text, default="")
    media_requested_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    verified_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    deleted_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    deleted_by: Mapped[str] = mapped_column(String(256), default="")
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


PROJECTIONS: tuple[type[Base], ...] = (Patient, Study, Series, Instance, Location, StudyLocation,
                                       JobRow, QueueRow, OpticalVolume)
