"""The catalogue query contract, shared by the catalogue API and its clients (gateway C-FIND,
QIDO-RS, reconciliation, retrieve). Plain pydantic models; JSON over HTTP.

``POST /api/v1/find`` takes a FindRequest and returns a FindResponse. Filter values are DICOM
matching values exactly as a C-FIND identifier carries them (PS3.4 C.2.2.2): empty means
universal matching, ``*`` and ``?`` are wildcards, ``a-b`` / ``a-`` / ``-b`` are date/time
ranges, and a backslash-separated list of UIDs is list-of-UID matching.

``CatalogueClient`` (``dicomvault.query.client``) is the one client of that API, with its
errors ``CatalogueError`` = ``CatalogueUnavailable`` (unreachable, 5xx) | ``CatalogueRefused``
(4xx).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, Field


class Level(StrEnum):
    PATIENT = "PATIENT"
    STUDY = "STUDY"
    SERIES = "SERIES"
    IMAGE = "IMAGE"


# Attributes the catalogue stores and matches, by the level that owns them.
ATTRIBUTES: dict[Level, tuple[str, ...]] = {
    Level.PATIENT: (
        "PatientID", "IssuerOfPatientID", "PatientName", "PatientBirthDate", "PatientSex",
    ),
    Level.STUDY: (
        "StudyInstanceUID", "StudyDate", "StudyTime", "AccessionNumber", "StudyID",
        "StudyDescription", "ReferringPhysicianName", "InstitutionName",
    ),
    Level.SERIES: (
        "SeriesInstanceUID", "Modality", "SeriesNumber", "SeriesDescription", "SeriesDate",
        "SeriesTime", "BodyPartExamined", "StationName",
    ),
    Level.IMAGE: (
        "SOPInstanceUID", "SOPClassUID", "InstanceNumber", "ContentDate", "ContentTime",
        "NumberOfFrames", "AvailableTransferSyntaxUID",
    ),
}

# Return keys the catalogue computes (PS3.4 C.3.4 additional keys).
COMPUTED: dict[Level, tuple[str, ...]] = {
    Level.PATIENT: (
        "NumberOfPatientRelatedStudies", "NumberOfPatientRelatedSeries",
        "NumberOfPatientRelatedInstances",
    ),
    Level.STUDY: (
        "ModalitiesInStudy", "SOPClassesInStudy", "NumberOfStudyRelatedSeries",
        "NumberOfStudyRelatedInstances",
    ),
    Level.SERIES: ("NumberOfSeriesRelatedInstances",),
    Level.IMAGE: (),
}

UNIQUE_KEY: dict[Level, str] = {
    Level.PATIENT: "PatientID",
    Level.STUDY: "StudyInstanceUID",
    Level.SERIES: "SeriesInstanceUID",
    Level.IMAGE: "SOPInstanceUID",
}

Value = str | int | list[str] | None


class FindRequest(BaseModel):
    level: Level
    root: Literal["PATIENT", "STUDY"] = "STUDY"
    filters: dict[str, str] = Field(default_factory=dict, description="keyword -> matching value")
    return_keys: list[str] = Field(default_factory=list, description="keywords to return")
    limit: int | None = Field(None, ge=1)
    offset: int = Field(0, ge=0)
    case_insensitive_pn: bool = Field(True, description="PN matching ignores case")


class FindResponse(BaseModel):
    matches: list[dict[str, Value]]
    total: int | None = None


class UnknownRequest(BaseModel):
    """Which of these SOP Instance UIDs has the catalogue never recorded?"""

    sop_instance_uids: list[str]


class UnknownResponse(BaseModel):
    unknown: list[str]


class InstanceLocation(BaseModel):
    """Where one instance is, on one tier (``GET /api/v1/studies/{uid}/instances``)."""

    study_instance_uid: str
    series_instance_uid: str
    sop_instance_uid: str
    sop_class_uid: str
    transfer_syntax_uid: str
    tier: str
    storage_key: str
    size_bytes: int
    sha256: str


# The client needs the models above: imported last.
from dicomvault.query.client import (  # noqa: E402
    CatalogueClient,
    CatalogueError,
    CatalogueRefused,
    CatalogueUnauthorized,
    CatalogueUnavailable,
)

__all__ = [
    "ATTRIBUTES", "COMPUTED", "UNIQUE_KEY", "CatalogueClient", "CatalogueError",
    "CatalogueRefused", "CatalogueUnauthorized", "CatalogueUnavailable", "FindRequest", "FindResponse",
    "InstanceLocation", "Level", "UnknownRequest", "UnknownResponse", "Value",
]
