"""Upper-layer PDUs and DIMSE command sets as bytes (PS3.8 §9.3, PS3.7 §9.3 and Annex E).

Only what the storage fast path (``storage_scp``) sends and reads on an established
association: P-DATA-TF fragments, release, abort, and the C-STORE / C-ECHO command sets.
A-ASSOCIATE PDUs are decoded and encoded by pynetdicom (``negotiation``). Command sets are
always Implicit VR Little Endian; they are parsed here by hand because pydicom's general
decoder costs more than the whole durable write of a small instance.
"""

from __future__ import annotations

import struct

# PDU types (PS3.8 Table 9-11)
ASSOCIATE_RQ, ASSOCIATE_AC, ASSOCIATE_RJ = 0x01, 0x02, 0x03
P_DATA_TF, RELEASE_RQ, RELEASE_RP, ABORT = 0x04, 0x05, 0x06, 0x07
HEADER = struct.Struct(">BxL")  # type, reserved, length
PDV_HEADER = struct.Struct(">LBB")  # item length, presentation context id, control header

# DIMSE command fields (PS3.7 Annex E)
C_STORE_RQ, C_STORE_RSP = 0x0001, 0x8001
C_ECHO_RQ, C_ECHO_RSP = 0x0030, 0x8030
NO_DATASET = 0x0101

# Command set tags (group 0000), as (element) numbers
AFFECTED_SOP_CLASS = 0x0002
COMMAND_FIELD = 0x0100
MESSAGE_ID = 0x0110
MESSAGE_ID_RESPONDED = 0x0120
PRIORITY = 0x0700
DATASET_TYPE = 0x0800
STATUS = 0x0900
ERROR_COMMENT = 0x0902
AFFECTED_SOP_INSTANCE = 0x1000
MOVE_ORIGINATOR_AE = 0x1030
MOVE_ORIGINATOR_ID = 0x1031

_ELEMENT = struct.Struct("<HHL")
_US = struct.Struct("<H")
_UL = struct.Struct("<L")


class ProtocolError(ValueError):
    """The peer broke the upper-layer protocol: the association is aborted."""


def release_rp() -> bytes:
    return HEADER.pack(RELEASE_RP, 4) + b"\x00\x00\x00\x00"


def abort(source: int = 0x02, reason: int = 0x00) -> bytes:
    """A-ABORT; source 0 = service user, 2 = service provider (PS3.8 §9.3.8)."""
    return HEADER.pack(ABORT, 4) + bytes((0, 0, source, reason))


def associate_rj(result: int, source: int, reason: int) -> bytes:
    return HEADER.pack(ASSOCIATE_RJ, 4) + bytes((0, result, source, reason))


def p_data(context_id: int, command: bytes) -> bytes:
    """One P-DATA-TF holding a whole command set (responses are far below any max PDU)."""
    return (HEADER.pack(P_DATA_TF, len(command) + 6)
            + PDV_HEADER.pack(len(command) + 2, context_id, 0x03) + command)


def pdvs(body: memoryview) -> list[tuple[int, int, memoryview]]:
    """(context id, control header, fragment) of every PDV item of a P-DATA-TF body."""
    out = []
    pos, end = 0, len(body)
    while pos < end:
        if end - pos < 6:
            raise ProtocolError("truncated PDV item")
        length, cx, control = PDV_HEADER.unpack_from(body, pos)
        if length < 2 or pos + 4 + length > end:
            raise ProtocolError("PDV item length outside its PDU")
        out.append((cx, control, body[pos + 6:pos + 4 + length]))
        pos += 4 + length
    return out


def parse_command(data: bytes) -> dict[int, bytes]:
    """The elements of an Implicit VR Little Endian command set, by element number."""
    out: dict[int, bytes] = {}
    pos, end = 0, len(data)
    while pos < end:
        if end - pos < 8:
            raise ProtocolError("truncated command set")
        group, element, length = _ELEMENT.unpack_from(data, pos)
        pos += 8
        if group != 0x0000 or pos + length > end:
            raise ProtocolError("malformed command set")
        out[element] = data[pos:pos + length]
        pos += length
    return out


def us(value: bytes | None) -> int | None:
    return _US.unpack(value)[0] if value is not None and len(value) == 2 else None


def text(value: bytes | None) -> str:
    """A UI/AE/LO value without its padding (NUL or space)."""
    return value.decode("ascii", "replace").rstrip("\x00 ") if value else ""


def _ui(value: str) -> bytes:
    raw = value.encode("ascii", "replace")
    return raw + b"\x00" if len(raw) % 2 else raw


def _lo(value: str) -> bytes:
    raw = value.encode("ascii", "replace")[:64]
    return raw + b" " if len(raw) % 2 else raw


def response(command_field: int, message_id: int, status: int, sop_class: str = "",
             sop_instance: str = "", comment: str = "") -> bytes:
    """A response command set without a dataset (C-STORE-RSP, C-ECHO-RSP, …)."""
    elements: list[tuple[int, bytes]] = []
    if sop_class:
        elements.append((AFFECTED_SOP_CLASS, _ui(sop_class)))
    elements += [(COMMAND_FIELD, _US.pack(command_field)),
                 (MESSAGE_ID_RESPONDED, _US.pack(message_id)),
                 (DATASET_TYPE, _US.pack(NO_DATASET)),
                 (STATUS, _US.pack(status))]
    if comment:
        elements.append((ERROR_COMMENT, _lo(comment)))
    if sop_instance:
        elements.append((AFFECTED_SOP_INSTANCE, _ui(sop_instance)))
    body = b"".join(_ELEMENT.pack(0, tag, len(v)) + v for tag, v in elements)
    return _ELEMENT.pack(0, 0, 4) + _UL.pack(len(body)) + body
