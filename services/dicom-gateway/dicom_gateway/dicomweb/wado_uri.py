"""WADO-URI (PS3.18 9): ``GET /dicomweb/wado?requestType=WADO&studyUID=…&seriesUID=…&
objectUID=…`` — the single-object retrieve of RIS links and older viewers.

``contentType`` (a list is allowed, the first one we can serve wins): ``application/dicom``
(the Part 10 object in ``transferSyntax``, by default Explicit VR Little Endian as the
standard says; ``*`` as stored — an extension), ``image/jpeg`` (the default for objects with
Pixel Data) or ``image/png``, with ``frameNumber``, ``rows``/``columns``, ``windowCenter`` and
``windowWidth`` (both or neither) and ``imageQuality``. Not supported: ``anonymize``,
``annotation``, ``region``, ``presentationUID``/``presentationSeriesUID`` (400 saying so).
Errors: 400 for a missing or malformed parameter, 404 for an unknown object, 406 for a
content type or transfer syntax that cannot be produced, 503 (Retry-After) while the object is
recalled to the cache tier.
"""

from __future__ import annotations

import asyncio
from io import BytesIO

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response
from pydicom import dcmread
from pydicom.uid import ExplicitVRLittleEndian

from dicom_gateway.dicomweb import DicomWeb, instances, render, rendered, wado

DICOM = "application/dicom"
UNSUPPORTED = ("anonymize", "annotation", "region", "presentationUID",
               "presentationSeriesUID")


def _int(params, name: str, low: int, high: int) -> int | None:
    text = params.get(name)
    if text is None or text == "":
        return None
    try:
        value = int(text)
    except ValueError as exc:
        raise HTTPException(400, f"{name} must be an integer") from exc
    if not low <= value <= high:
        raise HTTPException(400, f"{name} must be between {low} and {high}")
    return value


def _options(params, media: str) -> render.Options:
    centre, width = params.get("windowCenter"), params.get("windowWidth")
    if (centre is None) != (width is None):
        raise HTTPException(400, "windowCenter and windowWidth go together")
    window = None
    if centre is not None:
        try:
            window = (float(centre), float(width))
        except ValueError as exc:
            raise HTTPException(400, "windowCenter and windowWidth must be numbers") from exc
        if window[1] < 1:
            raise HTTPException(400, "windowWidth must be at least 1")
    rows, columns = _int(params, "rows", 1, 8192), _int(params, "columns", 1, 8192)
    viewport = None
    if rows or columns:
        viewport = (columns or 8192, rows or 8192)
    quality = _int(params, "imageQuality", 1, 100) or 90
    return render.Options(media, window, viewport, quality)


def _has_pixels(data: bytes) -> bool:
    return "PixelData" in dcmread(BytesIO(data), stop_before_pixels=False,
                                  specific_tags=["PixelData"])


async def answer(dw: DicomWeb, request: Request) -> Response:
    params = request.query_params
    if params.get("requestType") != "WADO":
        raise HTTPException(400, "requestType=WADO is required")
    uids = [params.get(n) or "" for n in ("studyUID", "seriesUID", "objectUID")]
    missing = [n for n, v in zip(("studyUID", "seriesUID", "objectUID"), uids, strict=True)
               if not v]
    if missing:
        raise HTTPException(400, f"missing parameter(s): {', '.join(missing)}")
    refused = [n for n in UNSUPPORTED if params.get(n)]
    if refused:
        raise HTTPException(400, f"not supported by this server: {', '.join(refused)}")
    asked = [t.split(";")[0].strip().lower()
             for t in (params.get("contentType") or "").split(",") if t.strip()]
    frame = _int(params, "frameNumber", 1, 2**31 - 1)
    try:
        loc = (await instances.locate(dw, *uids))[0]
        data = await instances.read(dw, loc)
    except instances.Unavailable as exc:
        return exc.response
    if not asked:
        asked = [render.JPEG if await asyncio.to_thread(_has_pixels, data) else DICOM]
    for media in asked:
        if media in (DICOM, "application/*"):
            ts = params.get("transferSyntax") or ExplicitVRLittleEndian
            out = await wado.converted(data, ts)
            return Response(out, media_type=DICOM)
        if media in (render.JPEG, render.PNG, "image/*", "*/*"):
            media = render.PNG if media == render.PNG else render.JPEG
            if params.get("transferSyntax"):
                raise HTTPException(400, "transferSyntax goes with contentType=application/dicom")
            opts = _options(params, media)
            try:
                images = await asyncio.to_thread(rendered.draw, data, [frame or 1], opts)
            except IndexError as exc:
                raise HTTPException(404, str(exc)) from exc
            except Exception as exc:  # noqa: BLE001 - no pixels or no decoder
                raise HTTPException(406, f"the object cannot be rendered as {media}: {exc}"
                                    ) from exc
            return Response(images[0], media_type=media)
    raise HTTPException(406, "contentType must be application/dicom, image/jpeg or image/png")


def routes(router: APIRouter, dw: DicomWeb, deps: list) -> None:
    @router.get("/wado", dependencies=deps)
    async def get_wado(request: Request) -> Response:
        return await answer(dw, request)
