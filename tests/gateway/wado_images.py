"""Images for the WADO tests: single- and multi-frame, native and encapsulated (RLE by
pydicom; JPEG Lossless, JPEG-LS and JPEG 2000 by GDCM), grey (MONOCHROME1/2) and RGB."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydicom import dcmread
from pydicom.uid import generate_uid

from tests.peers.datasets import ROOT, gdcm_transcode, make_instance

JPEG_LOSSLESS = "1.2.840.10008.1.2.4.70"
JPEG_LS = "1.2.840.10008.1.2.4.80"
JPEG_2000 = "1.2.840.10008.1.2.4.90"
RLE = "1.2.840.10008.1.2.5"
EXPLICIT = "1.2.840.10008.1.2.1"
MF_WORD_SC = "1.2.840.10008.5.1.4.1.1.7.3"


@dataclass
class Images:
    """A study of test images: name -> file, and the study/series they are in."""

    study_uid: str
    series_uid: str
    files: dict[str, Path] = field(default_factory=dict)

    def sop(self, name: str) -> str:
        return str(dcmread(self.files[name], stop_before_pixels=True).SOPInstanceUID)

    def path(self, name: str) -> str:
        return f"/studies/{self.study_uid}/series/{self.series_uid}/instances/{self.sop(name)}"


def _gradient(rows: int, cols: int, frames: int) -> np.ndarray:
    y, x = np.mgrid[0:rows, 0:cols]
    return np.stack([((x * 37 * (f + 1) + y * 11 + f * 500) % 4096).astype(np.uint16)
                     for f in range(frames)])


def write_images(folder: Path, patient_id: str = "WADO01") -> Images:
    folder.mkdir(parents=True, exist_ok=True)
    images = Images(generate_uid(ROOT), generate_uid(ROOT))

    def instance(number: int, **kw):
        ds = make_instance(study_uid=images.study_uid, series_uid=images.series_uid,
                           patient_id=patient_id, instance_number=number, **kw)
        return ds

    def save(name: str, ds, ts: str | None = None) -> None:
        plain = folder / f"{name}.plain.dcm"
        ds.save_as(plain, enforce_file_format=True)
        path = folder / f"{name}.dcm"
        if ts is None:
            plain.rename(path)
        elif ts == RLE:
            ds.compress(RLE, encoding_plugin="pydicom")
            ds.save_as(path, enforce_file_format=True)
        else:
            gdcm_transcode(plain, path, ts)
        images.files[name] = path

    # A CT slice with its window, native; the same pixels in JPEG Lossless, JPEG-LS, RLE.
    ct = instance(1, size=64)
    ct.PixelData = _gradient(64, 64, 1)[0].tobytes()
    ct.WindowCenter, ct.WindowWidth = 1024, 2048
    save("ct", ct)
    for n, (name, ts) in enumerate([("ct_jpegll", JPEG_LOSSLESS), ("ct_jls", JPEG_LS),
                                    ("ct_rle", RLE), ("ct_j2k", JPEG_2000)], start=2):
        other = instance(n, size=64)
        other.PixelData = ct.PixelData
        other.WindowCenter, other.WindowWidth = 1024, 2048
        save(name, other, ts)
    # A 5-frame grey secondary capture, native and JPEG Lossless.
    for n, (name, ts) in enumerate([("multi", None), ("multi_jpegll", JPEG_LOSSLESS)], start=10):
        mf = instance(n, size=32, modality="OT")
        mf.SOPClassUID = mf.file_meta.MediaStorageSOPClassUID = MF_WORD_SC
        mf.NumberOfFrames = 5
        mf.PixelData = _gradient(32, 32, 5).tobytes()
        save(name, mf, ts)
    # MONOCHROME1 (inverted display) and an 8-bit RGB photo.
    m1 = instance(20, size=16, modality="OT")
    m1.PhotometricInterpretation = "MONOCHROME1"
    m1.BitsAllocated, m1.BitsStored, m1.HighBit = 8, 8, 7
    m1.PixelData = np.tile(np.arange(16, dtype=np.uint8) * 16, (16, 1)).tobytes()
    save("mono1", m1)
    rgb = instance(21, size=16, modality="OT")
    rgb.SamplesPerPixel, rgb.PhotometricInterpretation, rgb.PlanarConfiguration = 3, "RGB", 0
    rgb.BitsAllocated, rgb.BitsStored, rgb.HighBit = 8, 8, 7
    pixels = np.zeros((16, 16, 3), dtype=np.uint8)
    pixels[..., 0], pixels[:8, :, 1], pixels[:, 8:, 2] = 200, 150, 255
    rgb.PixelData = pixels.tobytes()
    save("rgb", rgb)
    # A private binary value larger than the bulk data threshold (and a small one).
    tagged = instance(30, size=16)
    tagged.add_new(0x00090010, "LO", "VAULT TEST")
    tagged.add_new(0x00091011, "OB", bytes(range(256)) * 8)  # 2 KiB: bulk data
    tagged.add_new(0x00091012, "OB", b"tiny")  # inline
    save("tagged", tagged)
    return images
