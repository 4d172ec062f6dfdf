"""C-MOVE as a viewer sees it: dcmtk movescu asks the gateway to send a study (series, image)
to a dcmtk storescp; the files arrive byte for byte as the modality sent them. Real gateway,
real catalogue process, real broker."""

from __future__ import annotations

from pathlib import Path

from pydicom.dataset import Dataset
from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind

from dicom_gateway import statuses as st
from tests.gateway import retrieve_peers
from tests.gateway.conftest import MODALITY, association, sample, send_files
from tests.gateway.retrieve_peers import (
    RETRIEVER,
    error_comment,
    final_status,
    modalities,
    movescu,
    stored_study,
)
from tests.peers.datasets import dataset_bytes

catalogue = retrieve_peers.catalogue  # fixtures
storescp = retrieve_peers.storescp


def test_study_series_and_image_moved_byte_for_byte(start_gateway, catalogue, storescp,
                                                     tmp_path: Path) -> None:
    gw = start_gateway(catalogue_url=catalogue, modalities=modalities(storescp.port))
    study = stored_study(gw, catalogue, tmp_path / "sent", series=2, per_series=2)
    sent = {uid: path for uid, path in zip(study.sop_uids, study.files, strict=True)}
    before = gw.metrics()  # the registry is per process: count what this test adds

    # Study Root, STUDY level: every instance arrives, dataset bytes unchanged.
    rc, out = movescu(gw.port, "QueryRetrieveLevel=STUDY",
                      f"StudyInstanceUID={study.study_uid}")
    assert rc == 0, out
    assert final_status(out) == st.SUCCESS, out
    received = storescp.received()
    assert set(received) == set(study.sop_uids)
    for uid, path in received.items():
        assert dataset_bytes(path) == dataset_bytes(sent[uid]), uid

    # Study Root, SERIES level: only that series.
    for path in received.values():
        path.unlink()
    series_uid, sops = next(iter(study.series.items()))
    rc, out = movescu(gw.port, "QueryRetrieveLevel=SERIES",
                      f"StudyInstanceUID={study.study_uid}", f"SeriesInstanceUID={series_uid}")
    assert rc == 0, out
    assert set(storescp.received()) == set(sops)

    # Patient Root, IMAGE level: exactly one instance.
    for path in storescp.received().values():
        path.unlink()
    rc, out = movescu(gw.port, "QueryRetrieveLevel=IMAGE", f"PatientID={study.patient_id}",
                      f"StudyInstanceUID={study.study_uid}", f"SeriesInstanceUID={series_uid}",
                      f"SOPInstanceUID={sops[1]}", root="-P")
    assert rc == 0, out
    assert list(storescp.received()) == [sops[1]]

    # Patient Root, PATIENT level: the whole patient.
    for path in storescp.received().values():
        path.unlink()
    rc, out = movescu(gw.port, "QueryRetrieveLevel=PATIENT", f"PatientID={study.patient_id}",
                      root="-P")
    assert rc == 0, out
    assert set(storescp.received()) == set(study.sop_uids)

    after = gw.metrics()
    moves = ("dicomvault_gateway_retrieve_requests_total", {"operation": "move", "status": "0x0000"})
    subops = ("dicomvault_gateway_retrieve_suboperations_total",
              {"operation": "move", "outcome": "completed"})
    assert sample(after, moves[0], **moves[1]) - sample(before, moves[0], **moves[1]) == 4
    assert sample(after, subops[0], **subops[1]) - sample(before, subops[0], **subops[1]) \
        == 4 + 2 + 1 + 4


def test_unknown_destination_and_unpermitted_aes_are_refused(start_gateway, catalogue,
                                                               storescp, tmp_path: Path) -> None:
    gw = start_gateway(catalogue_url=catalogue, modalities=modalities(
        storescp.port, READONLY={"may_retrieve": False}, NOQUERY={"may_query": False}))
    study = stored_study(gw, catalogue, tmp_path / "sent", series=1, per_series=1)
    keys = ("QueryRetrieveLevel=STUDY", f"StudyInstanceUID={study.study_uid}")
    before = sample(gw.metrics(), "dicomvault_gateway_retrieve_requests_total", operation="move",
                    status="0xA801")

    # A Move Destination missing from the modalities table: 0xA801, nothing sent.
    rc, out = movescu(gw.port, *keys, destination="NOWHERE")
    assert final_status(out) == st.MOVE_DESTINATION_UNKNOWN, out
    # An AE whose entry says may_retrieve false: 0xC124, nothing sent.
    rc, out = movescu(gw.port, *keys, calling="READONLY")
    assert final_status(out) == st.NOT_PERMITTED, out
    assert error_comment(out) == "READONLY may not retrieve here"
    # An AE only in allowed_calling_aes keeps store + query, but may not retrieve.
    rc, out = movescu(gw.port, *keys, calling=MODALITY)
    assert final_status(out) == st.NOT_PERMITTED, out
    # An AE in neither list cannot even associate.
    rc, out = movescu(gw.port, *keys, calling="STRANGER")
    assert rc != 0 and "rejected" in out.lower(), out
    assert storescp.received() == {}
    # NOQUERY may not query: its C-FIND is refused the same way.
    with association(gw.port, "NOQUERY", [(StudyRootQueryRetrieveInformationModelFind,
                                           ["1.2.840.10008.1.2.1"])]) as assoc:
        find = Dataset()
        find.QueryRetrieveLevel = "STUDY"
        find.StudyInstanceUID = ""
        answers = list(assoc.send_c_find(find, StudyRootQueryRetrieveInformationModelFind))
    assert [int(s.Status) for s, _ in answers] == [st.NOT_PERMITTED]
    # RETRIEVER may retrieve but not store (may_store false): its C-STORE is refused.
    assert send_files(gw.port, study.files, calling_ae=RETRIEVER) == [0xC124]
    assert sample(gw.metrics(), "dicomvault_gateway_retrieve_requests_total", operation="move",
                  status="0xA801") - before == 1
