"""The storage fast path: storage-only associations served on the node's loop answer like the
pynetdicom listener did, answer every request, and abort what breaks the protocol."""

from __future__ import annotations

import hashlib
import struct
import subprocess
from pathlib import Path

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom.dsutils import encode
from pynetdicom.sop_class import (
    CTImageStorage,
    SecondaryCaptureImageStorage,
    StorageCommitmentPushModel,
    StudyRootQueryRetrieveInformationModelFind,
    Verification,
)

from dicom_gateway import statuses as st
from dicomvault.settings import BusSettings
from tests.commitment.modality import request_info
from tests.conftest import dcmtk, peer_env
from tests.gateway.conftest import (
    AE_TITLE,
    MODALITY,
    association,
    read_events,
    sample,
    send_files,
)
from tests.gateway.raw_dul import EXPLICIT_LE, RawAssociation
from tests.peers.datasets import ROOT, make_instance

ASSOCIATE_AC, ASSOCIATE_RJ, RELEASE_RP, ABORT = 0x02, 0x03, 0x06, 0x07


def ct_file(tmp_path: Path, name: str = "ct.dcm", size: int = 16) -> Path:
    ds = make_instance(study_uid=generate_uid(ROOT), series_uid=generate_uid(ROOT), size=size,
                       modality="CT")
    path = tmp_path / name
    ds.save_as(path, enforce_file_format=True)
    return path


def dataset_bytes(path: Path) -> tuple[str, bytes]:
    """(SOP Instance UID, the dataset as Explicit VR Little Endian without file meta)."""
    ds = dcmread(path)
    return str(ds.SOPInstanceUID), encode(ds, False, True)


def store_command(assoc: RawAssociation, sop_class: str, sop_instance: str,
                  message_id: int = 1) -> None:
    """A C-STORE-RQ command set on context 1; its data set is the caller's to send."""
    assoc.send_command(1, AffectedSOPClassUID=sop_class, CommandField=0x0001,
                       MessageID=message_id, Priority=0, CommandDataSetType=0x0000,
                       AffectedSOPInstanceUID=sop_instance)


def store_raw(assoc: RawAssociation, sop_class: str, sop_instance: str, dataset: bytes,
              message_id: int = 1) -> int:
    store_command(assoc, sop_class, sop_instance, message_id)
    assoc.send_pdv(1, 0x02, dataset)
    rsp = assoc.response()
    assert rsp.CommandField == 0x8001 and rsp.MessageIDBeingRespondedTo == message_id
    return int(rsp.Status)


def test_both_listeners_store_the_same_file(start_gateway, tmp_path: Path) -> None:
    # The same instance through the fast path and through pynetdicom: identical Part 10 files.
    path = ct_file(tmp_path)
    fast = start_gateway(folder=tmp_path / "fast")
    slow = start_gateway(folder=tmp_path / "slow", fast_storage=False)
    assert send_files(fast.port, [path]) == [st.SUCCESS]
    assert send_files(slow.port, [path]) == [st.SUCCESS]
    [a], [b] = fast.files(), slow.files()
    assert a.relative_to(fast.cache) == b.relative_to(slow.cache)
    assert a.read_bytes() == b.read_bytes()
    assert dcmread(a).file_meta.MediaStorageSOPInstanceUID == dcmread(path).SOPInstanceUID


async def test_a_data_set_in_many_fragments_is_stored_and_hashed_whole(
        start_gateway, bus_settings: BusSettings, tmp_path: Path) -> None:
    # The fast path builds the Part 10 file and its SHA-256 fragment by fragment while the data
    # set arrives. A 512x512 slice sent in 16 kB fragments, over P-DATA-TFs of two fragments
    # each and cut at odd places: the file is the one the pynetdicom listener writes, and
    # InstanceStored names that file's digest and size.
    path = ct_file(tmp_path, size=512)
    sop, dataset = dataset_bytes(path)
    fast = start_gateway(folder=tmp_path / "fast")
    slow = start_gateway(folder=tmp_path / "slow", fast_storage=False)
    assert send_files(slow.port, [path]) == [st.SUCCESS]
    assoc = RawAssociation(fast.port, MODALITY, AE_TITLE, [(CTImageStorage, [EXPLICIT_LE])])
    try:
        store_command(assoc, CTImageStorage, sop)
        cuts = list(range(0, len(dataset), 16_381)) + [len(dataset)]
        pieces = [dataset[a:b] for a, b in zip(cuts, cuts[1:], strict=False)]
        assert len(pieces) > 16
        for i in range(0, len(pieces), 2):
            pdvs = b"".join(
                struct.pack(">LBB", len(piece) + 2, 1, 0x02 if j == len(pieces) - 1 else 0x00)
                + piece for j, piece in enumerate(pieces[i:i + 2], start=i))
            assoc.sock.sendall(struct.pack(">BxL", 0x04, len(pdvs)) + pdvs)
        rsp = assoc.response()
        assert int(rsp.Status) == st.SUCCESS
        assert assoc.release() == RELEASE_RP
    finally:
        assoc.close()
    [a], [b] = fast.files(), slow.files()
    assert a.read_bytes() == b.read_bytes()
    events = await read_events(bus_settings, bus_settings.topics.instances, 2)
    stored = [e.payload for e in events if e.payload.sop_instance_uid == sop]
    assert {m.sha256 for m in stored} == {hashlib.sha256(a.read_bytes()).hexdigest()}
    assert {m.size_bytes for m in stored} == {a.stat().st_size}


def test_every_store_request_gets_a_status(start_gateway, tmp_path: Path) -> None:
    gw = start_gateway()
    refused = sample(gw.metrics(), "dicomvault_gateway_cstore_requests_total", status="0x0122")  # process-wide
    sop, dataset = dataset_bytes(ct_file(tmp_path))
    assoc = RawAssociation(gw.port, MODALITY, AE_TITLE, [(CTImageStorage, [EXPLICIT_LE])])
    try:
        assert assoc.answer_type == ASSOCIATE_AC
        # An empty and an over-long Affected SOP Instance UID: refused, not left unanswered.
        assert store_raw(assoc, CTImageStorage, "", dataset, 1) == st.DATASET_DOES_NOT_MATCH
        assert store_raw(assoc, CTImageStorage, "1." * 40, dataset, 2) == \
            st.DATASET_DOES_NOT_MATCH
        # A SOP class that is not the presentation context's.
        assert store_raw(assoc, SecondaryCaptureImageStorage, sop, dataset, 3) == \
            st.SOP_CLASS_NOT_SUPPORTED
        # A C-FIND request on a storage context: an unrecognised operation.
        assoc.send_command(1, AffectedSOPClassUID=CTImageStorage, CommandField=0x0020,
                           MessageID=4, Priority=0, CommandDataSetType=0x0101)
        rsp = assoc.response()
        assert (rsp.CommandField, int(rsp.Status)) == (0x8020, st.UNRECOGNIZED_OPERATION)
        assert gw.files(temps=True) == []
        # The association still works: the real instance is stored.
        assert store_raw(assoc, CTImageStorage, sop, dataset, 5) == st.SUCCESS
        assert len(gw.files()) == 1
        assert assoc.release() == RELEASE_RP
    finally:
        assoc.close()
    assert sample(gw.metrics(), "dicomvault_gateway_cstore_requests_total", status="0x0122") == refused + 1


def test_a_data_set_over_the_limit_is_refused_and_the_association_goes_on(
        start_gateway, tmp_path: Path) -> None:
    # A sender streaming more than max_dataset_bytes does not make the worker hold it: the
    # fragments are read and dropped, the request refused with 0xA700 and the limit named,
    # nothing written; the next C-STORE on the same association is stored.
    gw = start_gateway(max_dataset_bytes=64 * 1024)
    refused = sample(gw.metrics(), "dicomvault_gateway_cstore_requests_total", status="0xA700")
    big_sop, big = dataset_bytes(ct_file(tmp_path, "big.dcm", size=512))
    sop, small = dataset_bytes(ct_file(tmp_path))
    assert len(big) > 4 * 64 * 1024 and len(small) < 64 * 1024
    assoc = RawAssociation(gw.port, MODALITY, AE_TITLE, [(CTImageStorage, [EXPLICIT_LE])])
    try:
        store_command(assoc, CTImageStorage, big_sop)
        pieces = [big[i:i + 16_384] for i in range(0, len(big), 16_384)]
        for i, piece in enumerate(pieces):
            assoc.send_pdv(1, 0x02 if i == len(pieces) - 1 else 0x00, piece)
        rsp = assoc.response()
        assert int(rsp.Status) == st.OUT_OF_RESOURCES
        assert rsp.ErrorComment == f"data set larger than {64 * 1024} bytes"
        assert gw.files(temps=True) == []
        assert store_raw(assoc, CTImageStorage, sop, small, 2) == st.SUCCESS
        assert len(gw.files()) == 1
        assert assoc.release() == RELEASE_RP
    finally:
        assoc.close()
    assert sample(gw.metrics(), "dicomvault_gateway_cstore_requests_total",
                  status="0xA700") == refused + 1


def test_pynetdicom_associations_hold_no_message_over_the_limit(
        start_gateway, tmp_path: Path) -> None:
    # pynetdicom cannot answer before a message's last fragment: past max_dataset_bytes the
    # association is aborted instead of held in memory; the listener goes on serving.
    gw = start_gateway(fast_storage=False, max_dataset_bytes=64 * 1024)
    big_sop, big = dataset_bytes(ct_file(tmp_path, "big.dcm", size=512))
    assoc = RawAssociation(gw.port, MODALITY, AE_TITLE, [(CTImageStorage, [EXPLICIT_LE])])
    try:
        store_command(assoc, CTImageStorage, big_sop)
        for i in range(0, 5 * 16_000, 16_000):
            assoc.send_pdv(1, 0x00, big[i:i + 16_000])
        assert assoc.read_pdu()[0] == ABORT
    finally:
        assoc.close()
    assert gw.files(temps=True) == []
    assert send_files(gw.port, [ct_file(tmp_path)]) == [st.SUCCESS]  # under the limit


def test_protocol_violations_abort_the_association(start_gateway, tmp_path: Path) -> None:
    gw = start_gateway()
    _sop, dataset = dataset_bytes(ct_file(tmp_path))
    # A PDV on a presentation context that was never proposed.
    assoc = RawAssociation(gw.port, MODALITY, AE_TITLE, [(CTImageStorage, [EXPLICIT_LE])])
    try:
        assoc.send_pdv(99, 0x03, b"\x00" * 12)
        assert assoc.read_pdu()[0] == ABORT
    finally:
        assoc.close()
    # A command set that never ends (non-last command fragments past 64 KiB).
    assoc = RawAssociation(gw.port, MODALITY, AE_TITLE, [(CTImageStorage, [EXPLICIT_LE])])
    try:
        for _ in range(5):
            assoc.send_pdv(1, 0x01, b"\x00" * 16_384)
        assert assoc.read_pdu()[0] == ABORT
    finally:
        assoc.close()
    # A dataset with no command before it.
    assoc = RawAssociation(gw.port, MODALITY, AE_TITLE, [(CTImageStorage, [EXPLICIT_LE])])
    try:
        assoc.send_pdv(1, 0x02, dataset)
        assert assoc.read_pdu()[0] == ABORT
    finally:
        assoc.close()
    assert gw.files(temps=True) == []
    # The listener is unharmed.
    assert send_files(gw.port, [ct_file(tmp_path, "after.dcm")]) == [st.SUCCESS]


def test_unknown_calling_ae_and_the_association_limit(start_gateway) -> None:
    gw = start_gateway(max_associations=2)
    before = gw.metrics()  # the registry is per process: other tests' gateways count in it
    intruder = RawAssociation(gw.port, "INTRUDER", AE_TITLE, [(CTImageStorage, [EXPLICIT_LE])])
    assert intruder.answer_type == ASSOCIATE_RJ
    assert intruder.answer[1:4] == bytes((0x01, 0x01, 0x03))  # calling AE not recognised
    intruder.close()
    held = [RawAssociation(gw.port, MODALITY, AE_TITLE, [(CTImageStorage, [EXPLICIT_LE])])
            for _ in range(2)]
    try:
        assert [a.answer_type for a in held] == [ASSOCIATE_AC, ASSOCIATE_AC]
        third = RawAssociation(gw.port, MODALITY, AE_TITLE, [(CTImageStorage, [EXPLICIT_LE])])
        assert third.answer_type == ASSOCIATE_RJ
        assert third.answer[1:4] == bytes((0x02, 0x03, 0x02))  # local limit exceeded
        third.close()
    finally:
        for a in held:
            assert a.release() == RELEASE_RP
            a.close()
    text = gw.metrics()
    for reason in ("calling_ae_not_recognised", "local_limit_exceeded"):
        assert sample(text, "dicomvault_gateway_associations_total", result="rejected", reason=reason) \
            - sample(before, "dicomvault_gateway_associations_total", result="rejected", reason=reason) == 1


def test_idle_association_is_aborted(start_gateway) -> None:
    gw = start_gateway(network_timeout_s=1.0)
    assoc = RawAssociation(gw.port, MODALITY, AE_TITLE, [(CTImageStorage, [EXPLICIT_LE])])
    try:
        assert assoc.answer_type == ASSOCIATE_AC
        assert assoc.read_pdu()[0] == ABORT  # within the socket's 10 s timeout
    finally:
        assoc.close()


def test_echo_and_mixed_associations(start_gateway, tmp_path: Path) -> None:
    gw = start_gateway(modalities={MODALITY: {}})
    # dcmtk echoscu: a Verification-only association.
    echo = subprocess.run([dcmtk("echoscu"), "-aet", MODALITY, "-aec", AE_TITLE, "127.0.0.1",
                           str(gw.port)], env=peer_env(), capture_output=True, text=True,
                          timeout=60)
    assert echo.returncode == 0, echo.stderr
    # Storage, C-FIND and Storage Commitment on one association: pynetdicom serves it (the
    # fast path takes storage-only associations), each answers.
    contexts = [(CTImageStorage, [EXPLICIT_LE]),
                (StudyRootQueryRetrieveInformationModelFind, [EXPLICIT_LE]),
                (StorageCommitmentPushModel, [EXPLICIT_LE]),
                (Verification, [EXPLICIT_LE])]
    with association(gw.port, contexts=contexts) as assoc:
        assert int(assoc.send_c_store(ct_file(tmp_path)).Status) == st.SUCCESS
        query = Dataset()
        query.QueryRetrieveLevel = "STUDY"
        query.StudyInstanceUID = ""
        statuses = [int(s.Status) for s, _ in assoc.send_c_find(
            query, StudyRootQueryRetrieveInformationModelFind) if s]
        assert statuses == [st.OUT_OF_RESOURCES]  # no catalogue in this test: a real answer
        stored = dcmread(gw.files()[0], stop_before_pixels=True)
        status, _ = assoc.send_n_action(
            request_info(generate_uid(), [(stored.SOPClassUID, stored.SOPInstanceUID)]), 1,
            StorageCommitmentPushModel, "1.2.840.10008.1.20.1.1")
        assert int(status.Status) == st.SUCCESS  # handed over to the commitment service
    assert len(gw.files()) == 1
