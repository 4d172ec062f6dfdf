"""STOW-RS (PS3.18 10.5): POST /studies and /studies/{study}, multipart/related;
type="application/dicom". Every part is a Part 10 file that goes through the same Ingest as
a C-STORE; the answer is a DICOM JSON Store Instances Response Module.

HTTP status: 200 every instance stored; 202 some stored, some failed; 409 none stored;
503 (Retry-After) none stored because of resources only (disk, free-space watermark, event
bus); 400 a body that is not well-formed multipart; 413 a body above
``dicomweb.max_request_bytes``, or no part stored because each refused one was a deflated
dataset inflating beyond ``gateway.max_inflated_bytes`` (a decompression bomb); 415 a media
type other than multipart/related; type="application/dicom". A client that disconnects
mid-upload is one INFO line. The Warning header carries the reasons as ASCII.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response
from pydicom.dataset import Dataset
from pynetdicom import AllStoragePresentationContexts
from starlette.requests import ClientDisconnect

from dicom_gateway import statuses as st
from dicom_gateway.dicomweb import DicomWeb, dicomjson
from dicom_gateway.dicomweb.multipart import BadMultipart, media_type, split
from dicom_gateway.ingest import Outcome, Part10Request
from dicom_gateway.listener import TRANSFER_SYNTAXES
from dicom_gateway.part10 import (
    DEFLATED,
    Malformed,
    TooLarge,
    check_inflated_size,
    inflate_ceiling,
    split_file_meta,
)
from dicomvault.store import InvalidUID, validate_uid

log = logging.getLogger(__name__)

DICOM = "application/dicom"
STORAGE_CLASSES = frozenset(cx.abstract_syntax for cx in AllStoragePresentationContexts)
SOP_CLASS_NOT_SUPPORTED = 0x0122  # Referenced SOP Class not supported
TRANSFER_SYNTAX_NOT_SUPPORTED = 0xC122  # Referenced Transfer Syntax not supported
RESOURCE_FAILURES = {st.OUT_OF_RESOURCES, st.BUS_UNAVAILABLE}
PARALLEL_PARTS = 8  # parts of one request written at once


@dataclass
class Result:
    sop_class: str
    sop_instance: str
    study: str
    series: str
    outcome: Outcome
    too_large: bool = False  # a decompression bomb (0xA700, HTTP 413 when nothing stored)


def _uid_or_empty(value: str) -> str:
    try:
        return validate_uid(value, "UID")
    except InvalidUID:
        return ""


def routes(router: APIRouter, dw: DicomWeb, deps: list) -> None:
    @router.post("/studies", dependencies=deps)
    async def store(request: Request) -> Response:
        return await stow(dw, request, "")

    @router.post("/studies/{study}", dependencies=deps)
    async def store_in_study(study: str, request: Request) -> Response:
        try:
            validate_uid(study, "Study Instance UID")
        except InvalidUID as exc:
            raise HTTPException(400, str(exc)) from exc
        return await stow(dw, request, study)


async def _body(dw: DicomWeb, request: Request) -> bytes:
    limit = dw.settings.dicomweb.max_request_bytes
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"the request body is larger than {limit} bytes")
    chunks, size = [], 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise HTTPException(413, f"the request body is larger than {limit} bytes")
            chunks.append(chunk)
    except ClientDisconnect:
        log.info("STOW-RS client disconnected mid-upload; nothing stored",
                 extra={"received_bytes": size})
        raise HTTPException(400, "the client disconnected before the body was complete") \
            from None
    return b"".join(chunks)


def _check_media_type(request: Request) -> str:
    """The boundary of a multipart/related; type="application/dicom" request, or 415/400."""
    ct = media_type(request.headers.get("content-type", ""))
    if ct.type != "multipart/related":
        raise HTTPException(415, 'STOW-RS takes multipart/related; type="application/dicom" '
                                 f"(got {ct.type or 'no Content-Type'})")
    root = ct.params.get("type", DICOM).lower()
    if root != DICOM:
        raise HTTPException(415, f"parts of type {root} are not supported: send Part 10 "
                                 'objects as multipart/related; type="application/dicom"')
    boundary = ct.params.get("boundary", "")
    if not boundary:
        raise HTTPException(400, "the Content-Type has no boundary parameter")
    return boundary


async def stow(dw: DicomWeb, request: Request, study: str) -> Response:
    boundary = _check_media_type(request)
    body = await _body(dw, request)
    try:
        parts = split(body, boundary)
    except BadMultipart as exc:
        raise HTTPException(400, f"malformed multipart body: {exc}") from exc
    del body
    for n, part in enumerate(parts, 1):
        ptype = part.content_type
        if ptype is not None and ptype.type != DICOM:
            raise HTTPException(415, f"part {n} is {ptype.type}; only {DICOM} is supported")
    received = time.time()
    # Parts are written and announced concurrently (their events pipelined to the broker),
    # a few at a time; the answer lists them in request order.
    slots = asyncio.Semaphore(PARALLEL_PARTS)

    principal = getattr(request.state, "principal", None)
    client = request.client
    who = (f"{client.host}:{client.port}" if client else "",
           getattr(principal, "subject", "") or "", uuid.uuid4().hex)

    async def one(part) -> Result:
        async with slots:
            return await _store_one(dw, part.content, study, received, who)

    results = await asyncio.gather(*(one(part) for part in parts))
    return _answer(dw, request, study, list(results))


async def _store_one(dw: DicomWeb, part10: bytes, study: str, received: float,
                     who: tuple[str, str, str] = ("", "", "")) -> Result:
    try:
        meta, offset = split_file_meta(part10)
    except Malformed as exc:
        return Result("", "", "", "", Outcome(st.CANNOT_UNDERSTAND, str(exc)))
    sop_class = _uid_or_empty(meta.get("MediaStorageSOPClassUID", ""))
    sop = _uid_or_empty(meta.get("MediaStorageSOPInstanceUID", ""))
    if sop_class and sop_class not in STORAGE_CLASSES:
        return Result(sop_class, sop, "", "", Outcome(
            SOP_CLASS_NOT_SUPPORTED, f"SOP Class {sop_class} is not a supported storage class"))
    ts = meta["TransferSyntaxUID"]
    if ts not in TRANSFER_SYNTAXES:
        return Result(sop_class, sop, "", "", Outcome(
            TRANSFER_SYNTAX_NOT_SUPPORTED, f"transfer syntax {ts} is not supported"))
    if ts in DEFLATED:  # refuse a bomb before the Ingest inflates anything
        ceiling = inflate_ceiling(len(part10) - offset, dw.settings.gateway.max_inflated_bytes)
        try:
            await asyncio.to_thread(check_inflated_size, part10[offset:], ceiling)
        except TooLarge as exc:
            return Result(sop_class, sop, "", "", Outcome(st.OUT_OF_RESOURCES, str(exc)), True)
        except Malformed as exc:
            return Result(sop_class, sop, "", "", Outcome(st.CANNOT_UNDERSTAND, str(exc)))
    rq = Part10Request(part10=part10, source="dicomweb", calling_ae="",
                       called_ae=dw.settings.gateway.ae_title, received=received,
                       study_instance_uid=study, peer_address=who[0], user_id=who[1],
                       association_id=who[2])
    outcome = await dw.ingest.handle_part10_async(rq)
    return Result(sop_class, sop, outcome.study_instance_uid, outcome.series_instance_uid,
                  outcome)


def _answer(dw: DicomWeb, request: Request, study: str, results: list[Result]) -> Response:
    base = dw.base_url(request)
    stored = [r for r in results if r.outcome.status == st.SUCCESS]
    failed = [r for r in results if r.outcome.status != st.SUCCESS]
    ds = Dataset()
    studies = {r.study for r in stored}
    if study or len(studies) == 1:
        ds.RetrieveURL = f"{base}/studies/{study or studies.pop()}"
    if stored:
        items = []
        for r in stored:
            item = Dataset()
            item.ReferencedSOPClassUID = r.sop_class
            item.ReferencedSOPInstanceUID = r.sop_instance
            item.RetrieveURL = (f"{base}/studies/{r.study}/series/{r.series}"
                                f"/instances/{r.sop_instance}")
            items.append(item)
        ds.ReferencedSOPSequence = items
    if failed:
        items = []
        for r in failed:
            item = Dataset()
            item.ReferencedSOPClassUID = r.sop_class
            item.ReferencedSOPInstanceUID = r.sop_instance
            item.FailureReason = r.outcome.status
            items.append(item)
            log.info("STOW-RS part refused", extra={
                "status": st.label(r.outcome.status), "reason": r.outcome.comment[:300]})
        ds.FailedSOPSequence = items
    headers: dict[str, str] = {}
    if not failed:
        code = 200
    elif stored:
        code = 202
    elif all(r.too_large for r in failed):
        code = 413
    elif all(r.outcome.status in RESOURCE_FAILURES for r in failed):
        code = 503
        headers["Retry-After"] = "10"
    else:
        code = 409
    if failed:  # the reasons in words, for people reading the answer (RFC 7234 Warning)
        reasons = "; ".join(dict.fromkeys(r.outcome.comment for r in failed if r.outcome.comment))
        headers["Warning"] = f'299 {base}: "{_quote(reasons)[:900]}"'
    return dicomjson.response(ds, code, headers)


def _quote(text: str) -> str:
    """``text`` as a quoted-string of an HTTP header: printable ASCII only (anything else is
    escaped as ``\\uXXXX``, so a reason quoting a non-Latin-1 UID still goes out)."""
    text = text.encode("ascii", "backslashreplace").decode("ascii")
    text = "".join(c if " " <= c <= "~" else " " for c in text)
    return text.replace("\\", "\\\\").replace('"', "'")
