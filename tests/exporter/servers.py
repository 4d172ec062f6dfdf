"""Loopback HTTP servers for the exporter tests.

- ``Catalogue``: the real catalogue (projection, journal, REST API: the exporter reads
  ``GET /api/v1/studies/{uid}/instances``) for studies the test puts in the cache tier.
- ``StowServer``: a recording STOW-RS endpoint for what Orthanc cannot show: it keeps each
  request's headers and parts, counts requests in flight, checks credentials and answers
  with scripted statuses, FailedSOPSequence or warnings.
Both run in the test's event loop under uvicorn (optionally with TLS).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
import uvicorn

from dicomvault.bus.broker import free_port
from dicomvault.store import FileStore
from tests.optical.catalogue_inprocess import InProcessCatalogue
from tests.peers.datasets import Study


@contextlib.asynccontextmanager
async def serve(app, *, certfile: Path | None = None) -> AsyncIterator[int]:
    """Run an ASGI app on a free loopback port (https with ``certfile``); yield the port."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None,
                            access_log=False, lifespan="off",
                            ssl_certfile=str(certfile) if certfile else None,
                            ssl_keyfile=str(certfile) if certfile else None,
                            timeout_graceful_shutdown=1)
    server = uvicorn.Server(config)
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign]
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    try:
        yield port
    finally:
        server.should_exit = True
        await task


async def _read_body(receive) -> bytes:
    chunks = []
    while True:
        msg = await receive()
        chunks.append(msg.get("body", b""))
        if not msg.get("more_body"):
            return b"".join(chunks)


async def _respond(send, status: int, body: bytes = b"",
                   content_type: str = "application/json") -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", content_type.encode()),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class Catalogue:
    """The real catalogue's ASGI app on the test's own catalogue database: before each
    request it applies, through the catalogue's own Policy, the facts recorded since."""

    def __init__(self, folder: Path, cache: FileStore) -> None:
        self.real = InProcessCatalogue(folder)
        self.cache = cache

    def add(self, study: Study) -> str:
        """Put a generated study into the cache tier as the gateway does (files, then
        InstanceStored facts for the catalogue); the study UID."""
        self.real.ingest(study, self.cache)
        return study.study_uid

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            await self.real.flush()
        await self.real.app(scope, receive, send)


def _ds_json(referenced: list[tuple[str, str, int | None]],
             failed: list[tuple[str, str, int]]) -> bytes:
    """A STOW-RS response dataset in DICOM JSON."""
    def item(cls: str, uid: str) -> dict:
        return {"00081150": {"vr": "UI", "Value": [cls]}, "00081155": {"vr": "UI", "Value": [uid]}}

    out: dict = {}
    if referenced:
        items = []
        for cls, uid, warning in referenced:
            it = item(cls, uid)
            if warning is not None:
                it["00081196"] = {"vr": "US", "Value": [warning]}
            items.append(it)
        out["00081199"] = {"vr": "SQ", "Value": items}
    if failed:
        out["00081198"] = {"vr": "SQ", "Value": [
            {**item(cls, uid), "00081197": {"vr": "US", "Value": [code]}}
            for cls, uid, code in failed]}
    return json.dumps(out).encode()


@dataclass
class Received:
    headers: dict[str, str]
    parts: list[bytes]

    def datasets(self) -> list[pydicom.Dataset]:
        return [pydicom.dcmread(io.BytesIO(p)) for p in self.parts]


@dataclass
class StowServer:
    """A scripted STOW-RS server. Every field may be changed by the test between exports."""

    bearer: str | None = None            # required "Authorization: Bearer <token>"
    basic: str | None = None             # required "Authorization: Basic <b64>"
    statuses: deque[int] = field(default_factory=deque)  # scripted statuses, then 200
    fail: dict[str, int] = field(default_factory=dict)   # sop uid -> FailureReason (409/202)
    warn: dict[str, int] = field(default_factory=dict)   # sop uid -> WarningReason
    hold_until_in_flight: int = 0        # hold each request until this many are in flight
    hang_s: float = 0.0                  # answer this late (timeouts)
    requests: list[Received] = field(default_factory=list)
    refused: list[dict[str, str]] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0

    def __post_init__(self) -> None:
        self._changed = asyncio.Condition()

    def stored_uids(self) -> list[str]:
        return [ds.SOPInstanceUID for r in self.requests for ds in r.datasets()]

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        async with self._changed:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            self._changed.notify_all()
        try:
            body = await _read_body(receive)
            if self.hold_until_in_flight:
                async with self._changed:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._changed.wait_for(
                            lambda: self.in_flight >= self.hold_until_in_flight), timeout=5)
            if self.hang_s:
                await asyncio.sleep(self.hang_s)
            await self._answer(scope, headers, body, send)
        finally:
            async with self._changed:
                self.in_flight -= 1
                self._changed.notify_all()

    async def _answer(self, scope, headers: dict[str, str], body: bytes, send) -> None:
        auth = headers.get("authorization", "")
        if (self.bearer and auth != f"Bearer {self.bearer}") or (
                self.basic and auth != f"Basic {self.basic}"):
            self.refused.append(headers)
            return await _respond(send, 401, b'{"detail": "unauthorized"}')
        if scope["method"] != "POST" or not scope["path"].endswith("/studies"):
            return await _respond(send, 404, b"{}")
        if self.statuses:
            status = self.statuses.popleft()
            if status != 200:
                self.refused.append(headers)
                return await _respond(send, status, b'{"detail": "scripted"}')
        ctype = headers.get("content-type", "")
        boundary = ctype.split("boundary=")[1].split(";")[0].strip('"')
        parts = []
        for chunk in body.split(f"--{boundary}".encode())[1:]:
            if chunk.startswith(b"--"):
                break
            _head, _, payload = chunk.partition(b"\r\n\r\n")
            parts.append(payload[:-2] if payload.endswith(b"\r\n") else payload)
        received = Received(headers, parts)
        referenced, failed = [], []
        for ds in received.datasets():
            uid, cls = ds.SOPInstanceUID, ds.SOPClassUID
            if uid in self.fail:
                failed.append((cls, uid, self.fail[uid]))
            else:
                referenced.append((cls, uid, self.warn.get(uid)))
        self.requests.append(Received(headers, [p for p, ds in zip(
            parts, received.datasets(), strict=True) if ds.SOPInstanceUID not in self.fail]))
        status = 200
        if failed:
            status = 409 if not referenced else 202
        elif any(w is not None for *_, w in referenced):
            status = 202
        await _respond(send, status, _ds_json(referenced, failed), "application/dicom+json")
