"""Choose the transfer syntax to send to a destination; the transcoding itself is
``dicomvault.transcode``'s (the same code the gateway's retrieve side uses).

As dcm4chee does: an object whose transfer syntax is in the accepted list goes as stored;
otherwise it is transcoded to the first accepted syntax that works, then to Explicit VR
Little Endian, then to Implicit VR Little Endian. Uncompressed and RLE targets are written
by pydicom; the JPEG family (JPEG Lossless SV1 included, which pydicom cannot encode),
JPEG-LS and JPEG 2000 by python-gdcm's ``ImageChangeTransferSyntax``.
"""

from __future__ import annotations

import logging

from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from dicomvault.transcode import TranscodeError, stored_syntax, transcode

log = logging.getLogger(__name__)

FALLBACK = (ExplicitVRLittleEndian, ImplicitVRLittleEndian)


def candidates(accepted: list[str]) -> list[str]:
    """Targets in order: the accepted list, then the uncompressed fall-backs."""
    out: list[str] = []
    for uid in [*accepted, *FALLBACK]:
        if uid not in out:
            out.append(uid)
    return out


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
