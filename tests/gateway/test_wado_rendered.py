"""Rendered images, thumbnails and WADO-URI against a real catalogue and gateway (one archive
for the module): what a browser would show, checked against the DICOM grayscale pipeline
applied to pydicom's decoding of the files the modality sent."""

from __future__ import annotations

from io import BytesIO

import httpx
import numpy as np
import pytest
from PIL import Image
from pydicom import dcmread

from tests.gateway.dicomweb_peers import WebArchive, multipart_dicom
from tests.gateway.wado_images import EXPLICIT, JPEG_LOSSLESS, Images, write_images


@pytest.fixture(scope="module")
def archive(web_archive: WebArchive, tmp_path_factory: pytest.TempPathFactory
            ) -> tuple[WebArchive, Images]:
    """The session's web archive with this module's study in it."""
    images = write_images(tmp_path_factory.mktemp("wado-rendered") / "in", patient_id="RENDER01")
    a = web_archive
    body, content_type = multipart_dicom([p.read_bytes() for p in images.files.values()])
    with a.http() as http:
        r = http.post("/studies", content=body, headers={"Content-Type": content_type})
        assert r.status_code == 200, r.text
    a.wait_indexed(images.study_uid, len(images.files))
    return a, images


def get(a: WebArchive, url: str, accept: str = "image/png", **params: str) -> httpx.Response:
    with a.http() as http:
        return http.get(url, headers={"Accept": accept}, params=params)


def picture(response: httpx.Response) -> np.ndarray:
    assert response.status_code == 200, response.text
    return np.asarray(Image.open(BytesIO(response.content)))


def windowed(path, frame: int = 1, centre: float | None = None,
             width: float | None = None) -> np.ndarray:
    """PS3.3 C.11.2.1.2.1 (linear VOI) on the modality values pydicom decodes."""
    ds = dcmread(path)
    raw = ds.pixel_array if int(ds.get("NumberOfFrames", 1)) == 1 else ds.pixel_array[frame - 1]
    values = raw * float(ds.get("RescaleSlope", 1)) + float(ds.get("RescaleIntercept", 0))
    c = float(ds.WindowCenter) if centre is None else centre
    w = float(ds.WindowWidth) if width is None else width
    return np.clip(np.rint((values - (c - 0.5 - (w - 1) / 2)) / (w - 1) * 255), 0, 255)


def test_rendered_instance_uses_its_window_and_any_transfer_syntax(archive) -> None:
    a, im = archive
    # PNG (lossless): the CT windowed with its own centre/width, within one grey level.
    got = picture(get(a, im.path("ct") + "/rendered"))
    assert got.shape == (64, 64)
    assert np.abs(got.astype(int) - windowed(im.files["ct"])).max() <= 1
    # The same pixels stored as JPEG Lossless, JPEG-LS, RLE, JPEG 2000 render the same.
    for name in ("ct_jpegll", "ct_jls", "ct_rle", "ct_j2k"):
        assert np.array_equal(picture(get(a, im.path(name) + "/rendered")), got), name
    # An explicit window wins over the instance's.
    narrow = picture(get(a, im.path("ct") + "/rendered", window="0,100"))
    assert np.abs(narrow.astype(int) - windowed(im.files["ct"], centre=0, width=100)).max() <= 1
    assert not np.array_equal(narrow, got)
    # JPEG by default; dicomweb-client's call; quality changes the size.
    r = get(a, im.path("ct") + "/rendered", accept="*/*")
    assert r.headers["content-type"] == "image/jpeg" and r.content[:2] == b"\xff\xd8"
    client = a.client()
    jpeg = client.retrieve_instance_rendered(im.study_uid, im.series_uid, im.sop("ct"),
                                             media_types=("image/jpeg",))
    assert Image.open(BytesIO(jpeg)).size == (64, 64)
    small = get(a, im.path("ct") + "/rendered", accept="image/jpeg", quality="5").content
    large = get(a, im.path("ct") + "/rendered", accept="image/jpeg", quality="95").content
    assert len(small) < len(large)


def test_frames_monochrome1_rgb_and_viewport(archive) -> None:
    a, im = archive
    # Frame 3 of the multi-frame object (no window in it: the frame's range).
    got = picture(get(a, im.path("multi") + "/frames/3/rendered"))
    raw = dcmread(im.files["multi"]).pixel_array[2].astype(float)
    lo, hi = raw.min(), raw.max()
    expected = windowed(im.files["multi"], 3, centre=(lo + hi + 1) / 2, width=hi - lo + 1)
    assert np.abs(got.astype(int) - expected).max() <= 1
    assert not np.array_equal(got, picture(get(a, im.path("multi") + "/frames/1/rendered")))
    # MONOCHROME1: the ramp is drawn inverted (low values white).
    mono = picture(get(a, im.path("mono1") + "/rendered"))
    assert mono[0, 0] == 255 and mono[0, -1] == 0
    # RGB: the colours as stored.
    rgb = picture(get(a, im.path("rgb") + "/rendered"))
    assert np.array_equal(rgb, dcmread(im.files["rgb"]).pixel_array)
    # viewport: fitted, aspect kept.
    assert picture(get(a, im.path("ct") + "/rendered", viewport="32,16")).shape == (16, 16)


def test_thumbnails_and_study_rendered(archive) -> None:
    a, im = archive
    base = f"/studies/{im.study_uid}"
    for url in (base, f"{base}/series/{im.series_uid}", im.path("ct"), im.path("multi")
                + "/frames/2"):
        r = get(a, url + "/thumbnail", accept="image/jpeg")
        assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg", url
        assert max(Image.open(BytesIO(r.content)).size) <= 128
    assert picture(get(a, im.path("ct") + "/thumbnail", viewport="20,20")).shape == (20, 20)
    # The study rendered: one image per instance, all PNG.
    client = a.client()
    r = client._session.get(a.url + base + "/rendered", timeout=60,
                            headers={"Accept": 'multipart/related; type="image/png"'})
    assert r.status_code == 200
    images = list(client._decode_multipart_message(r, stream=False))
    assert len(images) == len(im.files)
    assert all(bytes(i[:8]) == b"\x89PNG\r\n\x1a\n" for i in images)


def test_rendered_refusals(archive) -> None:
    a, im = archive
    assert get(a, im.path("ct") + "/rendered", accept="image/gif").status_code == 406
    assert get(a, im.path("ct") + "/rendered", window="abc").status_code == 400
    assert get(a, im.path("ct") + "/rendered", quality="0").status_code == 400
    assert get(a, im.path("multi") + "/frames/9/rendered").status_code == 404
    assert get(a, im.path("ct")[:-2] + "99/rendered").status_code == 404


def test_wado_uri(archive) -> None:
    a, im = archive
    ids = {"requestType": "WADO", "studyUID": im.study_uid, "seriesUID": im.series_uid}

    def wado(**params: str) -> httpx.Response:
        with a.http() as http:
            return http.get("/wado", params={**ids, **params})

    # application/dicom as stored (transferSyntax=*), or Explicit VR LE by default: decoded.
    stored = im.files["multi_jpegll"].read_bytes()
    r = wado(objectUID=im.sop("multi_jpegll"), contentType="application/dicom",
             transferSyntax="*")
    assert r.status_code == 200 and r.content == stored
    assert r.headers["content-type"] == "application/dicom"
    r = wado(objectUID=im.sop("multi_jpegll"), contentType="application/dicom")
    ds = dcmread(BytesIO(r.content))
    assert str(ds.file_meta.TransferSyntaxUID) == EXPLICIT
    assert np.array_equal(ds.pixel_array, dcmread(im.files["multi"]).pixel_array)
    r = wado(objectUID=im.sop("ct"), contentType="application/dicom",
             transferSyntax=JPEG_LOSSLESS)
    assert str(dcmread(BytesIO(r.content)).file_meta.TransferSyntaxUID) == JPEG_LOSSLESS
    # image/jpeg (the default for images), a frame, a window, a size.
    r = wado(objectUID=im.sop("ct"))
    assert r.headers["content-type"] == "image/jpeg"
    r = wado(objectUID=im.sop("multi"), contentType="image/png", frameNumber="2", rows="16")
    assert picture(r).shape == (16, 16)
    r = wado(objectUID=im.sop("ct"), contentType="image/png", windowCenter="0",
             windowWidth="100")
    assert np.abs(picture(r).astype(int) - windowed(im.files["ct"], centre=0, width=100)
                  ).max() <= 1
    # Errors as PS3.18 says: 400 bad or missing parameters, 404 unknown, 406 content type.
    assert wado(objectUID=im.sop("ct"), requestType="WADX").status_code == 400
    assert wado().status_code == 400
    assert wado(objectUID=im.sop("ct"), windowCenter="40").status_code == 400
    assert wado(objectUID=im.sop("ct"), anonymize="yes").status_code == 400
    assert wado(objectUID=im.sop("ct")[:-2] + "99").status_code == 404
    assert wado(objectUID=im.sop("ct"), contentType="text/html").status_code == 406
    assert wado(objectUID=im.sop("multi"), frameNumber="9").status_code == 404
