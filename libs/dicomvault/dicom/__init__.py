"""DICOM attributes as the events carry them.

``INSTANCE_STORED_TEXT`` maps each DICOM keyword to the InstanceStored text field filled from
it; every service that builds InstanceStored from a dataset's header (the gateway on ingest,
the hsm-archiver and the optical-burner on recall) uses this one table, so the facts carry
the same fields.

``instance_stored(data, key)`` is the recall side's reader: a file the archive stored itself
is read whole and errors surface. The gateway keeps its own reader on purpose: it refuses
malformed objects (``Malformed``) and reads a bad NumberOfFrames as 0.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from io import BytesIO

import pydicom
from google.protobuf.timestamp_pb2 import Timestamp

from dicomvault.events.v1 import events_pb2 as ev

__all__ = ["INSTANCE_STORED_TEXT", "instance_stored"]

# DICOM keyword -> InstanceStored field (text fields).
INSTANCE_STORED_TEXT: dict[str, str] = {
    "SOPClassUID": "sop_class_uid", "SOPInstanceUID": "sop_instance_uid",
    "StudyInstanceUID": "study_instance_uid", "SeriesInstanceUID": "series_instance_uid",
    "PatientID": "patient_id", "PatientName": "patient_name", "StudyDate": "study_date",
    "Modality": "modality", "IssuerOfPatientID": "issuer_of_patient_id",
    "PatientBirthDate": "patient_birth_date", "PatientSex": "patient_sex",
    "StudyTime": "study_time", "AccessionNumber": "accession_number", "StudyID": "study_id",
    "StudyDescription": "study_description",
    "ReferringPhysicianName": "referring_physician_name", "SeriesNumber": "series_number",
    "SeriesDescription": "series_description", "SeriesDate": "series_date",
    "SeriesTime": "series_time", "BodyPartExamined": "body_part_examined",
    "StationName": "station_name", "InstanceNumber": "instance_number",
    "InstitutionName": "institution_name", "ContentDate": "content_date",
    "ContentTime": "content_time", "SpecificCharacterSet": "specific_character_set",
}


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return "\\".join(str(v) for v in value)
    return str(value)


def instance_stored(data: bytes, storage_key: str, *, source: str = "recall",
                    tier: str = "cache") -> ev.InstanceStored:
    """Every InstanceStored field that the file's header carries, plus size/sha256/key."""
    ds = pydicom.dcmread(BytesIO(data), stop_before_pixels=True)
    msg = ev.InstanceStored(
        transfer_syntax_uid=str(ds.file_meta.TransferSyntaxUID),
        size_bytes=len(data), sha256=hashlib.sha256(data).hexdigest(),
        storage_key=storage_key, tier=tier, source=source,
    )
    for keyword, field in INSTANCE_STORED_TEXT.items():
        setattr(msg, field, _text(ds.get(keyword)))
    frames = ds.get("NumberOfFrames")
    msg.number_of_frames = int(frames) if frames not in (None, "") else 0
    ts = Timestamp()
    ts.FromDatetime(datetime.now(UTC))
    msg.received_time.CopyFrom(ts)
    return msg
