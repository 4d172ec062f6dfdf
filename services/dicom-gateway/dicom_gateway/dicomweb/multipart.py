"""multipart/related (RFC 2387) for DICOMweb: media-type parsing, body splitting, writing.

Parsing is strict about what matters (a boundary, every part closed by a delimiter, a
closing delimiter at the end) and lenient about what does not (a preamble, transport padding
after a delimiter, header-name case, LF-only line ends inside part headers).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field


class BadMultipart(ValueError):
    """The body is not a well-formed multipart/related message (400)."""


@dataclass(frozen=True)
class MediaType:
    type: str  # lower case, e.g. "multipart/related"
    params: dict[str, str] = field(default_factory=dict)  # names lower case, values unquoted

    def __str__(self) -> str:
        return self.type + "".join(f'; {k}="{v}"' if k == "type" else f"; {k}={v}"
                                   for k, v in self.params.items())


def _split(text: str, sep: str) -> list[str]:
    """Split on ``sep`` outside double quotes."""
    out, cur, quoted = [], [], False
    for ch in text:
        if ch == '"':
            quoted = not quoted
        if ch == sep and not quoted:
            out.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    out.append("".join(cur))
    return out


def media_type(text: str) -> MediaType:
    """One media type with its parameters: ``multipart/related; type="application/dicom"``."""
    head, *params = _split(text or "", ";")
    out: dict[str, str] = {}
    for p in params:
        name, _, value = p.strip().partition("=")
        if name.strip():
            out[name.strip().lower()] = value.strip().strip('"')
    return MediaType(head.strip().lower(), out)


def accept_list(text: str | None) -> list[MediaType]:
    """The media ranges of an Accept header, in the client's order of preference (q sorted)."""
    if not text or not text.strip():
        return [MediaType("*/*")]
    ranges = [media_type(part) for part in _split(text, ",") if part.strip()]

    def q(m: MediaType) -> float:
        try:
            return float(m.params.get("q", "1"))
        except ValueError:
            return 0.0

    return sorted((m for m in ranges if q(m) > 0), key=q, reverse=True)


@dataclass(frozen=True)
class Part:
    headers: dict[str, str]  # names lower case
    content: bytes

    @property
    def content_type(self) -> MediaType | None:
        value = self.headers.get("content-type")
        return media_type(value) if value else None


def split(body: bytes, boundary: str) -> list[Part]:
    """The parts of a multipart body; BadMultipart when it is not well formed."""
    if not boundary:
        raise BadMultipart("the Content-Type has no boundary parameter")
    if len(boundary) > 200:
        raise BadMultipart("the boundary is longer than 200 characters")
    dash = b"--" + boundary.encode("latin-1")
    delim = b"\r\n" + dash
    if body.startswith(dash):
        pos = len(dash)
    else:
        first = body.find(delim)
        if first < 0:
            raise BadMultipart("the body holds no part: boundary delimiter not found")
        pos = first + len(delim)
    parts: list[Part] = []
    while True:
        if body.startswith(b"--", pos):  # the closing delimiter
            if not parts:
                raise BadMultipart("the body holds no part")
            return parts
        eol = body.find(b"\n", pos)
        if eol < 0 or body[pos:eol].strip(b" \t\r"):
            raise BadMultipart("the body is truncated or a boundary delimiter is malformed")
        start = eol + 1
        end = body.find(delim, start)
        if end < 0:
            raise BadMultipart(f"part {len(parts) + 1} is not closed by a boundary delimiter "
                               "(truncated body?)")
        parts.append(_part(body[start:end], len(parts) + 1))
        pos = end + len(delim)


def _part(raw: bytes, number: int) -> Part:
    if raw.startswith(b"\r\n"):
        return Part({}, raw[2:])
    for sep in (b"\r\n\r\n", b"\n\n"):
        cut = raw.find(sep)
        if cut >= 0:
            break
    else:
        raise BadMultipart(f"part {number} has no blank line after its headers")
    headers: dict[str, str] = {}
    for line in raw[:cut].replace(b"\r\n", b"\n").split(b"\n"):
        name, colon, value = line.partition(b":")
        if not colon or not name.strip():
            raise BadMultipart(f"part {number} has a malformed header line")
        headers[name.strip().decode("latin-1").lower()] = value.strip().decode("latin-1")
    return Part(headers, raw[cut + len(sep):])


def new_boundary() -> str:
    return "dicomvault-" + secrets.token_hex(16)


def part_header(boundary: str, content_type: str, extra: dict[str, str] | None = None) -> bytes:
    lines = [f"--{boundary}", f"Content-Type: {content_type}"]
    lines += [f"{k}: {v}" for k, v in (extra or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def closing(boundary: str) -> bytes:
    return f"--{boundary}--\r\n".encode("latin-1")
