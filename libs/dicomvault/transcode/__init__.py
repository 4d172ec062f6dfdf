"""Transcoding a stored Part 10 object to another transfer syntax, for the retrieve side
(WADO-RS, WADO-URI, the C-MOVE/C-GET storage SCU).

Uncompressed targets and RLE Lossless are written by pydicom (decoding with whatever pydicom
plugin is installed: pylibjpeg, GDCM); JPEG (Lossless SV1 included, which pydicom cannot
encode), JPEG-LS and JPEG 2000 by python-gdcm's ``ImageChangeTransferSyntax`` (the
``transcode`` extra). Anything that cannot be produced raises ``TranscodeError``: the caller
answers 406 or fails the sub-operation, it never sends something else.
"""

from __future__ import annotations

import io
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

__all__ = ["UNCOMPRESSED", "TranscodeError", "first_possible", "stored_syntax", "transcode"]

UNCOMPRESSED = frozenset({ExplicitVRLittleEndian, ImplicitVRLittleEndian, ExplicitVRBigEndian,
                          DeflatedExplicitVRLittleEndian})
_PYDICOM_TARGETS = frozenset({ExplicitVRLittleEndian, ImplicitVRLittleEndian,
                              ExplicitVRBigEndian, RLELossless})


class TranscodeError(ValueError):
    """The object cannot be written in the asked transfer syntax."""


def stored_syntax(data: bytes) -> str:
    """The transfer syntax of a Part 10 object (its File Meta Information)."""
    return str(pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
               .file_meta.TransferSyntaxUID)


def _with_pydicom(data: bytes, target: str) -> bytes:
    ds = pydicom.dcmread(io.BytesIO(data))
    if "PixelData" in ds and UID(ds.file_meta.TransferSyntaxUID).is_compressed:
        # to Explicit VR Little Endian, photometric interpretation fixed up; the same
        # instance in another encoding keeps its SOP Instance UID (pydicom's default is a new one)
        ds.decompress(generate_instance_uid=False)
    if target == RLELossless:
        ds.compress(RLELossless, generate_instance_uid=False)
    else:
        ds.file_meta.TransferSyntaxUID = UID(target)
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def _with_gdcm(data: bytes, target: str) -> bytes:
    try:
        import gdcm  # the "transcode" extra
    except ImportError as exc:
        raise TranscodeError(f"no encoder for {target} is installed (python-gdcm)") from exc
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
            raise TranscodeError(f"GDCM cannot encode {target} from this image")
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
    """The Part 10 object ``data`` re-encoded in ``target`` (as is when already in it)."""
    try:
        if stored_syntax(data) == target:
            return data
        if target in _PYDICOM_TARGETS:
            return _with_pydicom(data, target)
        if target in UNCOMPRESSED:
            raise TranscodeError(f"{target} is not written by this archive")
        return _with_gdcm(data, target)
    except TranscodeError:
        raise
    except Exception as exc:  # noqa: BLE001 - codecs raise anything; the caller refuses
        raise TranscodeError(f"cannot convert to {target}: {type(exc).__name__}: {exc}"
                             ) from exc


def first_possible(data: bytes, accepted: list[str]) -> tuple[bytes, str]:
    """(bytes, transfer syntax) in the first of ``accepted`` that can be produced; as stored
    when the stored syntax is accepted. TranscodeError listing every attempt otherwise."""
    source = stored_syntax(data)
    if source in accepted:
        return data, source
    errors = []
    for target in accepted:
        try:
            return transcode(data, target), target
        except TranscodeError as exc:
            errors.append(str(exc))
    raise TranscodeError("; ".join(errors) or "no transfer syntax accepted")
