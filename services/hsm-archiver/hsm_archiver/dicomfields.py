"""InstanceStored built from a Part 10 file's header (for instances recalled into the cache)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from io import BytesIO

import pydicom
from google.protobuf.timestamp_pb2 import Timestamp

from dicomvault.events.v1 import events_pb2 as ev

_TEXT = {
    "sop_class_uid": "SOPClassUID", "sop_instance_uid": "SOPInstanceUID",
    "study_instance_uid": "StudyInstanceUID", "series_instance_uid": "SeriesInstanceUID",
    "patient_id": "PatientID", "patient_name": "PatientName", "study_date": "StudyDate",
    "modality": "Modality", "issuer_of_patient_id": "IssuerOfPatientID",
    "patient_birth_date": "PatientBirthDate", "patient_sex": "PatientSex",
    "study_time": "StudyTime", "accession_number": "AccessionNumber", "study_id": "StudyID",
    "study_description": "StudyDescription",
    "referring_physician_name": "ReferringPhysicianName", "series_number": "SeriesNumber",
    "series_description": "SeriesDescription", "series_date": "SeriesDate",
    "series_time": "SeriesTime", "body_part_examined": "BodyPartExamined",
    "station_name": "StationName", "instance_number": "InstanceNumber",
    "institution_name": "InstitutionName", "content_date": "ContentDate",
    "content_time": "ContentTime", "specific_character_set": "SpecificCharacterSet",
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
    for field, keyword in _TEXT.items():
        setattr(msg, field, _text(ds.get(keyword)))
    frames = ds.get("NumberOfFrames")
    msg.number_of_frames = int(frames) if frames not in (None, "") else 0
    ts = Timestamp()
    ts.FromDatetime(datetime.now(UTC))
    msg.received_time.CopyFrom(ts)
    return msg
