"""Choose the transfer syntax to send, and transcode when the stored one is not accepted.

As dcm4chee does: an object whose transfer syntax is in the accepted list goes as stored;
otherwise it is transcoded to the first accepted syntax that works, then to Explicit VR
Little Endian, then to Implicit VR Little Endian. Uncompressed and RLE targets are written
by pydicom; the JPEG family (JPEG Lossless SV1 included, which pydicom cannot encode),
JPEG-LS and JPEG 2000 by python-gdcm's ``ImageChangeTransferSyntax``.
"""

from __future__ import annotations

import io
import logging
import os
import tempfile

import pydicom
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    RLELossless,
)

log = logging.getLogger(__name__)

UNCOMPRESSED = {ExplicitVRLittleEndian, ImplicitVRLittleEndian, ExplicitVRBigEndian,
                DeflatedExplicitVRLittleEndian}
FALLBACK = (ExplicitVRLittleEndian, ImplicitVRLittleEndian)


class TranscodeError(ValueError):
    """No transfer syntax could be produced for this object."""


def stored_syntax(data: bytes) -> str:
    """The transfer syntax of a Part 10 file (its File Meta Information)."""
    meta = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True).file_meta
    return str(meta.TransferSyntaxUID)


def candidates(accepted: list[str]) -> list[str]:
    """Targets in order: the accepted list, then the uncompressed fall-backs."""
    out: list[str] = []
    for uid in [*accepted, *FALLBACK]:
        if uid not in out:
            out.append(uid)
    return out


def _with_pydicom(data: bytes, target: str) -> bytes:
    ds = pydicom.dcmread(io.BytesIO(data))
    source = UID(ds.file_meta.TransferSyntaxUID)
    if "PixelData" in ds and source.is_compressed:
        ds.decompress(generate_instance_uid=False)  # the same instance, other encoding
    if target == RLELossless:
        ds.compress(RLELossless, generate_instance_uid=False)
    elif target in (ExplicitVRLittleEndian, ImplicitVRLittleEndian, ExplicitVRBigEndian):
        ds.file_meta.TransferSyntaxUID = UID(target)
    else:
        raise TranscodeError(f"pydicom cannot write {target}")
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def _with_gdcm(data: bytes, target: str) -> bytes:
    import gdcm  # optional dependency ("transcode" extra)

    ts_type = gdcm.TransferSyntax.GetTSType(target)
    if ts_type == gdcm.TransferSyntax.TS_END:
        raise TranscodeError(f"GDCM does not know transfer syntax {target}")
    with tempfile.TemporaryDirectory(prefix="vault-transcode-") as tmp:
        src, dst = os.path.join(tmp, "in.dcm"), os.path.join(tmp, "out.dcm")
        with open(src, "wb") as fh:
            fh.write(data)
        reader = gdcm.ImageReader()
        reader.SetFileName(src)
        if not reader.Read():
            raise TranscodeError("GDCM cannot read the object as an image")
        change = gdcm.ImageChangeTransferSyntax()
        change.SetTransferSyntax(gdcm.TransferSyntax(ts_type))
        change.SetInput(reader.GetImage())
        if not change.Change():
            raise TranscodeError(f"GDCM cannot encode {target}")
        writer = gdcm.ImageWriter()
        writer.SetFileName(dst)
        writer.SetFile(reader.GetFile())
        writer.SetImage(change.GetOutput())
        if not writer.Write():
            raise TranscodeError(f"GDCM cannot write {target}")
        with open(dst, "rb") as fh:
            out = fh.read()
    if stored_syntax(out) != target:
        raise TranscodeError(f"GDCM wrote {stored_syntax(out)} instead of {target}")
    return out


def transcode(data: bytes, target: str) -> bytes:
    """The object re-encoded in ``target`` (raises TranscodeError)."""
    try:
        if target in UNCOMPRESSED or target == RLELossless:
            return _with_pydicom(data, target)
        return _with_gdcm(data, target)
    except TranscodeError:
        raise
    except Exception as exc:  # noqa: BLE001 - codecs raise anything; the caller falls back
        raise TranscodeError(f"{type(exc).__name__}: {exc}") from exc


def for_destination(data: bytes, accepted: list[str]) -> tuple[bytes, str]:
    """(bytes to send, their transfer syntax) for a destination accepting ``accepted``.

    An empty ``accepted`` list means the destination takes anything: send as stored.
    """
    source = stored_syntax(data)
    if not accepted or source in accepted:
        return data, source
    errors = []
    for target in candidates(accepted):
        try:
            return transcode(data, target), target
        except TranscodeError as exc:
            errors.append(f"{target}: {exc}")
            log.info("transcoding failed, falling back", extra={"target": target,
                                                                 "error": str(exc)})
    raise TranscodeError("; ".join(errors))
