"""The usual transfer syntaxes arrive as the modality encoded them, byte for byte, and the
framing check refuses a truncated object in any of them."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.uid import generate_uid

from dicom_gateway.part10 import Malformed, check_framing
from dicom_gateway.statuses import SUCCESS
from tests.conftest import dcmtk, peer_env
from tests.gateway.conftest import AE_TITLE, MODALITY, send_files
from tests.peers.datasets import ROOT, dataset_bytes, gdcm_transcode, make_instance

NATIVE = {  # written by pydicom
    "1.2.840.10008.1.2": dict(implicit_vr=True, little_endian=True),
    "1.2.840.10008.1.2.1": dict(implicit_vr=False, little_endian=True),
    "1.2.840.10008.1.2.2": dict(implicit_vr=False, little_endian=False),
}
ENCODED = [  # encoded by pydicom (deflate, RLE) or GDCM (JPEG family)
    "1.2.840.10008.1.2.1.99",
    "1.2.840.10008.1.2.5",
    "1.2.840.10008.1.2.4.57",
    "1.2.840.10008.1.2.4.70",
    "1.2.840.10008.1.2.4.80",
    "1.2.840.10008.1.2.4.81",
    "1.2.840.10008.1.2.4.90",
    "1.2.840.10008.1.2.4.91",
]
LOSSY_8BIT = ["1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51"]


def encode(folder: Path, ts: str) -> Path:
    ds = make_instance(study_uid=generate_uid(ROOT), series_uid=generate_uid(ROOT), size=32)
    if ts in LOSSY_8BIT:
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
        ds.PixelData = bytes(range(256)) * 4
    path = folder / f"{ts}.dcm"
    plain = folder / f"{ts}.plain.dcm"
    if ts in NATIVE:
        ds.file_meta.TransferSyntaxUID = ts
        ds.save_as(path, enforce_file_format=True, **NATIVE[ts])
    elif ts == "1.2.840.10008.1.2.1.99":
        ds.file_meta.TransferSyntaxUID = ts
        ds.save_as(path, enforce_file_format=True)
    elif ts == "1.2.840.10008.1.2.5":
        ds.compress(ts, encoding_plugin="pydicom")
        ds.save_as(path, enforce_file_format=True)
    else:
        ds.save_as(plain, enforce_file_format=True)
        gdcm_transcode(plain, path, ts)
    assert str(dcmread(path, stop_before_pixels=True).file_meta.TransferSyntaxUID) == ts
    return path


ALL = [*NATIVE, *ENCODED, *LOSSY_8BIT]
STORESCU_OPTION = {  # dcmtk storescu proposes this transfer syntax with this option
    "1.2.840.10008.1.2": "-xi", "1.2.840.10008.1.2.1": "-xe", "1.2.840.10008.1.2.2": "-xb",
    "1.2.840.10008.1.2.1.99": "-xd", "1.2.840.10008.1.2.5": "-xr",
    "1.2.840.10008.1.2.4.70": "-xs", "1.2.840.10008.1.2.4.80": "-xt",
    "1.2.840.10008.1.2.4.81": "-xu", "1.2.840.10008.1.2.4.90": "-xv",
    "1.2.840.10008.1.2.4.91": "-xw", "1.2.840.10008.1.2.4.50": "-xy",
    "1.2.840.10008.1.2.4.51": "-xx",
}


@pytest.fixture(scope="module")
def objects(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("ts")
    return {ts: encode(folder, ts) for ts in ALL}


def test_every_transfer_syntax_is_stored_as_sent(start_gateway, objects) -> None:
    gw = start_gateway()
    for ts, path in objects.items():
        if ts not in STORESCU_OPTION:  # JPEG Process 14: dcmtk has no option; pynetdicom
            sop_class = str(dcmread(path, stop_before_pixels=True).SOPClassUID)
            assert send_files(gw.port, [path], contexts=[(sop_class, [ts])]) == [SUCCESS]
            continue
        # storescu proposes the file's own transfer syntax and sends it unchanged.
        result = subprocess.run(
            [dcmtk("storescu"), "-aet", MODALITY, "-aec", AE_TITLE, "-R", STORESCU_OPTION[ts],
             "127.0.0.1", str(gw.port), str(path)], env=peer_env(), capture_output=True,
            text=True, timeout=60)
        assert result.returncode == 0 and "Warning" not in result.stderr, f"{ts}: {result.stderr}"
    stored = {str(dcmread(p, stop_before_pixels=True).file_meta.TransferSyntaxUID): p
              for p in gw.files()}
    assert set(stored) == set(ALL)
    for ts, path in objects.items():
        assert dataset_bytes(stored[ts].read_bytes()) == dataset_bytes(path.read_bytes()), ts


@pytest.mark.parametrize("ts", ALL)
def test_framing_accepts_whole_and_refuses_truncated(objects, ts: str) -> None:
    data = dataset_bytes(objects[ts].read_bytes())
    check_framing(data, ts)
    # (A deflated object may end in one pad byte after the stream: cut at least two.)
    for cut in (1 if ts != "1.2.840.10008.1.2.1.99" else 2, 7, len(data) // 3):
        with pytest.raises(Malformed):
            check_framing(data[:-cut], ts)
