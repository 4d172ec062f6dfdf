"""The Part 10 preamble and File Meta Information group for a received dataset.

The same elements pynetdicom's ``Event.file_meta`` writes (PS3.10 §7.1), encoded directly as
Explicit VR Little Endian bytes: the storage fast path stores ``preamble + meta + dataset``
without building a pydicom Dataset for the group.
"""

from __future__ import annotations

import struct

from pynetdicom import PYNETDICOM_IMPLEMENTATION_UID, PYNETDICOM_IMPLEMENTATION_VERSION

PREAMBLE = b"\x00" * 128 + b"DICM"
_SHORT = struct.Struct("<HH2sH")  # tag, VR, 2-byte length
_LONG = struct.Struct("<HH2s2xL")  # tag, VR, reserved, 4-byte length


def _short(element: int, vr: bytes, value: bytes) -> bytes:
    return _SHORT.pack(0x0002, element, vr, len(value)) + value


def _ui(value: str) -> bytes:
    raw = value.encode("ascii")
    return raw + b"\x00" if len(raw) % 2 else raw


def _sh(value: str) -> bytes:
    raw = value.encode("ascii")
    return raw + b" " if len(raw) % 2 else raw


def encode(sop_class: str, sop_instance: str, transfer_syntax: str,
           implementation_uid: str = PYNETDICOM_IMPLEMENTATION_UID,
           implementation_version: str = PYNETDICOM_IMPLEMENTATION_VERSION) -> bytes:
    """Preamble, ``DICM`` and the file meta group; the dataset follows it unchanged."""
    body = b"".join((
        _LONG.pack(0x0002, 0x0001, b"OB", 2) + b"\x00\x01",
        _short(0x0002, b"UI", _ui(sop_class)),
        _short(0x0003, b"UI", _ui(sop_instance)),
        _short(0x0010, b"UI", _ui(transfer_syntax)),
        _short(0x0012, b"UI", _ui(implementation_uid)),
        _short(0x0013, b"SH", _sh(implementation_version)),
    ))
    group_length = _short(0x0000, b"UL", struct.pack("<L", len(body)))
    return PREAMBLE + group_length + body
