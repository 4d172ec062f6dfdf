"""WADO-RS frames, bulk data, metadata BulkDataURIs and transfer-syntax conversion on
retrieve, against a real catalogue and gateway (one archive for the module), checked against
pydicom's own reading of the files the modality sent and with dicomweb-client."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import pytest
from pydicom import dcmread
from pydicom.encaps import generate_frames
from pydicom.pixels import pixel_array

from tests.gateway.conftest import sample
from tests.gateway.dicomweb_peers import WebArchive, multipart_dicom, raw_parts
from tests.gateway.wado_images import (
    EXPLICIT,
    JPEG_LOSSLESS,
    JPEG_LS,
    RLE,
    Images,
    write_images,
)

OCTET = 'multipart/related; type="application/octet-stream"'


@pytest.fixture(scope="module")
def archive(web_archive: WebArchive, tmp_path_factory: pytest.TempPathFactory
            ) -> tuple[WebArchive, Images]:
    """The session's web archive with this module's study in it."""
    images = write_images(tmp_path_factory.mktemp("wado-frames") / "in")
    a = web_archive
    # The images go in byte for byte (STOW-RS of the files as written).
    body, content_type = multipart_dicom([p.read_bytes() for p in images.files.values()])
    with a.http() as http:
        r = http.post("/studies", content=body, headers={"Content-Type": content_type})
        assert r.status_code == 200, r.text
    a.wait_indexed(images.study_uid, len(images.files))
    return a, images


def native(path: Path, frame: int) -> bytes:
    """pydicom's decoding of one frame (1-based) as little-endian samples."""
    ds = dcmread(path)
    return pixel_array(ds, index=frame - 1).astype("<u2").tobytes()


def stored_fragments(path: Path) -> list[bytes]:
    ds = dcmread(path)
    return list(generate_frames(ds.PixelData, number_of_frames=int(ds.get("NumberOfFrames", 1))))


def get(a: WebArchive, url: str, accept: str) -> httpx.Response:
    with a.http() as http:
        return http.get(url, headers={"Accept": accept})


def parts(a: WebArchive, url: str, accept: str) -> list[tuple[str, bytes]]:
    """(Content-Type, content) of each part of a multipart answer, split by dicomweb-client."""
    client = a.client()
    response = client._session.get(a.url + url, headers={"Accept": accept}, timeout=60)
    assert response.status_code == 200, response.text
    contents = list(client._decode_multipart_message(response, stream=False))
    types = [line.split(b":", 1)[1].strip().decode() for line in response.content.split(b"\r\n")
             if line.lower().startswith(b"content-type:")]
    return list(zip(types, contents, strict=True))


def test_native_frames_single_and_multi(archive) -> None:
    a, im = archive
    # A single-frame CT: frame 1 is the Pixel Data, as octet-stream in Explicit VR LE.
    got = parts(a, im.path("ct") + "/frames/1", OCTET)
    assert got == [(f"application/octet-stream; transfer-syntax={EXPLICIT}",
                    dcmread(im.files["ct"]).PixelData)]
    # Frames 2, 5 and 1 of a five-frame object, in the order asked.
    got = parts(a, im.path("multi") + "/frames/2,5,1", OCTET)
    assert [c for _, c in got] == [native(im.files["multi"], n) for n in (2, 5, 1)]
    # dicomweb-client's own call gets the same bytes.
    client = a.client()
    frames = client.retrieve_instance_frames(im.study_uid, im.series_uid, im.sop("multi"),
                                             frame_numbers=[3, 4])
    assert frames == [native(im.files["multi"], 3), native(im.files["multi"], 4)]


def test_encapsulated_frames_as_stored_or_decoded(archive) -> None:
    a, im = archive
    # transfer-syntax=*: the stored JPEG Lossless fragments, byte for byte, named as such.
    got = parts(a, im.path("multi_jpegll") + "/frames/1,4",
                f"{OCTET}; transfer-syntax=*")
    fragments = stored_fragments(im.files["multi_jpegll"])
    assert got == [(f"application/octet-stream; transfer-syntax={JPEG_LOSSLESS}", fragments[0]),
                   (f"application/octet-stream; transfer-syntax={JPEG_LOSSLESS}", fragments[3])]
    # image/jpeg with the stored syntax: the same fragments as image/jpeg parts.
    got = parts(a, im.path("multi_jpegll") + "/frames/2",
                f'multipart/related; type="image/jpeg"; transfer-syntax={JPEG_LOSSLESS}')
    assert got == [(f"image/jpeg; transfer-syntax={JPEG_LOSSLESS}", fragments[1])]
    # The default octet-stream: decoded, pixel-identical to the native original.
    got = parts(a, im.path("multi_jpegll") + "/frames/3", OCTET)
    assert got == [(f"application/octet-stream; transfer-syntax={EXPLICIT}",
                    native(im.files["multi"], 3))]
    # JPEG-LS stored, image/jls asked: its fragment; RLE via image/x-dicom-rle.
    got = parts(a, im.path("ct_jls") + "/frames/1", 'multipart/related; type="image/jls"')
    assert got == [(f"image/jls; transfer-syntax={JPEG_LS}",
                    stored_fragments(im.files["ct_jls"])[0])]
    got = parts(a, im.path("ct_rle") + "/frames/1", 'multipart/related; type="image/x-dicom-rle"')
    assert got == [(f"image/x-dicom-rle; transfer-syntax={RLE}",
                    stored_fragments(im.files["ct_rle"])[0])]
    # dicomweb-client: by default (transfer-syntax=*) the stored fragment; asking for
    # Explicit VR Little Endian, the decoded samples.
    client = a.client()
    frames = client.retrieve_instance_frames(im.study_uid, im.series_uid, im.sop("ct_jls"),
                                             frame_numbers=[1])
    assert frames == stored_fragments(im.files["ct_jls"])
    frames = client.retrieve_instance_frames(
        im.study_uid, im.series_uid, im.sop("ct_jls"), frame_numbers=[1],
        media_types=(("application/octet-stream", EXPLICIT),))
    assert frames == [native(im.files["ct"], 1)]


def test_frames_encoded_on_request_and_refusals(archive) -> None:
    a, im = archive
    # Native stored, JPEG-LS asked: encoded, and it decodes back to the same pixels.
    got = parts(a, im.path("ct") + "/frames/1", 'multipart/related; type="image/jls"')
    (ctype, frame), = got
    assert ctype == f"image/jls; transfer-syntax={JPEG_LS}"
    ds = dcmread(im.files["ct_jls"])
    ds.PixelData = __import__("pydicom").encaps.encapsulate([frame])
    assert np.array_equal(ds.pixel_array, dcmread(im.files["ct"]).pixel_array)
    # Out of range: 404; not a frame list: 400; a media type we cannot make: 406.
    r = get(a, im.path("multi") + "/frames/6", OCTET)
    assert r.status_code == 404 and "5 frame" in r.text
    assert get(a, im.path("multi") + "/frames/0", OCTET).status_code == 400
    assert get(a, im.path("multi") + "/frames/1,x", OCTET).status_code == 400
    r = get(a, im.path("ct") + "/frames/1", 'multipart/related; type="image/gif"')
    assert r.status_code == 406
    r = get(a, im.path("ct") + "/frames/1",
            'multipart/related; type="image/jpeg"; transfer-syntax=1.2.840.10008.1.2.4.50')
    assert r.status_code == 406, "12-bit CT cannot be JPEG baseline"
    assert get(a, im.path("tagged")[:-3] + "999/frames/1", OCTET).status_code == 404


def test_metadata_bulkdata_uris_and_bulkdata(archive) -> None:
    a, im = archive
    client = a.client()
    meta = client.retrieve_instance_metadata(im.study_uid, im.series_uid, im.sop("tagged"))
    base = a.url + im.path("tagged")
    # Pixel Data and the 2 KiB value are URIs; the 4-byte value stays inline.
    assert meta["7FE00010"] == {"vr": "OW", "BulkDataURI": f"{base}/bulkdata/7FE00010"}
    assert meta["00091011"] == {"vr": "OB", "BulkDataURI": f"{base}/bulkdata/00091011"}
    assert "InlineBinary" in meta["00091012"]
    # dicomweb-client fetches each BulkDataURI: the values as stored.
    ds = dcmread(im.files["tagged"])
    assert client.retrieve_bulkdata(meta["00091011"]["BulkDataURI"]) == [ds[0x00091011].value]
    assert client.retrieve_bulkdata(meta["7FE00010"]["BulkDataURI"]) == [ds.PixelData]
    # Encapsulated Pixel Data as stored: one part per frame.
    meta = client.retrieve_instance_metadata(im.study_uid, im.series_uid, im.sop("multi_jpegll"))
    got = parts(a, meta["7FE00010"]["BulkDataURI"].removeprefix(a.url),
                f"{OCTET}; transfer-syntax=*")
    assert [c for _, c in got] == stored_fragments(im.files["multi_jpegll"])
    # Unknown tag: 404.
    assert get(a, im.path("tagged") + "/bulkdata/00091099", OCTET).status_code == 404


def converted(a: WebArchive, outcome: str = "converted") -> float:
    text = httpx.get(f"http://127.0.0.1:{a.http_port}/metrics", timeout=10).text
    return sample(text, "dicomvault_gateway_transcodes_total", interface="dicomweb", outcome=outcome)


def test_wado_rs_instance_converted_to_the_asked_syntax(archive) -> None:
    a, im = archive
    client = a.client()
    before, failed_before = converted(a), converted(a, "failed")
    # JPEG Lossless stored, Explicit VR Little Endian asked: decoded, pixel-identical.
    (got,) = raw_parts(client, a.url + im.path("multi_jpegll"),
                       f'multipart/related; type="application/dicom"; transfer-syntax={EXPLICIT}')
    ds = dcmread(__import__("io").BytesIO(got))
    assert str(ds.file_meta.TransferSyntaxUID) == EXPLICIT
    assert ds.SOPInstanceUID == im.sop("multi_jpegll"), "the same instance, decoded"
    assert np.array_equal(ds.pixel_array, dcmread(im.files["multi"]).pixel_array)
    # Native stored, JPEG-LS asked: encoded losslessly.
    (got,) = raw_parts(client, a.url + im.path("ct"),
                       f'multipart/related; type="application/dicom"; transfer-syntax={JPEG_LS}')
    ds = dcmread(__import__("io").BytesIO(got))
    assert str(ds.file_meta.TransferSyntaxUID) == JPEG_LS
    assert np.array_equal(ds.pixel_array, dcmread(im.files["ct"]).pixel_array)
    # A syntax nothing can write: 406 with the reason.
    r = get(a, im.path("ct"), 'multipart/related; type="application/dicom"; '
                              "transfer-syntax=1.2.840.10008.1.2.4.100")
    assert r.status_code == 406 and "1.2.840.10008.1.2.4.100" in r.text
    # Counted: two conversions, one failure.
    assert (converted(a) - before, converted(a, "failed") - failed_before) == (2, 1)
