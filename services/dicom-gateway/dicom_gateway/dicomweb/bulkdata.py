"""Bulk data (PS3.18 10.4, 8.6): binary values of an instance's metadata above
``dicomweb.bulkdata_threshold_bytes``, and always its Pixel Data, become BulkDataURIs
``…/instances/{sop}/bulkdata/{tag-path}``; that resource answers the value as
multipart/related; type="application/octet-stream" (little endian).

A tag path is tags (8 hex digits) separated by ``/``, with the item index after a sequence:
``7FE00010``, ``00540016/0/00181072``. Pixel Data is answered like frames (one part per frame,
the media type negotiated as for ``/frames``; see pixels.py).
"""

from __future__ import annotations

from io import BytesIO

import numpy as np
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.tag import Tag

from dicom_gateway.dicomweb import DicomWeb, frames, instances
from dicom_gateway.dicomweb.multipart import accept_list

BINARY_VRS = {"OB", "OD", "OF", "OL", "OV", "OW", "UN"}
PIXEL_TAGS = {"7FE00010", "7FE00008", "7FE00009"}  # Pixel Data, Float / Double Float Pixel Data
_WIDTH = {"OW": 2, "OF": 4, "OL": 4, "OD": 8, "OV": 8}


def _with_uris(ds: Dataset, js: dict, base: str, path: list[str]) -> None:
    """Point every BulkDataURI the JSON holds at its tag path under ``base``."""
    for elem in ds:
        key = f"{int(elem.tag):08X}"
        node = js.get(key)
        if node is None:
            continue
        if elem.VR == "SQ":
            for i, (item, item_js) in enumerate(zip(elem.value, node.get("Value", []),
                                                    strict=False)):
                _with_uris(item, item_js, base, [*path, key, str(i)])
        elif "BulkDataURI" in node:
            node["BulkDataURI"] = f"{base}/bulkdata/{'/'.join([*path, key])}"


def metadata(data: bytes, transfer_syntax: str, instance_url: str, threshold: int) -> dict:
    """The DICOM JSON of one instance with BulkDataURIs under ``instance_url``."""
    ds = dcmread(BytesIO(data))
    pixel = {key: ds[key].VR for key in PIXEL_TAGS if Tag(int(key, 16)) in ds}
    for key in pixel:
        del ds[Tag(int(key, 16))]
    ds.AvailableTransferSyntaxUID = transfer_syntax
    # pydicom compares the base64 length with the threshold: 4/3 of the value's.
    js = ds.to_json_dict(bulk_data_threshold=(threshold * 4 + 2) // 3,
                         bulk_data_element_handler=lambda _e: "",
                         suppress_invalid_tags=True)
    _with_uris(ds, js, instance_url, [])
    for key, vr in pixel.items():
        js[key] = {"vr": vr, "BulkDataURI": f"{instance_url}/bulkdata/{key}"}
    return js


def element(ds: Dataset, tag_path: str):
    """The data element a tag path names; KeyError (404) when there is none."""
    parts = [p for p in tag_path.strip("/").split("/") if p]
    current: Dataset = ds
    for n, part in enumerate(parts):
        if len(part) != 8 or any(c not in "0123456789abcdefABCDEF" for c in part):
            raise KeyError(f"{part!r} is not a tag (8 hex digits)")
        tag = Tag(int(part, 16))
        if tag not in current:
            raise KeyError(f"no element {part.upper()} in the instance")
        elem = current[tag]
        rest = parts[n + 1:]
        if not rest:
            return elem
        if elem.VR != "SQ" or not rest[0].isdigit() or int(rest[0]) >= len(elem.value):
            raise KeyError(f"{'/'.join(parts[:n + 2])} names no sequence item")
        current = elem.value[int(rest[0])]
        if len(rest) == 1:
            raise KeyError("a tag path ends with a tag, not an item")
        return element(current, "/".join(rest[1:]))
    raise KeyError("empty tag path")


def little_endian(value: bytes, vr: str, big_endian: bool) -> bytes:
    width = _WIDTH.get(vr, 1)
    if not big_endian or width == 1:
        return bytes(value)
    return np.frombuffer(value, dtype=f">u{width}").astype(f"<u{width}").tobytes()


def routes(router: APIRouter, dw: DicomWeb, deps: list) -> None:
    from dicom_gateway.dicomweb.multipart import closing, new_boundary, part_header

    @router.get("/studies/{study}/series/{series}/instances/{sop}/bulkdata/{tag_path:path}",
                dependencies=deps)
    async def get_bulkdata(study: str, series: str, sop: str, tag_path: str,
                           request: Request) -> Response:
        if tag_path.strip("/").upper() == "7FE00010":
            return await frames.answer(dw, request, study, series, sop, None)
        try:
            loc = (await instances.locate(dw, study, series, sop))[0]
            data = await instances.read(dw, loc)
        except instances.Unavailable as exc:
            return exc.response
        if not any(m.type in ("*/*", "multipart/*") or (
                m.type == "multipart/related"
                and m.params.get("type", "application/octet-stream") in
                ("application/octet-stream", "*/*"))
                for m in accept_list(request.headers.get("accept"))):
            raise HTTPException(406, 'bulk data is sent as multipart/related; '
                                     'type="application/octet-stream"')
        ds = dcmread(BytesIO(data))
        try:
            elem = element(ds, tag_path)
        except KeyError as exc:
            raise HTTPException(404, str(exc.args[0])) from exc
        if elem.VR == "SQ" or elem.value is None:
            raise HTTPException(404, f"{tag_path} holds no bulk data")
        value = elem.value
        if not isinstance(value, bytes | bytearray):
            raise HTTPException(404, f"{tag_path} is not a binary value")
        boundary = new_boundary()
        body = (part_header(boundary, "application/octet-stream")
                + little_endian(value, elem.VR, str(ds.file_meta.TransferSyntaxUID) == "1.2.840.10008.1.2.2") + b"\r\n"
                + closing(boundary))
        return Response(body, media_type='multipart/related; type="application/octet-stream"; '
                                         f"boundary={boundary}")
