"""Request-size limits of the gateway's HTTP port, answered in words (RFC 6585, RFC 9110).

A request line longer than ``max_url_bytes`` gets 414 URI Too Long and a header section larger
than ``max_header_bytes`` 431 Request Header Fields Too Large, each with a JSON reason, before
any route (or token check) runs; without this, a huge URL or header is accepted or the
connection closed, depending on the HTTP parser.
"""

from __future__ import annotations

import json
from typing import Any

Scope = dict[str, Any]


class RequestLimits:
    """Pure ASGI middleware: 414 / 431 for oversized request lines and headers."""

    def __init__(self, app: Any, max_url_bytes: int, max_header_bytes: int) -> None:
        self.app = app
        self.max_url = max_url_bytes
        self.max_headers = max_header_bytes

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            url = len(scope.get("raw_path") or b"") + len(scope.get("query_string") or b"")
            headers = sum(len(k) + len(v) + 4 for k, v in scope.get("headers") or ())
            if url > self.max_url:
                return await _refuse(send, 414, f"the URL is longer than {self.max_url} bytes")
            if headers > self.max_headers:
                return await _refuse(send, 431, "the request headers are larger than "
                                                f"{self.max_headers} bytes")
        await self.app(scope, receive, send)


async def _refuse(send: Any, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})
