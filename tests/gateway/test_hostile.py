"""Hostile and careless input at both doors (issue 13): every request gets a defined answer,
nothing stored can poison a later read, and a bomb costs no memory. Real catalogue and
gateway processes (``WebArchive``), pynetdicom and dcmtk as the other side."""

from __future__ import annotations

import concurrent.futures
import socket
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pynetdicom import AE, _config

from dicom_gateway import statuses as st
from dicomvault.bus.broker import EmbeddedBroker
from tests.gateway.dicomweb_peers import (
    AE_TITLE,
    MODALITY,
    READ,
    WRITE,
    Issuer,
    WebArchive,
    bus_settings_for,
    multipart_dicom,
)
from tests.peers.hostile import (
    DEFLATED_LE,
    EXPLICIT_LE,
    SC,
    Instance,
    deflate_bomb,
    nested_sequences,
    never_closed,
    unknown_vr,
)


@pytest.fixture(scope="module")
def archive(broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[WebArchive]:
    folder = tmp_path_factory.mktemp("hostile")
    a = WebArchive(folder, bus_settings_for(broker), Issuer(folder))
    try:
        yield a.start()
    finally:
        a.stop()


def stow(archive: WebArchive, *parts: bytes, path: str = "/studies") -> httpx.Response:
    body, ctype = multipart_dicom(list(parts))
    with archive.http(WRITE) as http:
        return http.post(path, content=body, headers={"Content-Type": ctype})


def failure_reasons(r: httpx.Response) -> list[int]:
    return [f["00081197"]["Value"][0] for f in r.json()["00081198"]["Value"]]


def c_store(port: int, files: list[Path], ts: str = EXPLICIT_LE) -> list[int]:
    """C-STORE each file's bytes as they are (chunked sending, no decode); the statuses."""
    ae = AE(ae_title=MODALITY)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 60
    ae.add_requested_context(SC, [ts])
    saved = _config.STORE_SEND_CHUNKED_DATASET
    _config.STORE_SEND_CHUNKED_DATASET = True
    try:
        assoc = ae.associate("127.0.0.1", port, ae_title=AE_TITLE)
        assert assoc.is_established
        try:
            return [int(assoc.send_c_store(f).Status) for f in files]
        finally:
            assoc.release()
    finally:
        _config.STORE_SEND_CHUNKED_DATASET = saved
        ae.shutdown()


def gateway_log_lines(archive: WebArchive) -> list[str]:
    return archive.gateway.log_path.read_text(errors="replace").splitlines()


def test_malformed_values_are_kept_and_never_break_a_read(archive: WebArchive,
                                                          tmp_path: Path) -> None:
    # A careless modality sends values their VRs do not allow: kept exactly as sent.
    inst = Instance()
    sent = inst.part10(inst.dataset(InstanceNumber="1£", SliceThickness="abc",
                                    study_date="2024-13-45"))
    r = stow(archive, sent)
    assert r.status_code == 200, r.text
    assert sent in [p.read_bytes() for p in archive.files()]
    archive.wait_indexed(inst.study, 1)

    with archive.http(READ) as http:
        # QIDO-RS: the instance is found; the values that do not parse come back empty.
        r = http.get("/instances", params={"StudyInstanceUID": inst.study,
                                           "includefield": "InstanceNumber,StudyDate"})
        assert r.status_code == 200, r.text
        [found] = r.json()
        assert found["00080018"]["Value"] == [inst.sop]
        assert "Value" not in found["00200013"] and "Value" not in found["00080020"]
        r = http.get(f"/studies/{inst.study}/series/{inst.series}/instances")
        assert r.status_code == 200 and len(r.json()) == 1
        r = http.get("/studies", params={"StudyInstanceUID": inst.study})
        assert r.status_code == 200 and "Value" not in r.json()[0]["00080020"]
        # WADO-RS metadata answers; the object itself comes back byte for byte.
        r = http.get(f"/studies/{inst.study}/metadata",
                     headers={"Accept": "application/dicom+json"})
        assert r.status_code == 200, r.text
        assert r.json()[0]["00080018"]["Value"] == [inst.sop]
        r = http.get(f"/studies/{inst.study}/series/{inst.series}/instances/{inst.sop}",
                     headers={"Accept": 'multipart/related; type="application/dicom"'})
        assert r.status_code == 200 and sent in r.content

    # C-FIND at IMAGE level asking for those attributes: Success with the match, not 0xC311.
    code, answers, output = archive.findscu(
        "QueryRetrieveLevel=IMAGE", f"StudyInstanceUID={inst.study}", "SOPInstanceUID",
        "InstanceNumber", "StudyDate")
    assert code == 0, output
    assert [str(a.SOPInstanceUID) for a in answers] == [inst.sop]
    assert answers[0].get("InstanceNumber") in (None, "")


@pytest.mark.parametrize("body, reason", [
    (unknown_vr(), "unknown VR"),
    (nested_sequences(900), "nested deeper"),
    (never_closed(), "truncated"),
])
def test_unparsable_encodings_are_not_understood(archive: WebArchive, tmp_path: Path,
                                                 body: bytes, reason: str) -> None:
    before = archive.files()
    # STOW-RS: 409, FailureReason 0xC000, the one-line reason in the Warning header.
    inst = Instance()
    r = stow(archive, inst.part10(inst.dataset(body)))
    assert r.status_code == 409, r.text
    assert failure_reasons(r) == [st.CANNOT_UNDERSTAND]
    assert reason in r.headers["Warning"]
    # C-STORE: 0xC000.
    inst = Instance()
    path = tmp_path / "hostile.dcm"
    path.write_bytes(inst.part10(inst.dataset(body * 40 if body is unknown_vr() else body)))
    assert c_store(archive.dimse_port, [path]) == [st.CANNOT_UNDERSTAND]
    assert archive.files() == before
    # One bounded log line per refusal; no traceback.
    lines = gateway_log_lines(archive)
    assert all(len(line) < 2000 for line in lines), max(lines, key=len)[:300]
    assert not any("RecursionError" in line or "Traceback" in line for line in lines)


def vm_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} for {pid}")


def test_decompression_bombs_are_refused_in_bounded_memory(archive: WebArchive,
                                                           tmp_path: Path) -> None:
    inst, bomb = deflate_bomb(300)  # ~300 KB that inflate to 300 MB each
    path = tmp_path / "bomb.dcm"
    path.write_bytes(bomb)
    pid = archive.gateway.process.pid
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # peak RSS := current RSS
    before_kb = vm_kb(pid, "VmRSS")

    # Eight at once through each door: 0xA700 / 413, nothing stored.
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        dimse = [pool.submit(c_store, archive.dimse_port, [path], DEFLATED_LE)
                 for _ in range(8)]
        web = [pool.submit(stow, archive, bomb) for _ in range(8)]
        statuses = [f.result(timeout=120) for f in dimse]
        answers = [f.result(timeout=120) for f in web]
    assert statuses == [[st.OUT_OF_RESOURCES]] * 8
    assert [r.status_code for r in answers] == [413] * 8
    assert failure_reasons(answers[0]) == [st.OUT_OF_RESOURCES]
    assert "inflates beyond" in answers[0].headers["Warning"]
    assert inst.sop not in {p.stem for p in archive.files()}
    grown_mb = (vm_kb(pid, "VmHWM") - before_kb) / 1024
    assert grown_mb < 200, f"the gateway grew by {grown_mb:.0f} MB for 16 bombs"

    # An honest deflated object still goes through.
    honest = Instance()
    z = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    r = stow(archive, honest.part10(z.compress(honest.dataset()) + z.flush(), DEFLATED_LE))
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("path", [
    "/studies/1.2.3%0A", "/studies/%201.2.3", "/studies/1.2.3%20/metadata",
    "/studies/1.2.3/series/1.2.4%0A/instances", "/studies/1.2.3/series/1.2.4/instances/1.2%0A",
])
def test_uids_in_paths_are_validated(archive: WebArchive, path: str) -> None:
    with archive.http(READ) as http:
        r = http.get(path)
    assert r.status_code == 400, r.text
    assert "invalid" in r.json()["detail"]


def test_http_answers_stay_defined(archive: WebArchive) -> None:
    # A refusal quoting a non-Latin-1 UID: 409 with an ASCII Warning, not a 500.
    inst = Instance(study="1.2.\uff13")
    r = stow(archive, inst.part10(inst.dataset()))
    assert r.status_code == 409, r.text
    assert r.headers["Warning"].isascii() and "1.2." in r.headers["Warning"]
    with archive.http(READ) as http:
        # A 40-digit offset or limit: 400 with the reason.
        for name in ("offset", "limit"):
            r = http.get("/studies", params={name: "9" * 40})
            assert r.status_code == 400 and name in r.json()["detail"], r.text
        # Headers or a URL beyond the limits: 431 / 414, not a closed connection.
        r = http.get("/studies", headers={"X-Filler": "x" * 40_000})
        assert r.status_code == 431, r.text
        r = http.get("/studies", params={"PatientID": "x" * 40_000})
        assert r.status_code == 414, r.text
        assert http.get("/studies", params={"PatientID": "NOBODY"}).status_code == 204


def test_a_client_that_disconnects_mid_upload_is_one_info_line(archive: WebArchive) -> None:
    inst = Instance()
    body, ctype = multipart_dicom([inst.part10(inst.dataset())])
    head = (f"POST /dicomweb/studies HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {ctype}\r\n"
            f"Content-Length: {len(body) + 10_000}\r\n"
            f"Authorization: {archive.headers(WRITE)['Authorization']}\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", archive.http_port), timeout=10) as sock:
        sock.sendall(head + body[: len(body) // 2])
    # The gateway notices, says so once, and keeps answering.
    deadline_lines: list[str] = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not deadline_lines:
        deadline_lines = [line for line in gateway_log_lines(archive)
                          if "disconnected mid-upload" in line]
        time.sleep(0.1)
    assert len(deadline_lines) == 1 and "info" in deadline_lines[0].lower()
    assert not any("Traceback" in line for line in gateway_log_lines(archive))
    with archive.http(READ) as http:
        assert http.get("/studies", params={"PatientID": "NOBODY"}).status_code == 204


def test_an_oversized_head_sent_in_pieces_still_gets_its_status(archive: WebArchive) -> None:
    # A slow client's 40 KB request line arrives in pieces: still 414 with a reason, not the
    # HTTP parser's bare 400 and a reset.
    head = (f"GET /dicomweb/studies?PatientID={'x' * 40_000} HTTP/1.1\r\n"
            "Host: 127.0.0.1\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", archive.http_port), timeout=10) as sock:
        for start in range(0, len(head), 4096):
            sock.sendall(head[start:start + 4096])
            time.sleep(0.01)
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 414"), answer[:200]
