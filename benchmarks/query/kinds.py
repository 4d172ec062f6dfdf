"""The queries a viewer or RIS sends, as the gateway turns them into catalogue requests.

QIDO-RS requests carry the gateway's default return keys (PS3.18 Table 10.6.3-3/-4/-5) and
its default page (limit 1000); C-FIND requests carry the keys of a typical findscu identifier
and the gateway's page of 500 (``dicom_gateway.dimse.FIND_PAGE``).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

QIDO_LIMIT = 1000
CFIND_PAGE = 500
QIDO_STUDY = ["StudyDate", "StudyTime", "AccessionNumber", "ModalitiesInStudy",
              "ReferringPhysicianName", "PatientName", "PatientID", "PatientBirthDate",
              "PatientSex", "StudyInstanceUID", "StudyID", "StudyDescription",
              "NumberOfStudyRelatedSeries", "NumberOfStudyRelatedInstances"]
QIDO_SERIES = ["Modality", "SeriesDescription", "SeriesInstanceUID", "SeriesNumber",
               "NumberOfSeriesRelatedInstances", "StudyInstanceUID"]
QIDO_INSTANCE = ["SOPClassUID", "SOPInstanceUID", "InstanceNumber", "NumberOfFrames",
                 "StudyInstanceUID", "SeriesInstanceUID"]
CFIND_STUDY = ["PatientName", "PatientID", "PatientBirthDate", "StudyInstanceUID", "StudyDate",
               "StudyTime", "AccessionNumber", "StudyDescription", "ModalitiesInStudy",
               "NumberOfStudyRelatedSeries", "NumberOfStudyRelatedInstances"]


@dataclass(frozen=True)
class Sample:
    """Real values from the filled database, picked at random per request."""

    patient_ids: list[str]
    study_uids: list[str]
    accessions: list[str]
    series: list[tuple[str, str]]  # (study uid, series uid)


def _study(filters: dict, keys: list[str], limit: int) -> dict:
    return {"level": "STUDY", "filters": filters,
            "return_keys": list(dict.fromkeys([*keys, *filters])), "limit": limit}


def _date_range(rnd: random.Random) -> str:
    year, month = rnd.randrange(2015, 2026), rnd.randrange(1, 12)
    return f"{year}{month:02d}01-{year}{month + 1:02d}01"  # about a month: ~70 studies


Kind = Callable[[random.Random, Sample], dict]
KINDS: dict[str, Kind] = {
    "C-FIND study, PatientID": lambda r, s: _study(
        {"PatientID": r.choice(s.patient_ids)}, CFIND_STUDY, CFIND_PAGE),
    "QIDO /studies?PatientID=": lambda r, s: _study(
        {"PatientID": r.choice(s.patient_ids)}, QIDO_STUDY, QIDO_LIMIT),
    "QIDO /studies?StudyInstanceUID=": lambda r, s: _study(
        {"StudyInstanceUID": r.choice(s.study_uids)}, QIDO_STUDY, QIDO_LIMIT),
    "QIDO /studies?AccessionNumber=": lambda r, s: _study(
        {"AccessionNumber": r.choice(s.accessions)}, QIDO_STUDY, QIDO_LIMIT),
    "C-FIND study, PatientName=DOE*": lambda r, s: _study(
        {"PatientName": "DOE*"}, CFIND_STUDY, CFIND_PAGE),
    "QIDO /studies?StudyDate=(1 month)": lambda r, s: _study(
        {"StudyDate": _date_range(r)}, QIDO_STUDY, QIDO_LIMIT),
    "QIDO /studies?ModalitiesInStudy=MR&StudyDate=(1 month)": lambda r, s: _study(
        {"ModalitiesInStudy": "MR", "StudyDate": _date_range(r)}, QIDO_STUDY, QIDO_LIMIT),
    "QIDO /studies?ModalitiesInStudy=MG&limit=100": lambda r, s: _study(
        {"ModalitiesInStudy": "MG"}, QIDO_STUDY, 100),
    "QIDO /studies?limit=100 (first page, no filter)": lambda r, s: _study({}, QIDO_STUDY, 100),
    "QIDO /studies/{study}/series": lambda r, s: {
        "level": "SERIES", "filters": {"StudyInstanceUID": r.choice(s.study_uids)},
        "return_keys": QIDO_SERIES, "limit": QIDO_LIMIT},
    "QIDO /studies/{study}/series/{series}/instances": lambda r, s: {
        "level": "IMAGE", "filters": dict(zip(("StudyInstanceUID", "SeriesInstanceUID"),
                                              r.choice(s.series), strict=True)),
        "return_keys": QIDO_INSTANCE, "limit": QIDO_LIMIT},
}
