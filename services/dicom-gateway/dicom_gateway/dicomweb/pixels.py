"""The frames of one stored instance's Pixel Data: as stored, decoded to native, or
re-encoded (``dicomvault.transcode``), and the media type / transfer syntax negotiation of
PS3.18 8.7.3 for frames and pixel-data bulk data.

A native frame is a slice of the Pixel Data value (little endian); an encapsulated frame is
its fragments joined (``pydicom.encaps.generate_frames``). Decoding uses pydicom's plugins
(pylibjpeg, GDCM).
"""

from __future__ import annotations

from dataclasses import dataclass
from io import BytesIO

import numpy as np
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.encaps import generate_frames
from pydicom.pixels import pixel_array
from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from dicom_gateway.dicomweb.multipart import MediaType
from dicomvault.transcode import TranscodeError, transcode

OCTET = "application/octet-stream"
STORED = "*"
# transfer syntax -> the media type of one of its frames (PS3.18 Table 8.7.3-2)
FRAME_MEDIA = {
    "1.2.840.10008.1.2.4.50": "image/jpeg", "1.2.840.10008.1.2.4.51": "image/jpeg",
    "1.2.840.10008.1.2.4.57": "image/jpeg", "1.2.840.10008.1.2.4.70": "image/jpeg",
    "1.2.840.10008.1.2.4.80": "image/jls", "1.2.840.10008.1.2.4.81": "image/jls",
    "1.2.840.10008.1.2.4.90": "image/jp2", "1.2.840.10008.1.2.4.91": "image/jp2",
    "1.2.840.10008.1.2.4.92": "image/jpx", "1.2.840.10008.1.2.4.93": "image/jpx",
    "1.2.840.10008.1.2.5": "image/dicom-rle",
}
ALIASES = {"image/x-dicom-rle": "image/dicom-rle", "image/x-jls": "image/jls"}
# the transfer syntax a media type means when Accept names none (PS3.18 Table 8.7.3-2)
DEFAULT_SYNTAX = {
    OCTET: ExplicitVRLittleEndian, "image/jpeg": "1.2.840.10008.1.2.4.50",
    "image/jls": "1.2.840.10008.1.2.4.80", "image/jp2": "1.2.840.10008.1.2.4.90",
    "image/jpx": "1.2.840.10008.1.2.4.92", "image/dicom-rle": "1.2.840.10008.1.2.5",
}
NATIVE_LE = {ExplicitVRLittleEndian, ImplicitVRLittleEndian, "1.2.840.10008.1.2.1.99"}


class NotAcceptable(ValueError):
    """No media range of the Accept header can be served (406)."""


class NoPixels(ValueError):
    """The instance has no Pixel Data (404 for frames, 406 for rendering)."""


@dataclass(frozen=True)
class Plan:
    """What to send: the parts' media type (as the client named it) and transfer syntax."""

    media_type: str
    transfer_syntax: str  # STORED: as stored


def media_for(transfer_syntax: str) -> str:
    return FRAME_MEDIA.get(transfer_syntax, OCTET)


def plans(accept: list[MediaType], stored: str) -> list[Plan]:
    """The ways to answer, in the client's order of preference, for frames stored in
    ``stored``."""
    out: list[Plan] = []
    for m in accept:
        if m.type in ("*/*", "multipart/*") or (m.type == "multipart/related"
                                                 and m.params.get("type") in (None, "*/*")):
            out.append(Plan(media_for(stored), STORED))
            continue
        if m.type != "multipart/related":
            continue
        asked = m.params.get("type", OCTET).lower()
        part = ALIASES.get(asked, asked)
        ts = m.params.get("transfer-syntax")
        if part == OCTET:
            if ts == STORED:
                out.append(Plan(OCTET, STORED))
            elif ts in (None, ExplicitVRLittleEndian, ImplicitVRLittleEndian):
                out.append(Plan(OCTET, ExplicitVRLittleEndian))
        elif part == "image/*":
            out.append(Plan(media_for(stored), STORED))
        elif part in DEFAULT_SYNTAX:
            if ts == STORED:
                ts = stored if media_for(stored) == part else DEFAULT_SYNTAX[part]
            ts = ts or DEFAULT_SYNTAX[part]
            if FRAME_MEDIA.get(ts) == part:
                out.append(Plan(asked, ts))
    return out


def read(data: bytes) -> Dataset:
    ds = dcmread(BytesIO(data))
    if "PixelData" not in ds:
        raise NoPixels("the instance has no Pixel Data")
    return ds


def number_of_frames(ds: Dataset) -> int:
    try:
        return max(1, int(ds.get("NumberOfFrames") or 1))
    except (TypeError, ValueError):
        return 1


def _syntax(ds: Dataset) -> str:
    return str(ds.file_meta.TransferSyntaxUID)


def stored_frames(ds: Dataset, numbers: list[int]) -> list[bytes]:
    """The frames (1-based numbers) exactly as stored; native ones little endian."""
    n = number_of_frames(ds)
    ts = UID(_syntax(ds))
    if ts.is_encapsulated:
        frames = list(generate_frames(ds.PixelData, number_of_frames=n))
        return [frames[i - 1] for i in numbers]
    if ts not in NATIVE_LE or int(ds.BitsAllocated) == 1:
        return decoded_frames(ds, numbers)
    size = int(ds.Rows) * int(ds.Columns) * int(ds.get("SamplesPerPixel", 1)) \
        * int(ds.BitsAllocated) // 8
    value = ds.PixelData
    return [bytes(value[(i - 1) * size:i * size]) for i in numbers]


def decoded_frames(ds: Dataset, numbers: list[int]) -> list[bytes]:
    """The frames decoded to native little-endian samples (colour as interleaved RGB)."""
    out = []
    width = int(ds.BitsAllocated)
    for i in numbers:
        arr = pixel_array(ds, index=i - 1)
        if width == 1:
            out.append(np.packbits(arr.astype(np.uint8).ravel(), bitorder="little").tobytes())
            continue
        kind = "i" if int(ds.get("PixelRepresentation", 0)) else "u"
        out.append(arr.astype(f"<{kind}{max(1, width // 8)}").tobytes())
    return out


def frames(ds: Dataset, data: bytes, numbers: list[int], plan: Plan
           ) -> tuple[list[bytes], str]:
    """(frames, their transfer syntax) for ``plan`` from ``ds`` (``read(data)``). Raises
    IndexError (a frame number out of range), TranscodeError."""
    n = number_of_frames(ds)
    bad = [i for i in numbers if not 1 <= i <= n]
    if bad:
        raise IndexError(f"frame {bad[0]} is out of range: the instance has {n} frame(s)")
    stored = _syntax(ds)
    target = stored if plan.transfer_syntax == STORED else plan.transfer_syntax
    if target == stored or (target == ExplicitVRLittleEndian and stored in NATIVE_LE):
        return stored_frames(ds, numbers), (ExplicitVRLittleEndian if stored in NATIVE_LE
                                            else stored)
    if target == ExplicitVRLittleEndian:
        try:
            return decoded_frames(ds, numbers), target
        except Exception as exc:  # noqa: BLE001 - a codec's error: no decoder for it
            raise TranscodeError(f"cannot decode {stored}: {exc}") from exc
    return stored_frames(read(transcode(data, target)), numbers), target


def converted(stored: str, sent: str) -> bool:
    """Whether frames sent in ``sent`` had to be decoded or re-encoded from ``stored``."""
    return sent != stored and not (stored in NATIVE_LE and sent == ExplicitVRLittleEndian)


def frame_numbers(text: str) -> list[int]:
    """``1,3,5`` -> [1, 3, 5]; ValueError for anything else."""
    numbers = [int(p) for p in text.split(",") if p.strip()]
    if not numbers or any(i < 1 for i in numbers):
        raise ValueError(f"not a list of frame numbers: {text!r}")
    return numbers
