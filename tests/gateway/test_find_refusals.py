"""C-FIND refusals that need no catalogue: a bad identifier, and the catalogue unreachable."""

from __future__ import annotations

from pydicom.dataset import Dataset
from pynetdicom.sop_class import (
    PatientRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelFind,
)

from dicom_gateway import statuses as st
from tests.gateway.conftest import association, sample

QUERY = ["1.2.840.10008.1.2.1"]


def find(port: int, model: str, **keys: str) -> list[int]:
    ds = Dataset()
    for k, v in keys.items():
        setattr(ds, k, v)
    with association(port, contexts=[(model, QUERY)]) as assoc:
        return [int(status.Status) for status, _ in assoc.send_c_find(ds, model)]


def test_bad_identifiers_do_not_match_the_model(start_gateway) -> None:
    gw = start_gateway()
    study_root = StudyRootQueryRetrieveInformationModelFind
    assert find(gw.port, study_root, PatientID="") == [st.IDENTIFIER_DOES_NOT_MATCH]
    assert find(gw.port, study_root, QueryRetrieveLevel="PATIENT", PatientID="") == [
        st.IDENTIFIER_DOES_NOT_MATCH]
    assert find(gw.port, PatientRootQueryRetrieveInformationModelFind,
                QueryRetrieveLevel="FRAME") == [st.IDENTIFIER_DOES_NOT_MATCH]


def test_catalogue_unreachable_is_out_of_resources(start_gateway) -> None:
    gw = start_gateway()  # its catalogue URL points at a port nobody listens on
    before = gw.metrics()
    assert find(gw.port, PatientRootQueryRetrieveInformationModelFind,
                QueryRetrieveLevel="PATIENT", PatientID="PAT*") == [st.OUT_OF_RESOURCES]
    after = gw.metrics()
    assert sample(after, "dicomvault_gateway_cfind_queries_total", status="0xA700") - sample(
        before, "dicomvault_gateway_cfind_queries_total", status="0xA700") == 1
