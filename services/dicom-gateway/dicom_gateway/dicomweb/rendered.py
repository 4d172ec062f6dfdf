"""WADO-RS rendered resources (PS3.18 10.4.1.1.4, 10.4.1.1.5): ``…/rendered`` and
``…/thumbnail`` of studies, series, instances and frames as image/jpeg or image/png
(render.py draws them).

Instance and frame ``/rendered``: one image (an instance's first frame; a frame list: a
multipart/related of one image per frame). Study and series ``/rendered``: a multipart/related
of the first frame of every instance with Pixel Data. ``/thumbnail`` at every level: one image
of the first frame of a representative instance (the middle one of the first series), fitted
into ``THUMBNAIL`` pixels unless ``viewport`` says otherwise. Parameters ``window``,
``viewport``, ``quality`` and ``accept`` (overrides the Accept header).
"""

from __future__ import annotations

import asyncio
from io import BytesIO

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response
from pydicom import dcmread

from dicom_gateway.dicomweb import DicomWeb, instances, pixels, render
from dicom_gateway.dicomweb.multipart import accept_list, closing, new_boundary, part_header
from dicomvault.query import InstanceLocation

THUMBNAIL = (128, 128)


def media_type(request: Request) -> str:
    """image/jpeg or image/png from the ``accept`` parameter or the Accept header; 406."""
    text = request.query_params.get("accept") or request.headers.get("accept")
    for m in accept_list(text):
        kind = m.params.get("type", "*/*") if m.type.startswith("multipart/") else m.type
        if kind in (render.JPEG, render.PNG):
            return kind
        if kind in ("*/*", "image/*"):
            return render.JPEG
    raise HTTPException(406, "rendered images are available as image/jpeg or image/png")


def options(request: Request, thumbnail: bool) -> render.Options:
    q = request.query_params
    try:
        opts = render.Options.parse(q.get("window"), q.get("viewport"), q.get("quality"),
                                    media_type(request))
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from exc
    if thumbnail and opts.viewport is None:
        opts = render.Options(opts.media_type, opts.window, THUMBNAIL, opts.quality)
    return opts


def draw(data: bytes, frames: list[int], opts: render.Options) -> list[bytes]:
    """Each frame rendered; ValueError (no pixels, cannot decode), IndexError (range)."""
    ds = dcmread(BytesIO(data))
    if "PixelData" not in ds:
        raise ValueError("the instance has no Pixel Data to render")
    n = pixels.number_of_frames(ds)
    bad = [f for f in frames if not 1 <= f <= n]
    if bad:
        raise IndexError(f"frame {bad[0]} is out of range: the instance has {n} frame(s)")
    return [render.encode(render.image(ds, f, opts), opts) for f in frames]


async def _drawn(dw: DicomWeb, loc: InstanceLocation, frames: list[int],
                 opts: render.Options) -> list[bytes]:
    data = await instances.read(dw, loc)
    try:
        return await asyncio.to_thread(draw, data, frames, opts)
    except IndexError as exc:
        raise HTTPException(404, str(exc)) from exc
    except Exception as exc:  # noqa: BLE001 - a decoder's error: cannot be rendered
        raise HTTPException(406, f"instance {loc.sop_instance_uid} cannot be rendered: "
                                 f"{exc}") from exc


def _multipart(images: list[bytes], media: str) -> Response:
    boundary = new_boundary()
    body = b"".join(part_header(boundary, media) + img + b"\r\n" for img in images)
    return Response(body + closing(boundary),
                    media_type=f'multipart/related; type="{media}"; boundary={boundary}')


async def one(dw: DicomWeb, request: Request, study: str, series: str, sop: str,
              frames: list[int] | None, thumbnail: bool) -> Response:
    opts = options(request, thumbnail)
    try:
        found = await instances.locate(dw, study, series, sop)
        if thumbnail and not sop:
            first_series = [loc for loc in found
                            if loc.series_instance_uid == found[0].series_instance_uid]
            found = [first_series[len(first_series) // 2]]
        images = await _drawn(dw, found[0], frames or [1], opts)
    except instances.Unavailable as exc:
        return exc.response
    if len(images) == 1:
        return Response(images[0], media_type=opts.media_type)
    return _multipart(images, opts.media_type)


async def every(dw: DicomWeb, request: Request, study: str, series: str) -> Response:
    """Study or series /rendered: the first frame of each instance with pixels."""
    opts = options(request, False)
    images = []
    try:
        for loc in await instances.locate(dw, study, series):
            try:
                images += await _drawn(dw, loc, [1], opts)
            except HTTPException:
                continue  # no pixels (SR, KOS…): not part of the rendered series
    except instances.Unavailable as exc:
        return exc.response
    if not images:
        raise HTTPException(406, "nothing in this study or series can be rendered")
    return _multipart(images, opts.media_type)


def _frames(text: str) -> list[int]:
    try:
        return pixels.frame_numbers(text)
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from exc


def routes(router: APIRouter, dw: DicomWeb, deps: list) -> None:
    base = "/studies/{study}/series/{series}/instances/{sop}"

    @router.get("/studies/{study}/rendered", dependencies=deps)
    async def study_rendered(study: str, request: Request) -> Response:
        return await every(dw, request, study, "")

    @router.get("/studies/{study}/series/{series}/rendered", dependencies=deps)
    async def series_rendered(study: str, series: str, request: Request) -> Response:
        return await every(dw, request, study, series)

    @router.get(base + "/rendered", dependencies=deps)
    async def instance_rendered(study: str, series: str, sop: str,
                                request: Request) -> Response:
        return await one(dw, request, study, series, sop, None, False)

    @router.get(base + "/frames/{frame_list}/rendered", dependencies=deps)
    async def frames_rendered(study: str, series: str, sop: str, frame_list: str,
                              request: Request) -> Response:
        return await one(dw, request, study, series, sop, _frames(frame_list), False)

    @router.get("/studies/{study}/thumbnail", dependencies=deps)
    async def study_thumbnail(study: str, request: Request) -> Response:
        return await one(dw, request, study, "", "", None, True)

    @router.get("/studies/{study}/series/{series}/thumbnail", dependencies=deps)
    async def series_thumbnail(study: str, series: str, request: Request) -> Response:
        return await one(dw, request, study, series, "", None, True)

    @router.get(base + "/thumbnail", dependencies=deps)
    async def instance_thumbnail(study: str, series: str, sop: str,
                                 request: Request) -> Response:
        return await one(dw, request, study, series, sop, None, True)

    @router.get(base + "/frames/{frame_list}/thumbnail", dependencies=deps)
    async def frame_thumbnail(study: str, series: str, sop: str, frame_list: str,
                              request: Request) -> Response:
        return await one(dw, request, study, series, sop, _frames(frame_list)[:1], True)
