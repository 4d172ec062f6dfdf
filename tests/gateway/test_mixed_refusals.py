"""Issue 13 item 4 on associations pynetdicom serves (storage proposed together with
Query/Retrieve): every request gets an answer or an immediate A-ABORT, never silence — the
same answers as the storage fast path gives (test_fast_path.py). Requests are written by hand
(raw_dul), since pynetdicom's own SCU refuses to send them."""

from __future__ import annotations

from pathlib import Path

import pytest
from pynetdicom.sop_class import (
    CTImageStorage,
    SecondaryCaptureImageStorage,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
)

from dicom_gateway import statuses as st
from tests.gateway.conftest import AE_TITLE, MODALITY, sample
from tests.gateway.raw_dul import EXPLICIT_LE, RawAssociation
from tests.gateway.test_fast_path import ct_file, dataset_bytes

ASSOCIATE_AC, RELEASE_RP, ABORT = 0x02, 0x06, 0x07
C_STORE, C_GET, C_FIND, C_MOVE = 0x0001, 0x0010, 0x0020, 0x0021
# Presentation context IDs: the order of MIXED (1, 3, 5, 7)
STORE_CX, FIND_CX, MOVE_CX, GET_CX = 1, 3, 5, 7
MIXED = [(CTImageStorage, [EXPLICIT_LE]),
         (StudyRootQueryRetrieveInformationModelFind, [EXPLICIT_LE]),
         (StudyRootQueryRetrieveInformationModelMove, [EXPLICIT_LE]),
         (StudyRootQueryRetrieveInformationModelGet, [EXPLICIT_LE])]
# An identifier pydicom cannot decode (VR "KS"), and one whose element runs past its end
UNDECODABLE = b"\x08\x00\x52\x00KS\x06\x00STUDY "
TRUNCATED = b"\x08\x00\x52\x00CS\xff\x00ST"


def mixed(port: int) -> RawAssociation:
    assoc = RawAssociation(port, MODALITY, AE_TITLE, MIXED)
    assoc.sock.settimeout(5)  # silence fails the test here (TimeoutError)
    assert assoc.answer_type == ASSOCIATE_AC
    return assoc


def request(assoc: RawAssociation, context_id: int, field: int, sop_class: str, data: bytes,
            message_id: int, **more: object) -> tuple[int, int, str]:
    """(response command field, status, Error Comment) of one hand-written request."""
    assoc.send_command(context_id, AffectedSOPClassUID=sop_class, CommandField=field,
                       MessageID=message_id, Priority=0, CommandDataSetType=0x0000, **more)
    assoc.send_pdv(context_id, 0x02, data)
    rsp = assoc.response()
    assert rsp.MessageIDBeingRespondedTo == message_id
    return int(rsp.CommandField), int(rsp.Status), str(rsp.get("ErrorComment", ""))


def test_mixed_associations_answer_every_request(start_gateway, tmp_path: Path,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    gw = start_gateway(modalities={MODALITY: {"may_retrieve": True}})
    sop, dataset = dataset_bytes(ct_file(tmp_path))
    # (the registry is the process's: other gateways of this pytest run counted before)
    refused_before = sample(gw.metrics(), "dicomvault_gateway_cstore_requests_total", status="0x0122")
    assoc = mixed(gw.port)
    try:
        def store(sop_class: str, sop_instance: str, message_id: int) -> tuple[int, int, str]:
            return request(assoc, STORE_CX, C_STORE, sop_class, dataset, message_id,
                           AffectedSOPInstanceUID=sop_instance)

        # C-STOREs pynetdicom dropped without a word: a status with a reason instead.
        assert store(CTImageStorage, "", 1)[:2] == (0x8001, st.DATASET_DOES_NOT_MATCH)
        assert store("", sop, 2)[:2] == (0x8001, st.SOP_CLASS_NOT_SUPPORTED)
        # A SOP class pynetdicom has no service for (it aborted), and one of another context.
        assert store("1.2.3.4", sop, 3)[:2] == (0x8001, st.SOP_CLASS_NOT_SUPPORTED)
        field, status, comment = store(SecondaryCaptureImageStorage, sop, 4)
        assert (field, status) == (0x8001, st.SOP_CLASS_NOT_SUPPORTED)
        assert "presentation context" in comment
        # Query/Retrieve requests with identifiers that do not decode: failures, not silence.
        for context_id, field, model, message_id in (
                (FIND_CX, C_FIND, StudyRootQueryRetrieveInformationModelFind, 5),
                (MOVE_CX, C_MOVE, StudyRootQueryRetrieveInformationModelMove, 7),
                (GET_CX, C_GET, StudyRootQueryRetrieveInformationModelGet, 9)):
            extra = {"MoveDestination": MODALITY} if field == C_MOVE else {}
            for offset, identifier in enumerate((UNDECODABLE, TRUNCATED)):
                answer = request(assoc, context_id, field, model, identifier,
                                 message_id + offset, **extra)
                assert answer[0] == field | 0x8000
                assert answer[1] in (st.IDENTIFIER_DOES_NOT_MATCH, st.UNABLE_TO_PROCESS), \
                    (hex(field), identifier, answer)
                assert answer[2], answer  # the Error Comment says why
        # A C-FIND naming no SOP class at all.
        assert request(assoc, FIND_CX, C_FIND, "", UNDECODABLE, 11)[:2] == \
            (0x8020, st.SOP_CLASS_NOT_SUPPORTED)
        assert gw.files(temps=True) == []
        # The association still works: the real instance is stored.
        assert store(CTImageStorage, sop, 12)[:2] == (0x8001, st.SUCCESS)
        assert assoc.release() == RELEASE_RP
    finally:
        assoc.close()
    assert len(gw.files()) == 1
    # Each refusal is one bounded WARNING line of ours, never a traceback.
    assert not [r.getMessage() for r in caplog.records if r.exc_info], caplog.text[-2000:]
    refusals = [r for r in caplog.records if r.getMessage() == "DIMSE request refused"]
    assert len(refusals) == 5 and all(r.levelname == "WARNING" for r in refusals)
    assert sample(gw.metrics(), "dicomvault_gateway_cstore_requests_total", status="0x0122") == refused_before + 3

    # A UID over 64 characters cannot even be decoded by pynetdicom: A-ABORT at once.
    assoc = mixed(gw.port)
    try:
        assoc.send_command(STORE_CX, AffectedSOPClassUID=CTImageStorage, CommandField=C_STORE,
                           MessageID=1, Priority=0, CommandDataSetType=0x0000,
                           AffectedSOPInstanceUID="1." + "2" * 63)
        assoc.send_pdv(STORE_CX, 0x02, dataset)
        kind, _ = assoc.read_pdu()  # silence: TimeoutError after 5 s
        assert kind in (ABORT, 0), kind  # A-ABORT, or the connection closed with it
    finally:
        assoc.close()
