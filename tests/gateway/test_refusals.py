"""What the gateway refuses, with which status, and that it then stores nothing."""

from __future__ import annotations

import copy
import hashlib
import subprocess
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.uid import generate_uid

from dicom_gateway import statuses as st
from dicomvault.bus.broker import EmbeddedBroker
from dicomvault.settings import BusSettings
from tests.commitment.modality import Modality, request_info
from tests.conftest import dcmtk, peer_env
from tests.gateway.conftest import AE_TITLE, read_events, sample, send_files
from tests.peers.datasets import ROOT, make_instance, write_study


def write(ds, path: Path) -> Path:
    """Write as given (file meta untouched), with preamble and DICM prefix."""
    ds.preamble = b"\x00" * 128
    ds.file_meta.FileMetaInformationVersion = b"\x00\x01"
    ds.file_meta.ImplementationClassUID = ROOT + "1"
    ds.save_as(path, enforce_file_format=False)
    return path


def instance(**kw):
    return make_instance(study_uid=generate_uid(ROOT), series_uid=generate_uid(ROOT), **kw)


def test_truncated_file_is_not_understood(start_gateway, tmp_path: Path) -> None:
    gw = start_gateway()
    # A file cut in the middle of its pixel data: its header alone looks fine.
    good = write(instance(), tmp_path / "good.dcm")
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(good.read_bytes()[:-1000])
    assert send_files(gw.port, [cut]) == [st.CANNOT_UNDERSTAND]
    assert gw.files(temps=True) == []


def test_missing_sop_instance_uid_is_refused(start_gateway, tmp_path: Path) -> None:
    gw = start_gateway()
    # The file meta names an instance; the dataset has no SOP Instance UID.
    ds = instance()
    del ds.SOPInstanceUID
    path = write(ds, tmp_path / "nosop.dcm")
    assert send_files(gw.port, [path]) == [st.DATASET_DOES_NOT_MATCH]
    assert gw.files(temps=True) == []


@pytest.mark.parametrize("attribute", ["StudyInstanceUID", "SeriesInstanceUID"])
def test_path_like_uid_is_refused(start_gateway, tmp_path: Path, attribute: str) -> None:
    gw = start_gateway()
    ds = instance()
    setattr(ds, attribute, "../../x")
    path = write(ds, tmp_path / "evil.dcm")
    assert send_files(gw.port, [path]) == [st.DATASET_DOES_NOT_MATCH]
    assert gw.files(temps=True) == []
    assert not (tmp_path / "x").exists() and not (tmp_path.parent / "x").exists()


def test_path_like_sop_instance_uid_is_refused(start_gateway, tmp_path: Path) -> None:
    gw = start_gateway()
    ds = instance(sop_uid="../../x")
    ds.file_meta.MediaStorageSOPInstanceUID = "../../x"
    path = write(ds, tmp_path / "evil.dcm")
    assert send_files(gw.port, [path]) == [st.DATASET_DOES_NOT_MATCH]
    assert gw.files(temps=True) == []


def test_dataset_must_be_the_announced_instance(start_gateway, tmp_path: Path) -> None:
    gw = start_gateway()
    ds = instance()
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid(ROOT)  # becomes Affected SOP UID
    path = write(ds, tmp_path / "other.dcm")
    assert send_files(gw.port, [path]) == [st.DATASET_DOES_NOT_MATCH]
    assert gw.files(temps=True) == []


def test_unknown_calling_ae_is_rejected(start_gateway) -> None:
    gw = start_gateway()
    before = gw.metrics()
    echo = subprocess.run([dcmtk("echoscu"), "-aet", "STRANGER", "-aec", AE_TITLE, "127.0.0.1",
                           str(gw.port)], env=peer_env(), capture_output=True, text=True,
                          timeout=30)
    assert echo.returncode != 0
    out = echo.stdout + echo.stderr
    assert "Rejected Permanent" in out and "Calling AE Title Not Recognized" in out, out
    after = gw.metrics()
    labels = {"result": "rejected", "reason": "calling_ae_not_recognised"}
    assert sample(after, "dicomvault_gateway_associations_total", **labels) - \
        sample(before, "dicomvault_gateway_associations_total", **labels) == 1


def test_any_calling_ae_when_configured(start_gateway) -> None:
    gw = start_gateway(accept_any_calling_ae=True, allowed_calling_aes=[])
    echo = subprocess.run([dcmtk("echoscu"), "-aet", "STRANGER", "-aec", AE_TITLE, "127.0.0.1",
                           str(gw.port)], env=peer_env(), capture_output=True, text=True,
                          timeout=30)
    assert echo.returncode == 0, echo.stderr


async def test_identical_resend_is_one_copy(start_gateway, tmp_path: Path) -> None:
    gw = start_gateway()
    path = write(instance(), tmp_path / "a.dcm")
    # Sent twice, same bytes: Success both times, one file; the event is the same fact.
    assert send_files(gw.port, [path, path]) == [st.SUCCESS, st.SUCCESS]
    assert len(gw.files()) == 1
    bus = gw.settings.bus
    events = await read_events(bus, bus.topics.instances, 2)
    assert len(events) == 2 and events[0].id == events[1].id


@pytest.mark.parametrize("policy,status,winner", [
    ("reject", st.DUPLICATE_SOP_INSTANCE, "first"),
    ("keep", st.SUCCESS, "first"),
    ("replace", st.SUCCESS, "second"),
])
async def test_different_bytes_follow_the_policy(start_gateway, tmp_path: Path, policy: str,
                                                 status: int, winner: str) -> None:
    gw = start_gateway(duplicate_policy=policy)
    first = instance()
    second = copy.deepcopy(first)
    second.StudyDescription = "CHANGED"  # same UIDs, other content
    a = write(first, tmp_path / "first.dcm")
    b = write(second, tmp_path / "second.dcm")
    assert send_files(gw.port, [a]) == [st.SUCCESS]
    assert send_files(gw.port, [b]) == [status]
    [stored] = gw.files()
    assert dcmread(stored).StudyDescription == ("CHANGED" if winner == "second" else "CHEST")
    bus = gw.settings.bus
    events = await read_events(bus, bus.topics.instances, 1 if winner == "first" else 2)
    assert [e.payload.sha256 for e in events][-1] == hashlib.sha256(
        stored.read_bytes()).hexdigest()
    assert len(events) == (2 if policy == "replace" else 1)


async def test_broker_down_fails_and_leaves_nothing(start_gateway, tmp_path: Path) -> None:
    # A broker of its own, which this test stops.
    broker = EmbeddedBroker(log_path=tmp_path / "tansu.log")
    broker.start()
    try:
        bus = BusSettings(bootstrap_servers=broker.bootstrap_servers, request_timeout_s=2.0,
                          retry_backoff_s=0.05)
        gw = start_gateway(bus=bus, store_timeout_s=4.0, modalities={"MODALITY1": {}})
        study = write_study(tmp_path / "study", series=1, per_series=2)
        assert send_files(gw.port, study.files[:1]) == [st.SUCCESS]

        # The broker goes away: the next instance is refused and its file removed.
        broker.stop()
        assert send_files(gw.port, study.files[1:]) == [st.BUS_UNAVAILABLE]
        assert [p.name for p in gw.files()] == [f"{study.sop_uids[0]}.dcm"]

        # It comes back (empty): the same instance is accepted.
        broker.start()
        assert send_files(gw.port, study.files[1:]) == [st.SUCCESS]
        assert len(gw.files()) == 2

        # Gone again: a storage commitment request is not answered Success either (0x0213
        # Resource limitation: ask again), as nothing recorded it.
        broker.stop()
        commit = request_info(generate_uid(), [(str(dcmread(study.files[0]).SOPClassUID),
                                                study.sop_uids[0])])
        assert Modality("MODALITY1").request(gw.port, commit) == 0x0213
    finally:
        broker.stop()
