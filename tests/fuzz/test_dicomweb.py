"""Fuzzing the DICOMweb doors: STOW-RS multipart bodies and QIDO-RS parameters."""

from __future__ import annotations

from collections import Counter

import httpx
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz.budget import COUNTS, budget
from tests.fuzz.conftest import check_survived, long_http, outside_files
from tests.fuzz.strategies import mutated_dataset, qido_query
from tests.gateway.dicomweb_peers import READ, WRITE, WebArchive, multipart_dicom
from tests.peers.hostile import DEFLATED_LE, EXPLICIT_LE, Instance

STOW_STATUSES = {200, 202, 400, 409, 413, 415}
QIDO_STATUSES = {200, 204, 400, 414}  # 414: a URL over dicomweb.max_url_bytes
CTYPES = ['multipart/related; type="application/dicom"; boundary={b}',
          'multipart/related; type="application/dicom"; boundary="{b}"',
          "multipart/related; boundary={b}", 'multipart/related; type="application/dicom+json"; '
          "boundary={b}", "application/dicom", "multipart/related; type=application/dicom",
          "text/plain; boundary={b}", "multipart/related; boundary="]


@st.composite
def stow_body(draw) -> tuple[bytes, str, list[str]]:
    """A multipart body of mutated Part 10 parts, then perhaps damaged; the Content-Type; the
    SOP Instance UIDs the parts claim."""
    parts, sops = [], []
    for _ in range(draw(st.integers(0, 3))):
        inst, dataset = draw(mutated_dataset())
        ts = draw(st.sampled_from([EXPLICIT_LE, EXPLICIT_LE, DEFLATED_LE, "1.2.3.4", ""]))
        part = inst.part10(dataset, ts) if ts else dataset
        if draw(st.booleans()):
            cut = draw(st.integers(0, len(part)))
            part = part[:cut] + draw(st.binary(max_size=16)) + part[cut:]
        parts.append(part)
        sops.append(inst.sop)
    boundary = draw(st.sampled_from(["b0undary-x", "x", "--", "a" * 80, "b0undary-x\r\n"]))
    body, _ = multipart_dicom(parts, boundary=boundary.strip())
    if draw(st.booleans()) and body:
        cut = draw(st.integers(0, len(body)))
        body = body[:cut] + draw(st.sampled_from([b"", b"\r\n--", b"\r\n\r\n", b"--"]))
    ctype = draw(st.sampled_from(CTYPES)).format(b=boundary.strip())
    return body, ctype, sops


def test_stow_rs_fuzz(archive: WebArchive) -> None:
    before = outside_files(archive)
    acknowledged: set[str] = set()
    counts = COUNTS.setdefault("STOW-RS", Counter())
    http = long_http(archive, WRITE)

    @budget(in_suite=120)
    @given(case=stow_body())
    def one(case) -> None:
        body, ctype, _ = case
        r = http.post("/studies", content=body, headers={"Content-Type": ctype})
        assert r.status_code in STOW_STATUSES, (r.status_code, r.text[:300])
        assert r.headers.get("Warning", "").isascii()
        counts[str(r.status_code)] += 1
        if r.status_code in (200, 202):
            acknowledged.update(i["00081155"]["Value"][0]
                                for i in r.json()["00081199"]["Value"])

    try:
        one()
        # A valid STOW-RS afterwards still works.
        inst = Instance()
        body, ctype = multipart_dicom([inst.part10(inst.dataset())])
        r = http.post("/studies", content=body, headers={"Content-Type": ctype})
        assert r.status_code == 200, r.text
        acknowledged.add(inst.sop)
    finally:
        http.close()
    check_survived(archive, acknowledged, before)


def test_qido_rs_fuzz(archive: WebArchive) -> None:
    counts = COUNTS.setdefault("QIDO-RS", Counter())
    http = long_http(archive, READ)

    def get_once(path: str, params) -> httpx.Response:
        with long_http(archive, READ) as fresh:
            return fresh.get(path, params=params, headers={"Connection": "close"})

    @budget(in_suite=300)
    @given(query=qido_query())
    def one(query) -> None:
        path, params = query
        try:
            r = http.get(path, params=params)
        except httpx.InvalidURL:
            return  # the client refuses to send it: not a request
        except httpx.TransportError:
            # A kept-alive connection closed under us (seen once in 10,000, on a loaded
            # machine): the same GET on a new connection must get its answer.
            r = get_once(path, params)
        assert r.status_code in QIDO_STATUSES, (r.status_code, params, r.text[:300])
        if r.status_code == 400:
            assert r.json()["detail"], r.text
        counts[str(r.status_code)] += 1

    try:
        one()
        # A valid query afterwards still answers.
        assert http.get("/studies", params={"PatientID": "NOBODY"}).status_code == 204
    finally:
        http.close()
    for proc in (archive.gateway, archive.catalogue):
        assert proc.process is not None and proc.process.poll() is None, proc.tail()
