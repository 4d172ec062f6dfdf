"""STOW-RS into a real DICOMweb server (Orthanc's plugin) and C-STORE into Orthanc."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, JPEGLosslessSV1

from dicomvault.transcode import transcode
from stow_exporter.spec import Exporter
from tests.exporter.conftest import drain, exporter
from tests.peers.datasets import write_study


def _by_sop(files: list[Path]) -> dict[str, bytes]:
    out = {}
    for f in files:
        data = f.read_bytes()
        out[pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True).SOPInstanceUID] = data
    return out


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_study_arrives_intact_in_orthanc(tmp_path, orthanc, catalogue, hosting, chunked):
    # A study of two series is in the cache tier and known to the catalogue.
    study = write_study(tmp_path / "study", series=2, per_series=3)
    catalogue[0].add(study)
    # An exporter to Orthanc's DICOMweb root, two requests at a time.
    h = hosting(exporter(url=orthanc.dicomweb_url,
                         properties={"chunked": chunked, "concurrency": 2}))
    export = await h.queue.submit(study.study_uid, trigger="manual")
    await drain(h)
    assert export.state == "exported", export.reason
    assert len(export.stored) == 6 and not export.failed
    # Orthanc holds every instance, byte for byte as it was in the cache.
    assert orthanc.files_by_sop_uid_of(study.study_uid) == _by_sop(study.files)


async def test_transcodes_to_jpeg_lossless_sv1_pixel_exact(tmp_path, orthanc, catalogue, hosting):
    study = write_study(tmp_path / "study", series=1, per_series=2, size=128)
    catalogue[0].add(study)
    # The destination takes only JPEG Lossless SV1: the uncompressed study is transcoded.
    h = hosting(exporter(url=orthanc.dicomweb_url,
                         properties={"transfer-syntax": [JPEGLosslessSV1]}))
    export = await h.queue.submit(study.study_uid, trigger="manual")
    await drain(h)
    assert export.state == "exported", export.reason
    assert set(export.stored.values()) == {JPEGLosslessSV1}
    stored = orthanc.files_by_sop_uid_of(study.study_uid)
    originals = _by_sop(study.files)
    assert set(stored) == set(originals)
    for sop, data in stored.items():
        got = pydicom.dcmread(io.BytesIO(data))
        want = pydicom.dcmread(io.BytesIO(originals[sop]))
        assert got.file_meta.TransferSyntaxUID == JPEGLosslessSV1
        assert np.array_equal(got.pixel_array, want.pixel_array)  # lossless: every pixel


async def test_sends_as_stored_when_accepted_and_falls_back_otherwise(
        tmp_path, orthanc, catalogue, hosting):
    study = write_study(tmp_path / "study", series=1, per_series=2)
    # One instance is stored as JPEG Lossless SV1, the other uncompressed.
    jpeg = study.files[0]
    jpeg.write_bytes(transcode(jpeg.read_bytes(), JPEGLosslessSV1))
    catalogue[0].add(study)
    # The web application lists Implicit VR Little Endian, then JPEG Lossless SV1: the JPEG
    # goes as stored; the explicit one is transcoded to the first listed syntax.
    h = hosting(exporter(url=orthanc.dicomweb_url, properties={
        "transfer-syntax": [ImplicitVRLittleEndian, JPEGLosslessSV1]}))
    export = await h.queue.submit(study.study_uid, trigger="manual")
    await drain(h)
    assert export.state == "exported", export.reason
    stored = orthanc.files_by_sop_uid_of(study.study_uid)
    originals = _by_sop(study.files)
    jpeg_uid = pydicom.dcmread(jpeg, stop_before_pixels=True).SOPInstanceUID
    assert stored[jpeg_uid] == originals[jpeg_uid]
    other = next(u for u in stored if u != jpeg_uid)
    assert pydicom.dcmread(io.BytesIO(stored[other])).file_meta.TransferSyntaxUID == \
        ImplicitVRLittleEndian
    # A syntax nobody can produce: fall back to Explicit VR Little Endian (decompressing).
    study2 = write_study(tmp_path / "study2", series=1, per_series=1)
    study2.files[0].write_bytes(transcode(study2.files[0].read_bytes(), JPEGLosslessSV1))
    catalogue[0].add(study2)
    h2 = hosting(exporter("EXP2", url=orthanc.dicomweb_url,
                          properties={"transfer-syntax": ["1.2.3.4.5.6"]}))
    export2 = await h2.queue.submit(study2.study_uid, trigger="manual")
    await drain(h2)
    assert export2.state == "exported", export2.reason
    assert set(export2.stored.values()) == {ExplicitVRLittleEndian}


async def test_dicom_uri_sends_by_c_store(tmp_path, orthanc, catalogue, hosting):
    study = write_study(tmp_path / "study", series=2, per_series=2)
    catalogue[0].add(study)
    exp = Exporter.model_validate({"exporterID": "CSTORE", "uri": "dicom:ORTHANC",
                                   "aeTitle": "VAULTEXP",
                                   "retry": {"maxRetries": 0}})
    h = hosting(exp, modalities={"ORTHANC": {"host": "127.0.0.1", "port": orthanc.dicom_port}})
    export = await h.queue.submit(study.study_uid, trigger="manual")
    await drain(h)
    assert export.state == "exported", export.reason
    stored = orthanc.files_by_sop_uid_of(study.study_uid)
    assert set(stored) == set(study.sop_uids)
    originals = _by_sop(study.files)
    for sop, data in stored.items():
        got, want = pydicom.dcmread(io.BytesIO(data)), pydicom.dcmread(io.BytesIO(originals[sop]))
        assert got.PixelData == want.PixelData and got.PatientID == want.PatientID
