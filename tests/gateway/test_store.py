"""C-ECHO and C-STORE into the real gateway on the real broker, with dcmtk as the modality."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import httpx
from pydicom import dcmread

from dicom_gateway.settings import GatewaySettings
from dicomvault.events.v1 import events_pb2 as ev
from tests.conftest import dcmtk, peer_env
from tests.gateway.conftest import AE_TITLE, MODALITY, read_events, sample
from tests.peers.datasets import dataset_bytes, write_study


def storescu(port: int, files: list[Path], calling_ae: str = MODALITY,
             *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [dcmtk("storescu"), "-aet", calling_ae, "-aec", AE_TITLE, *extra, "127.0.0.1",
         str(port), *map(str, files)],
        env=peer_env(), capture_output=True, text=True, timeout=120)


def test_echo(start_gateway) -> None:
    gw = start_gateway()
    echo = subprocess.run([dcmtk("echoscu"), "-aet", MODALITY, "-aec", AE_TITLE, "127.0.0.1",
                           str(gw.port)], env=peer_env(), capture_output=True, text=True,
                          timeout=30)
    assert echo.returncode == 0, echo.stderr


async def test_study_is_stored_byte_exact_and_announced(start_gateway, tmp_path: Path) -> None:
    gw = start_gateway()
    study = write_study(tmp_path / "study", series=2, per_series=3)
    before = gw.metrics()  # metrics are per process: compare with what was there

    # A modality sends a two-series study.
    result = storescu(gw.port, study.files)
    assert result.returncode == 0, result.stderr

    # Each instance is a Part 10 file under study/series/sop.dcm whose dataset is byte for
    # byte what the modality sent.
    settings: GatewaySettings = gw.settings
    originals = {dcmread(p, stop_before_pixels=True).SOPInstanceUID: p for p in study.files}
    stored = gw.files()
    assert len(stored) == 6
    for path in stored:
        sop = path.name.removesuffix(".dcm")
        key = path.relative_to(gw.cache).as_posix()
        ds = dcmread(path, stop_before_pixels=True)
        assert key == f"{ds.StudyInstanceUID}/{ds.SeriesInstanceUID}/{sop}.dcm"
        assert ds.file_meta.MediaStorageSOPInstanceUID == sop
        assert dataset_bytes(path.read_bytes()) == dataset_bytes(originals[sop].read_bytes())

    # One InstanceStored per instance, keyed by study, with every field filled in.
    events = await read_events(settings.bus, settings.bus.topics.instances, 6)
    assert len(events) == 6
    for event in events:
        msg: ev.InstanceStored = event.payload
        assert isinstance(msg, ev.InstanceStored)
        assert event.type == "dicomvault.instance.stored.v1"
        assert event.subject == study.study_uid
        path = gw.cache / msg.storage_key
        data = path.read_bytes()
        src = dcmread(originals[msg.sop_instance_uid])
        assert msg.sha256 == hashlib.sha256(data).hexdigest()
        assert msg.size_bytes == len(data)
        assert (msg.study_instance_uid, msg.series_instance_uid, msg.sop_class_uid) == (
            src.StudyInstanceUID, src.SeriesInstanceUID, src.SOPClassUID)
        assert (msg.patient_id, msg.patient_name, msg.study_date, msg.modality) == (
            "PAT001", "DOE^JANE", "20240105", src.Modality)
        assert msg.transfer_syntax_uid == "1.2.840.10008.1.2.1"
        assert (msg.calling_ae, msg.called_ae, msg.source, msg.tier) == (
            MODALITY, AE_TITLE, "dimse", "cache")
        assert msg.accession_number == "ACC001"
        assert msg.series_number == str(src.SeriesNumber)
        assert msg.instance_number == str(src.InstanceNumber)
        assert msg.station_name == "CT01"
        assert msg.received_time.seconds > 0
    assert {e.payload.sop_instance_uid for e in events} == set(study.sop_uids)

    # The metrics saw it.
    after = gw.metrics()

    def grew(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    assert grew("dicomvault_gateway_cstore_requests_total", status="0x0000") == 6
    assert grew("dicomvault_gateway_associations_total", result="accepted", reason="") == 1
    assert grew("dicomvault_gateway_store_duration_seconds_count") == 6
    assert grew("dicomvault_gateway_received_bytes_total") == sum(p.stat().st_size for p in stored)


def test_health_and_readiness_without_a_catalogue(start_gateway) -> None:
    gw = start_gateway()  # its catalogue URL points at a port nobody listens on
    assert httpx.get(f"{gw.http}/healthz", timeout=10).status_code == 200
    ready = httpx.get(f"{gw.http}/readyz", timeout=10)
    assert ready.status_code == 503
    reasons = ready.json()["reasons"]
    assert len(reasons) == 1 and reasons[0].startswith("catalogue unreachable"), reasons
