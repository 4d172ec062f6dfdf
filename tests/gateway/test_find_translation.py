"""C-FIND identifiers become catalogue FindRequests; matches become identifiers."""

from __future__ import annotations

import pytest
from pydicom.dataset import Dataset

from dicom_gateway.find import (
    PATIENT_ROOT_FIND,
    STUDY_ROOT_FIND,
    BadIdentifier,
    answer,
    parse,
)


def identifier(**keys: object) -> Dataset:
    ds = Dataset()
    for k, v in keys.items():
        setattr(ds, k, v)
    return ds


def test_filters_are_non_empty_keys_and_return_keys_all_supported_ones() -> None:
    ds = identifier(QueryRetrieveLevel="STUDY", PatientName="DOE*", StudyDate="20240101-",
                    StudyInstanceUID="", ModalitiesInStudy=["CT", "MR"],
                    NumberOfStudyRelatedInstances="", PatientAge="")
    q = parse(ds, STUDY_ROOT_FIND)
    assert q.request.level == "STUDY" and q.request.root == "STUDY"
    assert q.request.filters == {"PatientName": "DOE*", "StudyDate": "20240101-",
                                 "ModalitiesInStudy": "CT\\MR"}
    assert set(q.request.return_keys) == {"StudyDate", "PatientName", "StudyInstanceUID",
                                          "ModalitiesInStudy", "NumberOfStudyRelatedInstances"}
    assert q.unsupported == []  # PatientAge is unsupported but universal: answered empty


def test_an_unsupported_matching_key_is_reported() -> None:
    q = parse(identifier(QueryRetrieveLevel="PATIENT", PatientAge="040Y"), PATIENT_ROOT_FIND)
    assert q.unsupported == ["PatientAge"] and q.request.filters == {}


@pytest.mark.parametrize("model,level", [
    (STUDY_ROOT_FIND, None), (STUDY_ROOT_FIND, "PATIENT"), (PATIENT_ROOT_FIND, "FRAME"),
])
def test_bad_levels(model: str, level: str | None) -> None:
    ds = identifier(PatientID="*") if level is None else identifier(QueryRetrieveLevel=level)
    with pytest.raises(BadIdentifier):
        parse(ds, model)


def test_answer_has_every_requested_key_with_dictionary_vrs() -> None:
    ds = identifier(QueryRetrieveLevel="SERIES", StudyInstanceUID="1.2.3", SeriesInstanceUID="",
                    Modality="", NumberOfSeriesRelatedInstances="", PatientAge="",
                    RetrieveAETitle="", SeriesNumber="")
    q = parse(ds, STUDY_ROOT_FIND)
    out = answer(q, {"StudyInstanceUID": "1.2.3", "SeriesInstanceUID": "1.2.3.4",
                     "Modality": "CT", "NumberOfSeriesRelatedInstances": 3,
                     "SeriesNumber": "2"}, "DICOMVAULT")
    assert out.QueryRetrieveLevel == "SERIES" and out.SpecificCharacterSet == "ISO_IR 192"
    assert out.SeriesInstanceUID == "1.2.3.4" and out.Modality == "CT"
    assert out.NumberOfSeriesRelatedInstances == 3 and out.SeriesNumber == 2
    assert out["NumberOfSeriesRelatedInstances"].VR == "IS"
    assert out.PatientAge == "" and out.RetrieveAETitle == "DICOMVAULT"
