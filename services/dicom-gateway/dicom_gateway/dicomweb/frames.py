"""WADO-RS frames (PS3.18 10.4.1.1.3): ``…/instances/{sop}/frames/{1,2,…}`` as
multipart/related, one part per frame in the order asked.

``type="application/octet-stream"`` (the default): native little-endian samples
(Explicit VR Little Endian; compressed frames are decoded), or with ``transfer-syntax=*`` the
frames as stored. ``image/jls``, ``image/jpeg``, ``image/jp2``, ``image/jpx``,
``image/dicom-rle`` (also ``image/x-dicom-rle``): the stored fragments when the stored syntax
matches, else re-encoded. Each part's Content-Type names its transfer syntax. 406 when no
media range can be served, 404 for a frame number out of range, 400 for a malformed list.
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response

from dicom_gateway import metrics
from dicom_gateway.dicomweb import DicomWeb, instances, pixels
from dicom_gateway.dicomweb.multipart import accept_list, closing, new_boundary, part_header
from dicomvault.transcode import TranscodeError


def _serve(data: bytes, numbers: list[int] | None, accept_header: str | None
           ) -> tuple[list[bytes], str, str]:
    """(frames, media type, transfer syntax); HTTPException for the refusals."""
    try:
        ds = pixels.read(data)
    except pixels.NoPixels as exc:
        raise HTTPException(404, str(exc)) from exc
    stored = str(ds.file_meta.TransferSyntaxUID)
    wanted = numbers or list(range(1, pixels.number_of_frames(ds) + 1))
    errors = []
    for plan in pixels.plans(accept_list(accept_header), stored):
        try:
            out, ts = pixels.frames(ds, data, wanted, plan)
        except IndexError as exc:
            raise HTTPException(404, str(exc)) from exc
        except TranscodeError as exc:
            metrics.TRANSCODES.labels("dicomweb", "failed").inc()
            errors.append(str(exc))
            continue
        if pixels.converted(stored, ts):
            metrics.TRANSCODES.labels("dicomweb", "converted").inc()
        media = plan.media_type if plan.transfer_syntax != pixels.STORED or \
            plan.media_type == pixels.OCTET else pixels.media_for(ts)
        return out, media, ts
    detail = "; ".join(errors) or "no acceptable media type"
    raise HTTPException(406, f"cannot send these frames as asked ({detail}); stored as {stored}; "
                             'ask for multipart/related; type="application/octet-stream" or '
                             "transfer-syntax=*")


async def answer(dw: DicomWeb, request: Request, study: str, series: str, sop: str,
                 numbers: list[int] | None) -> Response:
    """The frames ``numbers`` (all when None) of one instance as multipart/related."""
    try:
        loc = (await instances.locate(dw, study, series, sop))[0]
        data = await instances.read(dw, loc)
    except instances.Unavailable as exc:
        return exc.response
    out, media, ts = await asyncio.to_thread(_serve, data, numbers,
                                             request.headers.get("accept"))
    boundary = new_boundary()
    content_type = f"{media}; transfer-syntax={ts}"
    body = b"".join(part_header(boundary, content_type) + frame + b"\r\n" for frame in out)
    return Response(body + closing(boundary),
                    media_type=f'multipart/related; type="{media}"; boundary={boundary}')


def routes(router: APIRouter, dw: DicomWeb, deps: list) -> None:
    @router.get("/studies/{study}/series/{series}/instances/{sop}/frames/{frame_list}",
                dependencies=deps)
    async def get_frames(study: str, series: str, sop: str, frame_list: str,
                         request: Request) -> Response:
        try:
            numbers = pixels.frame_numbers(frame_list)
        except ValueError as exc:
            raise HTTPException(400, str(exc)) from exc
        return await answer(dw, request, study, series, sop, numbers)
