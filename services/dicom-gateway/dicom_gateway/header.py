"""The InstanceStored header of a Part 10 object, read straight from its bytes.

``part10.read_header`` used pydicom's ``dcmread`` for ~28 top-level attributes: about 1.7 ms
per instance on this machine, more than the durable write of a small image. ``read`` walks the
top-level elements up to the pixel data, as pydicom's ``stop_before_pixels`` does, and converts
only the wanted values, with pydicom's own character-set decoding (``decode_bytes``) and the
same text rules as pydicom's value converters followed by ``part10._text``, integer strings as
sent like ``part10._raw`` (so the results are equal: tested against the pydicom reader). It
returns None for what it does not handle itself — big endian, deflated, an unexpected VR,
nesting deeper than ``MAX_DEPTH``, elements out of ascending tag order or repeated — and the
caller then uses pydicom.
"""

from __future__ import annotations

import struct
from functools import lru_cache

from pydicom.charset import decode_bytes, default_encoding
from pydicom.datadict import dictionary_VR, tag_for_keyword

from dicom_gateway import vrs

IMPLICIT_LE = "1.2.840.10008.1.2"
LITTLE_ENDIAN = (IMPLICIT_LE, "1.2.840.10008.1.2.1")  # others (compressed pixels) too, below
BIG_ENDIAN = "1.2.840.10008.1.2.2"
DEFLATED = ("1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.8.1")
_LONG_VRS = vrs.LONG
UNDEFINED = 0xFFFFFFFF
ITEM, ITEM_END, SEQ_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
PIXELS = frozenset({0x7FE00008, 0x7FE00009, 0x7FE00010})  # where stop_before_pixels stops
MAX_DEPTH = 16
TEXT_VR_DELIMS = {"\n", "\r", "\t", "\f"}  # pydicom.values' delimiters for text VRs
_TAG = struct.Struct("<HH")
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<L")
# An element's first 8 bytes in one unpack: tag, VR and 16-bit length (explicit VR), or tag
# and 32-bit length (implicit VR).
_EXPLICIT, _IMPLICIT = struct.Struct("<HH2sH"), struct.Struct("<HHL")
_VR_TEXT = vrs.TEXT

_STRING_VRS = {"AS", "CS", "DA", "TM", "DT", "UI"}
_TEXT_VRS = {"SH", "LO", "UC"}
_SINGLE_VRS = {"LT", "ST", "UT"}


class _Unsupported(Exception):
    """Leave this object to pydicom."""


def wanted(keywords: list[str]) -> dict[int, tuple[str, str]]:
    """{tag: (keyword, dictionary VR)} of the attributes to read."""
    out = {}
    for kw in keywords:
        tag = tag_for_keyword(kw)
        if tag is None:
            raise ValueError(f"unknown keyword {kw}")
        out[int(tag)] = (kw, dictionary_VR(tag))
    return out


@lru_cache(maxsize=64)
def _encodings(raw: bytes) -> tuple[str, ...]:
    from pydicom.charset import convert_encodings

    values = [v.strip() for v in raw.decode(default_encoding).rstrip(" \x00").split("\\")]
    return tuple(convert_encodings(values if len(values) > 1 else values[0]))


def _join(values: list[str]) -> str:
    return "\\".join(v.rstrip("\x00 ") for v in values)


def _values(text: str) -> str:
    """``_join(text.split("\\"))``, without the split for a single value."""
    return _join(text.split("\\")) if "\\" in text else text.rstrip("\x00 ")


def _decode(raw: bytes, encodings: tuple[str, ...]) -> str:
    """pydicom's ``decode_bytes``: without an escape sequence it decodes with the first
    encoding, done here directly; anything else (or a failure) goes to pydicom as before."""
    if b"\x1b" not in raw:
        try:
            return raw.decode(encodings[0])
        except (LookupError, UnicodeError):
            pass
    return decode_bytes(raw, list(encodings), TEXT_VR_DELIMS)


def _convert(vr: str, raw: bytes, encodings: tuple[str, ...]) -> str:
    if vr in _STRING_VRS:
        return _values(raw.decode(default_encoding).rstrip(" \x00"))
    if vr == "AE":
        return _join([v.strip() for v in raw.decode(default_encoding).split("\\")])
    if vr in _TEXT_VRS:
        return _values(_decode(raw, encodings))
    if vr in _SINGLE_VRS:
        return _decode(raw, encodings).rstrip("\x00 ")
    if vr == "PN":
        return _values(_decode(raw.rstrip(b"\x00 "), encodings))
    if vr == "IS":  # as sent, never parsed as a number (part10._raw, docs/conformance.md)
        return raw.decode("latin-1").rstrip("\x00 ")
    raise _Unsupported(vr)


def read(part10: bytes, offset: int, transfer_syntax: str,
         tags: dict[int, tuple[str, str]]) -> dict[str, str] | None:
    """{keyword: text} of the wanted attributes present at the top level of the dataset that
    starts at ``offset``; None when pydicom should read it instead."""
    if transfer_syntax == BIG_ENDIAN or transfer_syntax in DEFLATED:
        return None
    try:
        return _read(part10, offset, transfer_syntax == IMPLICIT_LE, tags)
    except (_Unsupported, struct.error, IndexError):
        return None


def _read(data: bytes, pos: int, implicit: bool,
          tags: dict[int, tuple[str, str]]) -> dict[str, str]:
    """The wanted values of the top level, up to the pixel data (where pydicom's
    ``stop_before_pixels`` stops). Elements out of ascending tag order or repeated (PS3.5 7.1
    forbids both; a buggy or hostile sender may do it) go to pydicom, which reads every element
    whatever its place: stopping at the first tag past the wanted ones would miss a wanted
    element that comes after it."""
    raw: dict[int, tuple[str, bytes]] = {}
    end = len(data)
    head = _IMPLICIT.unpack_from if implicit else _EXPLICIT.unpack_from
    u32 = _U32.unpack_from
    previous = -1
    while pos + 8 <= end:
        if implicit:
            group, element, length = head(data, pos)
            vr_bytes = b""
        else:
            group, element, vr_bytes, length = head(data, pos)
        tag = group << 16 | element
        if tag <= previous:
            raise _Unsupported("elements out of order")
        if tag in PIXELS:
            break
        previous = tag
        if implicit:
            pos += 8
        elif vr_bytes in _LONG_VRS:
            length = u32(data, pos + 8)[0]
            pos += 12
        elif vr_bytes.isalpha() and vr_bytes.isupper():
            pos += 8
        else:
            raise _Unsupported("bad VR")
        vr = _VR_TEXT.get(vr_bytes) or vr_bytes.decode("ascii")  # implicit VR: ""
        if length == UNDEFINED:
            if tag in tags or (vr not in ("", "SQ", "UN")):
                raise _Unsupported("undefined length")
            pos = _skip_items(data, pos, implicit, 1)
            continue
        if pos + length > end:
            raise _Unsupported("truncated")
        if tag in tags:
            keyword, dict_vr = tags[tag]
            use = dict_vr if vr in ("", "UN") else vr
            raw[tag] = (use, data[pos:pos + length])
        pos += length
    charset = raw.get(0x00080005)
    encodings = _encodings(charset[1]) if charset and charset[1].strip(b" \x00") \
        else (default_encoding,)
    return {tags[tag][0]: _convert(vr, value, encodings) for tag, (vr, value) in raw.items()}


def _skip_items(data: bytes, pos: int, implicit: bool, depth: int) -> int:
    """Past the sequence delimiter of an undefined-length sequence starting at ``pos``."""
    if depth > MAX_DEPTH:
        raise _Unsupported("nested too deep")
    end = len(data)
    while pos + 8 <= end:
        group, element = _TAG.unpack_from(data, pos)
        tag = group << 16 | element
        length = _U32.unpack_from(data, pos + 4)[0]
        pos += 8
        if tag == SEQ_END:
            return pos
        if tag != ITEM:
            raise _Unsupported("expected an item")
        if length == UNDEFINED:
            pos = _skip_elements(data, pos, implicit, depth + 1)
        else:
            pos += length
    raise _Unsupported("truncated sequence")


def _skip_elements(data: bytes, pos: int, implicit: bool, depth: int) -> int:
    """Past the item delimiter of an undefined-length item starting at ``pos``."""
    end = len(data)
    while pos + 8 <= end:
        group, element = _TAG.unpack_from(data, pos)
        tag = group << 16 | element
        if tag == ITEM_END:
            return pos + 8
        if implicit:
            vr = b""
            length = _U32.unpack_from(data, pos + 4)[0]
            pos += 8
        else:
            vr = data[pos + 4:pos + 6]
            if vr in _LONG_VRS:
                length = _U32.unpack_from(data, pos + 8)[0]
                pos += 12
            elif vr.isalpha() and vr.isupper():
                length = _U16.unpack_from(data, pos + 6)[0]
                pos += 8
            else:
                raise _Unsupported("bad VR")
        if length == UNDEFINED:
            pos = _skip_items(data, pos, implicit, depth + 1)
        else:
            pos += length
    raise _Unsupported("truncated item")
