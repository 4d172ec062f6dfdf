"""WADO-RS (PS3.18 10.4): studies, series and instances as multipart/related;
type="application/dicom" and their /metadata as DICOM JSON (Pixel Data and large binary
values as BulkDataURIs, see bulkdata.py). Frames, bulk data and rendered images live in
frames.py, bulkdata.py and rendered.py; they all find and read instances through
``instances.locate``/``instances.read``.

An instance not in the cache tier makes the answer 503 with Retry-After after a recall is
requested (instances.py) — never a partial or empty 200.
Transfer syntaxes: ``transfer-syntax=*`` or none: as stored (byte for byte); a specific one
that differs from a stored instance's: converted (dicomvault.transcode), 406 when impossible.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response, StreamingResponse

from dicom_gateway import metrics
from dicom_gateway.dicomweb import DicomWeb, bulkdata, dicomjson
from dicom_gateway.dicomweb.instances import Unavailable, instance_url, locate, read
from dicom_gateway.dicomweb.multipart import (
    MediaType,
    accept_list,
    closing,
    new_boundary,
    part_header,
)
from dicomvault.store import StoreError
from dicomvault.transcode import TranscodeError, stored_syntax, transcode

log = logging.getLogger(__name__)

DICOM = "application/dicom"
def negotiate(accept: list[MediaType], stored: set[str]) -> str:
    """The transfer syntax to send (``*``: as stored), or 406: the stored one when accepted,
    else the first one asked for that the archive can write (dicomvault.transcode)."""
    wanted: list[str] = []
    for m in accept:
        if m.type in ("*/*", "multipart/*"):
            return "*"
        if m.type != "multipart/related":
            continue
        if m.params.get("type", DICOM).lower() not in (DICOM, "application/*", "*/*"):
            continue
        ts = m.params.get("transfer-syntax", "*")
        if ts == "*" or stored == {ts}:
            return "*"
        wanted.append(ts)
    if wanted:
        return wanted[0]
    raise HTTPException(406, 'this server returns multipart/related; type="application/dicom"; '
                             "ask for transfer-syntax=* (as stored: " + ", ".join(sorted(stored))
                             + ") or a transfer syntax to convert to")


async def converted(data: bytes, target: str) -> bytes:
    """``data`` in ``target`` (``*``: as stored); 406 when it cannot be converted."""
    if target == "*":
        return data
    try:
        out = await asyncio.to_thread(transcode, data, target)
    except TranscodeError as exc:
        metrics.TRANSCODES.labels("dicomweb", "failed").inc()
        raise HTTPException(406, f"cannot send an instance stored as {stored_syntax(data)} in "
                                 f"{target}: {exc}") from exc
    if out is not data:
        metrics.TRANSCODES.labels("dicomweb", "converted").inc()
    return out


async def retrieve(dw: DicomWeb, request: Request, study: str, series: str = "",
                   sop: str = "") -> Response:
    try:
        found = await locate(dw, study, series, sop)
    except Unavailable as exc:
        return exc.response
    target = negotiate(accept_list(request.headers.get("accept")),
                       {loc.transfer_syntax_uid for loc in found})
    boundary = new_boundary()
    # The first instance is converted before the answer starts: a 406 is still possible.
    first = None
    if target != "*" and any(loc.transfer_syntax_uid != target for loc in found):
        try:
            first = await converted(await read(dw, found[0]), target)
        except Unavailable as exc:
            return exc.response

    async def body() -> AsyncIterator[bytes]:
        for n, loc in enumerate(found):
            if n == 0 and first is not None:
                data = first
            else:
                try:
                    data = await asyncio.to_thread(dw.store.get, loc.storage_key)
                except StoreError as exc:  # removed meanwhile: cut the stream, never fake it
                    log.error("cache file vanished during a retrieve",
                              extra={"key": loc.storage_key, "error": str(exc)})
                    raise
                data = await converted(data, target)  # a failure here cuts the stream
            ts = loc.transfer_syntax_uid if target == "*" else target
            yield part_header(boundary, f"{DICOM}; transfer-syntax={ts}")
            yield data
            yield b"\r\n"
        yield closing(boundary)

    return StreamingResponse(
        body(), media_type=f'multipart/related; type="{DICOM}"; boundary={boundary}')


async def metadata(dw: DicomWeb, request: Request, study: str, series: str = "",
                   sop: str = "") -> Response:
    accept = accept_list(request.headers.get("accept"))
    if not any(m.type in ("*/*", "application/*", dicomjson.MEDIA_TYPE, "application/json")
               for m in accept):
        raise HTTPException(406, f"metadata is available as {dicomjson.MEDIA_TYPE} only")
    try:
        found = await locate(dw, study, series, sop)
        out = []
        for loc in found:
            data = await read(dw, loc)
            out.append(await asyncio.to_thread(
                bulkdata.metadata, data, loc.transfer_syntax_uid, instance_url(dw, request, loc),
                dw.settings.dicomweb.bulkdata_threshold_bytes))
    except Unavailable as exc:
        return exc.response
    return Response(json.dumps(out).encode(), media_type=dicomjson.MEDIA_TYPE)


def routes(router: APIRouter, dw: DicomWeb, deps: list) -> None:
    @router.get("/studies/{study}", dependencies=deps)
    async def get_study(study: str, request: Request) -> Response:
        return await retrieve(dw, request, study)

    @router.get("/studies/{study}/metadata", dependencies=deps)
    async def get_study_metadata(study: str, request: Request) -> Response:
        return await metadata(dw, request, study)

    @router.get("/studies/{study}/series/{series}", dependencies=deps)
    async def get_series(study: str, series: str, request: Request) -> Response:
        return await retrieve(dw, request, study, series)

    @router.get("/studies/{study}/series/{series}/metadata", dependencies=deps)
    async def get_series_metadata(study: str, series: str, request: Request) -> Response:
        return await metadata(dw, request, study, series)

    @router.get("/studies/{study}/series/{series}/instances/{sop}", dependencies=deps)
    async def get_instance(study: str, series: str, sop: str, request: Request) -> Response:
        return await retrieve(dw, request, study, series, sop)

    @router.get("/studies/{study}/series/{series}/instances/{sop}/metadata", dependencies=deps)
    async def get_instance_metadata(study: str, series: str, sop: str,
                                    request: Request) -> Response:
        return await metadata(dw, request, study, series, sop)
