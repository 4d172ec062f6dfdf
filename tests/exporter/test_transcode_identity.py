"""A transcoded copy is the same instance: the exporter never sends it under a new UID
(pydicom 3's compress/decompress generate a new SOP Instance UID unless told otherwise)."""

from __future__ import annotations

import io

import pydicom
from pydicom.uid import ExplicitVRLittleEndian, RLELossless, generate_uid

from dicomvault.transcode import transcode
from tests.peers.datasets import ROOT, make_instance


def test_transcoding_keeps_the_sop_instance_uid() -> None:
    ds = make_instance(study_uid=generate_uid(ROOT), series_uid=generate_uid(ROOT), size=16,
                       modality="CT")
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    rle = transcode(buf.getvalue(), RLELossless)
    back = transcode(rle, ExplicitVRLittleEndian)
    for data, syntax in ((rle, RLELossless), (back, ExplicitVRLittleEndian)):
        out = pydicom.dcmread(io.BytesIO(data))
        assert out.file_meta.TransferSyntaxUID == syntax
        assert out.SOPInstanceUID == ds.SOPInstanceUID
        assert out.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    assert (pydicom.dcmread(io.BytesIO(back)).pixel_array == ds.pixel_array).all()
