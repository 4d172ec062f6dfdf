"""Reading what the gateway needs from a Part 10 file without decoding the whole object.

``check_framing`` walks the dataset's element framing (tags and lengths, items and
delimiters) without reading values, so a truncated object is refused even when the cut is
inside the pixel data; it also refuses unknown VRs, sequences nested deeper than
``MAX_DEPTH`` and (``TooLarge``) a deflated dataset that inflates beyond its ceiling — the
stream is inflated in chunks and counted before anything is kept, so a decompression bomb
costs CPU, not memory. ``read_header`` then reads only the tags InstanceStored needs, with
pydicom, stopping before the pixels. Every refusal is a one-line reason (``Malformed``).
"""

from __future__ import annotations

import struct
import zlib
from io import BytesIO

from google.protobuf.timestamp_pb2 import Timestamp
from pydicom import dcmread
from pydicom.errors import InvalidDicomError
from pydicom.multival import MultiValue

from dicom_gateway import header, vrs
from dicomvault.dicom import INSTANCE_STORED_TEXT
from dicomvault.events.v1 import events_pb2 as ev

IMPLICIT_LE = "1.2.840.10008.1.2"
EXPLICIT_BE = "1.2.840.10008.1.2.2"
DEFLATED = ("1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.8.1")  # deflated LE, deflated image
_LONG_VRS, _SHORT_VRS = vrs.LONG, vrs.SHORT
MAX_DEPTH = 32  # nested sequences deeper than this are refused (real objects use a handful)
INFLATE_RATIO = 200  # default ceiling of a deflated dataset: 200x its received size
_CHUNK = 1 << 20
UNDEFINED = 0xFFFFFFFF
ITEM, ITEM_END, SEQ_END = (0xFFFE, 0xE000), (0xFFFE, 0xE00D), (0xFFFE, 0xE0DD)

HEADER_TAGS = [*INSTANCE_STORED_TEXT, "NumberOfFrames"]
_HEADER = header.wanted(HEADER_TAGS)


class Malformed(ValueError):
    """The dataset cannot be parsed: truncated, bad framing, undecodable. Its text is one
    line without backslashes (it becomes an LO Error Comment, where ``\\`` separates
    values)."""

    def __init__(self, reason: str) -> None:
        super().__init__(" ".join(reason.replace("\\", "/").split())[:300])


def _shown(vr: bytes) -> str:
    """A VR as text for a reason: its letters, or hex when they are not printable."""
    return vr.decode("latin-1") if vr.isalpha() else f"0x{vr.hex()}"


class TooLarge(Malformed):
    """A deflated dataset inflates beyond its ceiling (a decompression bomb): 0xA700."""


def inflate_ceiling(received: int, max_inflated_bytes: int) -> int:
    """The most a deflated dataset of ``received`` bytes may inflate to."""
    return min(max_inflated_bytes, INFLATE_RATIO * max(received, 1))


def check_inflated_size(deflated: bytes, ceiling: int) -> int:
    """The inflated size of a raw deflate stream, counted chunk by chunk (nothing kept);
    TooLarge past ``ceiling``, Malformed when undecodable or truncated."""
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    size, data = 0, deflated
    try:
        while True:
            size += len(inflater.decompress(data, _CHUNK))
            if size > ceiling:
                raise TooLarge(f"deflated dataset inflates beyond {ceiling} bytes "
                               f"({len(deflated)} bytes received)")
            data = inflater.unconsumed_tail
            if inflater.eof or not data:
                break
        size += len(inflater.flush())
    except zlib.error as exc:
        raise Malformed(f"undecodable deflate stream: {exc}") from exc
    if not inflater.eof:
        raise Malformed("deflate stream is truncated")
    if size > ceiling:
        raise TooLarge(f"deflated dataset inflates beyond {ceiling} bytes")
    return size


def check_framing(dataset: bytes | memoryview, transfer_syntax: str,
                  max_inflated_bytes: int = 1 << 30) -> None:
    """Raise Malformed unless ``dataset`` (no file meta) is a sequence of complete elements;
    TooLarge when it is deflated and inflates beyond ``inflate_ceiling``."""
    if transfer_syntax in DEFLATED:
        check_inflated_size(dataset, inflate_ceiling(len(dataset), max_inflated_bytes))
        try:  # within the ceiling: inflate for the walk
            dataset = zlib.decompress(dataset, -zlib.MAX_WBITS)
        except zlib.error as exc:
            raise Malformed(f"undecodable deflate stream: {exc}") from exc
    if not dataset:
        raise Malformed("empty dataset")
    little = transfer_syntax != EXPLICIT_BE
    _Walker(dataset, little).elements(0, len(dataset), implicit=transfer_syntax == IMPLICIT_LE)


class _Walker:
    def __init__(self, data: bytes | memoryview, little: bool) -> None:
        self.data = data
        e = "<" if little else ">"
        self.tag, self.u32 = struct.Struct(e + "HH"), struct.Struct(e + "L")
        # An element's first 8 bytes in one unpack: tag, VR and 16-bit length (explicit VR),
        # or tag and 32-bit length (implicit VR).
        self.explicit, self.implicit = struct.Struct(e + "HH2sH"), struct.Struct(e + "HHL")

    def _need(self, pos: int, n: int, end: int) -> None:
        if pos + n > end:
            raise Malformed(f"truncated at byte {pos}: {n} bytes needed, {end - pos} left")

    def elements(self, pos: int, end: int, implicit: bool, until: tuple | None = None,
                 depth: int = 0) -> int:
        """Walk elements from ``pos``; stop at ``end`` or after the ``until`` delimiter."""
        if depth > MAX_DEPTH:
            raise Malformed(f"sequences nested deeper than {MAX_DEPTH} levels at byte {pos}")
        data, u32 = self.data, self.u32.unpack_from
        head = (self.implicit if implicit else self.explicit).unpack_from
        while pos < end or until is not None:
            if pos + 8 > end:
                self._need(pos, 8, end)
            if implicit:
                group, element, length = head(data, pos)
                vr = b""
            else:
                group, element, vr, length = head(data, pos)
            if until is not None and (group, element) == until:
                return pos + 8
            if group == 0xFFFE:
                raise Malformed(f"unexpected delimiter {group:04X},{element:04X} at byte {pos}")
            if implicit or vr in _SHORT_VRS:
                pos += 8
            elif vr in _LONG_VRS:
                if pos + 12 > end:
                    self._need(pos, 12, end)
                length, pos = u32(data, pos + 8)[0], pos + 12
            else:
                raise Malformed(f"unknown VR {_shown(vr)} at byte {pos}")
            if length == UNDEFINED:
                # SQ, encapsulated pixel data, or UN (whose content is implicit VR LE)
                pos = self.items(pos, end, implicit or vr == b"UN", depth + 1)
            else:
                if pos + length > end:
                    self._need(pos, length, end)
                if vr == b"SQ":  # its items may hold undefined lengths: walk them too
                    self.items(pos, pos + length, implicit, depth + 1, defined=True)
                pos += length
        if pos != end:
            raise Malformed("element runs past the end of its container")
        return pos

    def items(self, pos: int, end: int, implicit: bool, depth: int,
              defined: bool = False) -> int:
        """Walk the items of a sequence: up to its delimiter, or (``defined``) up to ``end``."""
        while not defined or pos < end:
            self._need(pos, 8, end)
            tag = self.tag.unpack_from(self.data, pos)
            length = self.u32.unpack_from(self.data, pos + 4)[0]
            pos += 8
            if tag == SEQ_END and not defined:
                return pos
            if tag != ITEM:
                raise Malformed(f"expected an item at byte {pos - 8}")
            if length == UNDEFINED:
                pos = self.elements(pos, end, implicit, until=ITEM_END, depth=depth)
            else:
                self._need(pos, length, end)
                if defined:  # an item of an SQ of defined length: a data set, walk it
                    self.elements(pos, pos + length, implicit, depth=depth)
                pos += length
        return pos


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, MultiValue | list | tuple):
        return "\\".join(_text(v) for v in value)
    return str(value).rstrip("\x00 ")


# Read as sent: IS never parsed as a number; UIDs without pydicom's ``UID`` stripping
# whitespace around them (" 1.2.3" stays invalid, as the direct reader reads it, and is
# refused by the UID check instead of being stored under "1.2.3").
_AS_SENT = {"InstanceNumber", "SeriesNumber", "SOPClassUID", "SOPInstanceUID",
            "StudyInstanceUID", "SeriesInstanceUID"}


def _raw(ds, keyword: str) -> str:
    """An ASCII-VR value exactly as sent (no conversion that could warn or fail)."""
    elem = ds.get_item(keyword)
    if elem is None or elem.value is None:
        return ""
    value = elem.value
    if isinstance(value, bytes):
        return value.decode("latin-1").rstrip("\x00 ")
    return _text(value)


def read_header(part10: bytes) -> dict[str, str | int]:
    """The InstanceStored-relevant attributes of a Part 10 object (values as text): read
    directly (``header.read``) where it can, else with pydicom; the results are the same."""
    try:
        meta, offset = split_file_meta(part10)
        fast = header.read(part10, offset, meta["TransferSyntaxUID"], _HEADER)
    except Malformed:
        fast = None  # pydicom's reader names what is wrong
    except ValueError as exc:  # a value pydicom cannot convert either
        raise Malformed(f"cannot read the header: {exc}") from exc
    if fast is None:
        return read_header_pydicom(part10)
    out: dict[str, str | int] = {k: fast.get(k, "") for k in INSTANCE_STORED_TEXT}
    frames = fast.get("NumberOfFrames", "").strip()
    out["NumberOfFrames"] = int(frames) if frames.isascii() and frames.isdigit() else 0
    out["TransferSyntaxUID"] = meta["TransferSyntaxUID"]
    return out


def read_header_pydicom(part10: bytes) -> dict[str, str | int]:
    """``read_header`` with pydicom's ``dcmread`` (objects ``header.read`` leaves to it)."""
    try:
        ds = dcmread(BytesIO(part10), stop_before_pixels=True, specific_tags=HEADER_TAGS)
        out: dict[str, str | int] = {k: _raw(ds, k) if k in _AS_SENT else _text(ds.get(k))
                                     for k in INSTANCE_STORED_TEXT}
        frames = _raw(ds, "NumberOfFrames").strip()
        out["NumberOfFrames"] = int(frames) if frames.isascii() and frames.isdigit() else 0
        out["TransferSyntaxUID"] = str(ds.file_meta.get("TransferSyntaxUID", ""))
    except (InvalidDicomError, EOFError, ValueError, KeyError, TypeError, OverflowError,
            struct.error, zlib.error, UnicodeDecodeError, LookupError, NotImplementedError,
            RecursionError, AttributeError) as exc:
        raise Malformed(f"cannot read the header: {type(exc).__name__}: "
                        f"{str(exc)[:200]}") from exc
    return out


def instance_stored(header: dict[str, str | int], *, size: int, sha256: str, key: str,
                    calling_ae: str, called_ae: str, source: str, received: float,
                    tier: str = "cache") -> ev.InstanceStored:
    """The InstanceStored fact for one stored object."""
    msg = ev.InstanceStored(
        **{field: str(header.get(kw, "")) for kw, field in INSTANCE_STORED_TEXT.items()},
        transfer_syntax_uid=str(header.get("TransferSyntaxUID", "")),
        number_of_frames=int(header.get("NumberOfFrames", 0) or 0),
        size_bytes=size, sha256=sha256, storage_key=key, calling_ae=calling_ae,
        called_ae=called_ae, source=source, tier=tier,
        received_time=Timestamp(seconds=int(received), nanos=int((received % 1) * 1e9)),
    )
    return msg


def split_file_meta(part10: bytes) -> tuple[dict[str, str], int]:
    """The file meta (group 0002, explicit VR little endian) of a Part 10 file, as text by
    keyword, and the byte offset where the dataset starts. Raise Malformed when there is no
    preamble + ``DICM`` prefix or the meta group is cut or lacks a Transfer Syntax UID."""
    if len(part10) < 132 or part10[128:132] != b"DICM":
        raise Malformed("not a DICOM Part 10 file (no 128-byte preamble and DICM prefix)")
    names = {0x0002: "MediaStorageSOPClassUID", 0x0003: "MediaStorageSOPInstanceUID",
             0x0010: "TransferSyntaxUID"}
    meta: dict[str, str] = {}
    pos, end = 132, len(part10)
    while pos + 8 <= end:
        group, element = struct.unpack_from("<HH", part10, pos)
        if group != 0x0002:
            break
        vr = part10[pos + 4:pos + 6]
        if vr in _LONG_VRS:
            if pos + 12 > end:
                raise Malformed("file meta information is truncated")
            length, start = struct.unpack_from("<L", part10, pos + 8)[0], pos + 12
        elif vr.isalpha() and vr.isupper():
            length, start = struct.unpack_from("<H", part10, pos + 6)[0], pos + 8
        else:
            raise Malformed(f"bad VR {_shown(vr)} in the file meta information")
        if length == UNDEFINED or start + length > end:
            raise Malformed("file meta information is truncated")
        if element in names:
            meta[names[element]] = part10[start:start + length].decode(
                "ascii", "replace").rstrip("\x00 ")
        pos = start + length
    if not meta.get("TransferSyntaxUID"):
        raise Malformed("file meta information has no Transfer Syntax UID (0002,0010)")
    return meta, pos
