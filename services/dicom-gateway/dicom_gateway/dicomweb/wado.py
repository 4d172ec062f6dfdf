"""WADO-RS (PS3.18 10.4): studies, series and instances as multipart/related;
type="application/dicom" and their /metadata as DICOM JSON (Pixel Data and large binary
values as BulkDataURIs, see bulkdata.py). Frames, bulk data and rendered images live in
frames.py, bulkdata.py and rendered.py; they all find and read instances through
``locate``/``read`` here.

Where the instances are comes from the catalogue (``GET /api/v1/studies/{uid}/instances``);
the bytes come from the cache tier. An instance the catalogue knows only on another tier, or
whose cache file is missing, makes the answer 503 with Retry-After after publishing
RecallRequested (studies topic, keyed by the Study UID) — never a partial or empty 200.
Transfer syntaxes: ``transfer-syntax=*`` or none: as stored (byte for byte); a specific one
that differs from a stored instance's: converted (dicomvault.transcode), 406 when impossible.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response, StreamingResponse

from dicom_gateway import metrics
from dicom_gateway.dicomweb import DicomWeb, bulkdata, dicomjson
from dicom_gateway.dicomweb.multipart import (
    MediaType,
    accept_list,
    closing,
    new_boundary,
    part_header,
)
from dicom_gateway.ingest import SOURCE
from dicomvault.bus import PublishError
from dicomvault.events import Event, deterministic_id, types
from dicomvault.events.v1 import events_pb2 as ev
from dicomvault.query import (
    CatalogueRefused,
    CatalogueUnavailable,
    FindRequest,
    InstanceLocation,
    Level,
)
from dicomvault.store import InvalidUID, StoreError, validate_uid
from dicomvault.transcode import TranscodeError, stored_syntax, transcode

log = logging.getLogger(__name__)

DICOM = "application/dicom"
RECALL_TYPE = types.RECALL_REQUESTED
CACHE = "cache"


class NotInCache(Exception):
    def __init__(self, missing: list[str], tiers: list[str]) -> None:
        super().__init__(f"{len(missing)} instance(s) not in the cache tier")
        self.missing = missing
        self.tiers = tiers


def _uid(value: str, what: str) -> str:
    try:
        return validate_uid(value, what)
    except InvalidUID as exc:
        raise HTTPException(400, str(exc)) from exc


FIND_PAGE = 1000  # instances per catalogue find page when listing what a request names


async def _named_instances(dw: DicomWeb, study: str, series: str, sop: str) -> list[str]:
    """Every SOP Instance UID the catalogue records for the request, whatever tier holds it:
    after an eviction the study's instances have no cache location (and no per-instance
    location at all when the archive copy is recorded per study), but they are still there."""
    filters = {"StudyInstanceUID": study}
    if series:
        filters["SeriesInstanceUID"] = series
    if sop:
        filters["SOPInstanceUID"] = sop
    uids: list[str] = []
    while True:
        page = await dw.catalogue.find(FindRequest(
            level=Level.IMAGE, filters=filters, return_keys=["SOPInstanceUID"],
            limit=FIND_PAGE, offset=len(uids)))
        uids += [str(m.get("SOPInstanceUID") or "") for m in page.matches]
        if len(page.matches) < FIND_PAGE:
            return [u for u in uids if u]


async def _locate(dw: DicomWeb, study: str, series: str, sop: str) -> list[InstanceLocation]:
    """The cache-tier locations of the asked instances (ordered as the catalogue lists them);
    404 when unknown; NotInCache when some are only on other tiers or their file is gone."""
    _uid(study, "Study Instance UID")
    if series:
        _uid(series, "Series Instance UID")
    if sop:
        _uid(sop, "SOP Instance UID")
    try:
        rows = await dw.catalogue.study_instances(study)
        named = [] if rows is None else await _named_instances(dw, study, series, sop)
    except CatalogueUnavailable as exc:
        raise HTTPException(503, "the catalogue is unavailable; try again later",
                            headers={"Retry-After": "5"}) from exc
    except CatalogueRefused as exc:
        raise HTTPException(400, str(exc)) from exc
    if rows is None:
        raise HTTPException(404, f"study {study} is not in the archive")
    if not named:
        what = f"instance {sop}" if sop else f"series {series}"
        raise HTTPException(404, f"{what} is not in study {study}")
    wanted = set(named)
    by_sop: dict[str, list[InstanceLocation]] = {}
    for r in rows:
        if r.sop_instance_uid in wanted:
            by_sop.setdefault(r.sop_instance_uid, []).append(r)
    found: list[InstanceLocation] = []
    missing: list[str] = [u for u in named if u not in by_sop]  # no location left
    tiers: set[str] = set()
    for uid, locations in by_sop.items():
        cached = next((loc for loc in locations if loc.tier == CACHE), None)
        tiers |= {loc.tier for loc in locations if loc.tier != CACHE}
        try:
            present = cached is not None and await asyncio.to_thread(
                dw.store.exists, cached.storage_key)
        except StoreError as exc:  # the cache tier (S3, a share) does not answer: try later
            log.error("cache tier unavailable", extra={"error": str(exc)})
            raise HTTPException(503, "the cache tier is unavailable; retry later",
                                headers={"Retry-After": "10"}) from exc
        if not present:
            missing.append(uid)
        else:
            found.append(cached)
    if missing:
        raise NotInCache(missing, sorted(tiers))
    return found


async def _recall(dw: DicomWeb, study: str, exc: NotInCache) -> Response:
    """Ask for the study to be brought back to the cache tier; 503 with Retry-After."""
    retry = dw.settings.dicomweb.recall_retry_after_s
    msg = ev.RecallRequested(study_instance_uid=study, requested_by="dicomweb",
                             reason="WADO-RS retrieve of instances not in the cache tier",
                             sop_instance_uids=sorted(exc.missing))
    # One request per study, instance set and Retry-After window: clients that retry as told
    # repeat the same fact (same ce_id) rather than piling up recalls.
    window = str(int(time.time() // retry))
    event = Event(payload=msg, source=SOURCE, subject=study,
                  id=deterministic_id(RECALL_TYPE, study, *sorted(exc.missing), window))
    where = f" (held on: {', '.join(exc.tiers)})" if exc.tiers else ""
    try:
        await asyncio.wait_for(dw.publisher.publish(dw.settings.bus.topics.studies, event,
                                                    key=study), 10.0)
        text = (f"{len(exc.missing)} instance(s) of study {study} are not in the cache tier"
                f"{where}; a recall has been requested: retry after {retry} s")
        log.info("recall requested", extra={"study": study, "instances": len(exc.missing)})
    except (PublishError, TimeoutError) as err:
        log.warning("could not request a recall", extra={"study": study, "error": str(err)})
        text = (f"{len(exc.missing)} instance(s) of study {study} are not in the cache tier"
                f"{where}; the recall request could not be sent (event bus): retry later")
    return Response(text, status_code=503, media_type="text/plain",
                    headers={"Retry-After": str(retry)})


class Unavailable(Exception):
    """The instances are not (all) in the cache tier: answer ``response`` (503, recall)."""

    def __init__(self, response: Response) -> None:
        super().__init__("not in the cache tier")
        self.response = response


async def locate(dw: DicomWeb, study: str, series: str = "", sop: str = ""
                 ) -> list[InstanceLocation]:
    """The cache locations of the named instances; Unavailable after asking for a recall."""
    try:
        return await _locate(dw, study, series, sop)
    except NotInCache as exc:
        raise Unavailable(await _recall(dw, study, exc)) from exc


async def read(dw: DicomWeb, loc: InstanceLocation) -> bytes:
    """The stored bytes of one located instance; Unavailable when its file vanished."""
    try:
        return await asyncio.to_thread(dw.store.get, loc.storage_key)
    except StoreError as exc:  # removed since we looked: same as not in the cache
        raise Unavailable(await _recall(dw, loc.study_instance_uid,
                                        NotInCache([loc.sop_instance_uid], []))) from exc


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


def instance_url(dw: DicomWeb, request: Request, loc: InstanceLocation) -> str:
    return (f"{dw.base_url(request)}/studies/{loc.study_instance_uid}/series/"
            f"{loc.series_instance_uid}/instances/{loc.sop_instance_uid}")


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
