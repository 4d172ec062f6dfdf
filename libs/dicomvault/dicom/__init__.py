"""DICOM attributes as the events carry them.

``INSTANCE_STORED_TEXT`` maps each DICOM keyword to the InstanceStored text field filled from
it; every service that builds InstanceStored from a dataset's header (the gateway on ingest,
the hsm-archiver on recall) uses this one table, so both facts carry the same fields.
"""

from __future__ import annotations

__all__ = ["INSTANCE_STORED_TEXT"]

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
