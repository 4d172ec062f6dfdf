"""Hostile and careless DICOM objects, built byte by byte (pydicom would refuse to write
them): malformed values, unknown VRs, sequences nested 900 deep, undefined lengths that never
close, and deflated decompression bombs."""

from __future__ import annotations

import struct
import uuid
import zlib
from functools import cache

from pydicom.dataset import FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_file_meta_info

from tests.peers.datasets import ROOT

EXPLICIT_LE = "1.2.840.10008.1.2.1"
DEFLATED_LE = "1.2.840.10008.1.2.1.99"
SC = "1.2.840.10008.5.1.4.1.1.7"  # Secondary Capture Image Storage
UNDEFINED = 0xFFFFFFFF
_LONG = {"OB", "OW", "SQ", "UN", "UT", "UC", "UR", "OD", "OF", "OL", "OV", "SV", "UV"}


def element(group: int, elem: int, vr: str, value: bytes) -> bytes:
    """One explicit VR little endian element (``value`` padded to even length)."""
    if len(value) % 2:
        value += b"\x00" if vr == "UI" else b" "
    if vr in _LONG:
        return struct.pack("<HH2s2xL", group, elem, vr.encode(), len(value)) + value
    return struct.pack("<HH2sH", group, elem, vr.encode(), len(value)) + value


def text(group: int, elem: int, vr: str, value: str) -> bytes:
    return element(group, elem, vr, value.encode("latin-1", "replace"))


def fixed_length_uid() -> str:
    """A fresh UID of always the same length (59 characters): the fuzz strategies' draws
    depend on the sizes of what they mutate, never on a random UID length."""
    return f"{ROOT}1{uuid.uuid4().int % 10**29:029d}"


class Instance:
    """The UIDs of one hostile object and the Part 10 file around a dataset body."""

    def __init__(self, study: str | None = None) -> None:
        self.study = study or fixed_length_uid()
        self.series = fixed_length_uid()
        self.sop = fixed_length_uid()

    def head(self) -> bytes:
        """SOP Class/Instance UIDs (group 0008): every body starts with them."""
        return text(0x0008, 0x0016, "UI", SC) + text(0x0008, 0x0018, "UI", self.sop)

    def tail(self, **values: str) -> bytes:
        """Study/Series UIDs, patient, and (group 0020) the values given by keyword."""
        out = text(0x0010, 0x0010, "PN", "HOSTILE^TEST") + text(0x0010, 0x0020, "LO", "HOST01")
        if "SliceThickness" in values:
            out += text(0x0018, 0x0050, "DS", values["SliceThickness"])
        out += text(0x0020, 0x000D, "UI", self.study) + text(0x0020, 0x000E, "UI", self.series)
        if "InstanceNumber" in values:
            out += text(0x0020, 0x0013, "IS", values["InstanceNumber"])
        return out

    def dataset(self, middle: bytes = b"", *, study_date: str = "20240105", **values: str
                ) -> bytes:
        return (self.head() + text(0x0008, 0x0020, "DA", study_date)
                + text(0x0008, 0x0060, "CS", "OT") + middle + self.tail(**values))

    def part10(self, dataset: bytes, ts: str = EXPLICIT_LE) -> bytes:
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = SC
        meta.MediaStorageSOPInstanceUID = self.sop
        meta.TransferSyntaxUID = ts
        meta.ImplementationClassUID = ROOT + "1"
        buf = DicomBytesIO()
        buf.is_little_endian, buf.is_implicit_VR = True, False
        write_file_meta_info(buf, meta, enforce_standard=True)
        return b"\x00" * 128 + b"DICM" + buf.getvalue() + dataset


def nested_sequences(depth: int) -> bytes:
    """(0008,1140) ReferencedImageSequence holding itself ``depth`` times, undefined lengths."""
    open_ = struct.pack("<HH2s2xL", 0x0008, 0x1140, b"SQ", UNDEFINED) + \
        struct.pack("<HHL", 0xFFFE, 0xE000, UNDEFINED)
    close = struct.pack("<HHL", 0xFFFE, 0xE00D, 0) + struct.pack("<HHL", 0xFFFE, 0xE0DD, 0)
    return open_ * depth + close * depth


def never_closed() -> bytes:
    """A sequence and item of undefined length whose delimiters never come."""
    return (struct.pack("<HH2s2xL", 0x0008, 0x1140, b"SQ", UNDEFINED)
            + struct.pack("<HHL", 0xFFFE, 0xE000, UNDEFINED)
            + text(0x0008, 0x1150, "UI", SC))


def unknown_vr() -> bytes:
    """(0008,0070) Manufacturer with the VR ``KS`` (a flipped bit of ``CS``)."""
    return struct.pack("<HH2sH", 0x0008, 0x0070, b"KS", 4) + b"ACME"


@cache
def deflate_bomb(inflated_mb: int = 300) -> tuple[Instance, bytes]:
    """A deflated Part 10 object of a few hundred KB whose pixel data inflates to
    ``inflated_mb`` MB of zeros."""
    inst = Instance()
    size = inflated_mb * 1024 * 1024
    pixels = struct.pack("<HH2s2xL", 0x7FE0, 0x0010, b"OB", size)
    z = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    out = [z.compress(inst.dataset() + pixels)]
    zeros = bytes(1024 * 1024)
    for _ in range(inflated_mb):
        out.append(z.compress(zeros))
    out.append(z.flush())
    return inst, inst.part10(b"".join(out), DEFLATED_LE)
