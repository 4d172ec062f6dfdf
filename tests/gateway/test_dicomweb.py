"""DICOMweb on the gateway (real catalogue and gateway processes, real broker, dicomweb-client
and dcmtk as the other side): STOW-RS, QIDO-RS and WADO-RS round trips, the refusals, and a
study sent one way retrieved or found the other way."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pydicom import dcmread

from dicomvault.bus import Publisher
from dicomvault.bus.broker import EmbeddedBroker
from dicomvault.events import Event
from dicomvault.events.v1 import events_pb2 as ev
from tests.gateway.conftest import read_events
from tests.gateway.dicomweb_peers import (
    ADMIN,
    READ,
    WRITE,
    Issuer,
    WebArchive,
    bus_settings_for,
    multipart_dicom,
    raw_parts,
)
from tests.peers.datasets import dataset_bytes, write_study


@pytest.fixture(scope="module")
def archive(broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[WebArchive]:
    folder = tmp_path_factory.mktemp("dicomweb")
    a = WebArchive(folder, bus_settings_for(broker), Issuer(folder))
    try:
        yield a.start()
    finally:
        a.stop()


def test_stow_qido_wado_round_trip(archive: WebArchive, tmp_path: Path) -> None:
    study = write_study(tmp_path / "in", series=2, per_series=2, patient_id="WEB001",
                        modalities=("CT", "MR"))
    sent = {dcmread(p).SOPInstanceUID: p.read_bytes() for p in study.files}
    client = archive.client()

    # STOW-RS: every instance stored, each with its RetrieveURL.
    answer = client.store_instances([dcmread(p) for p in study.files])
    refs = answer.ReferencedSOPSequence
    assert {r.ReferencedSOPInstanceUID for r in refs} == set(sent)
    assert "FailedSOPSequence" not in answer
    assert answer.RetrieveURL == f"{archive.url}/studies/{study.study_uid}"
    # The cache holds the bytes as sent.
    assert sorted(p.read_bytes() for p in archive.files()) == sorted(sent.values())
    archive.wait_indexed(study.study_uid, 4)

    # QIDO-RS: study, series and instance level, by keyword and by tag.
    found = client.search_for_studies(search_filters={"PatientID": "WEB001"})
    assert len(found) == 1
    row = found[0]
    assert row["0020000D"]["Value"] == [study.study_uid]
    assert row["00201208"]["Value"] == [4]  # NumberOfStudyRelatedInstances
    assert row["00201206"]["Value"] == [2]  # NumberOfStudyRelatedSeries
    assert sorted(row["00080061"]["Value"]) == ["CT", "MR"]  # ModalitiesInStudy
    assert row["00100010"]["Value"] == [{"Alphabetic": "DOE^JANE"}]
    assert client.search_for_studies(search_filters={"00100020": "WEB001"}) == found
    series = client.search_for_series(study.study_uid)
    assert {s["0020000E"]["Value"][0] for s in series} == set(study.series)
    assert all(s["00201209"]["Value"] == [2] for s in series)
    ct = client.search_for_series(search_filters={"Modality": "CT", "PatientID": "WEB001"})
    assert len(ct) == 1
    instances = client.search_for_instances(study.study_uid)
    assert {i["00080018"]["Value"][0] for i in instances} == set(sent)
    page = client.search_for_instances(study.study_uid, limit=3, offset=2)
    assert len(page) == 2

    # WADO-RS: the study, a series and one instance, byte for byte.
    parts = raw_parts(client, f"{archive.url}/studies/{study.study_uid}")
    assert sorted(parts) == sorted(sent.values())
    series_uid, sops = next(iter(study.series.items()))
    parts = raw_parts(client, f"{archive.url}/studies/{study.study_uid}/series/{series_uid}")
    assert sorted(parts) == sorted(sent[s] for s in sops)
    one = raw_parts(client, f"{archive.url}/studies/{study.study_uid}/series/{series_uid}"
                            f"/instances/{sops[0]}", 'multipart/related; type="application/'
                            'dicom"; transfer-syntax=*')
    assert one == [sent[sops[0]]]
    datasets = client.retrieve_study(study.study_uid)
    assert {d.SOPInstanceUID for d in datasets} == set(sent)

    # Metadata: the header attributes as DICOM JSON, the pixel data as a BulkDataURI.
    meta = client.retrieve_study_metadata(study.study_uid)
    assert len(meta) == 4
    assert all("InlineBinary" not in m["7FE00010"] and m["00100020"]["Value"] == ["WEB001"]
               for m in meta)
    inst = client.retrieve_instance_metadata(study.study_uid, series_uid, sops[0])
    assert inst["00080018"]["Value"] == [sops[0]]


def test_cstore_study_retrieved_by_wado_and_stow_study_found_by_cfind(
        archive: WebArchive, tmp_path: Path) -> None:
    # A modality sends by C-STORE (dcmtk storescu); a viewer retrieves by WADO-RS.
    dimse = write_study(tmp_path / "dimse", series=1, per_series=3, patient_id="DIMSE01")
    done = archive.storescu(dimse.files)
    assert done.returncode == 0, done.stdout + done.stderr
    archive.wait_indexed(dimse.study_uid, 3)
    client = archive.client()
    parts = raw_parts(client, f"{archive.url}/studies/{dimse.study_uid}")
    # The stored file (file meta written by the gateway from the association) comes back
    # byte for byte, and its dataset is the modality's, byte for byte.
    assert sorted(bytes(p) for p in parts) == sorted(p.read_bytes() for p in archive.files()
                                                     if dimse.study_uid in str(p))
    assert sorted(dataset_bytes(p) for p in parts) == sorted(
        dataset_bytes(p.read_bytes()) for p in dimse.files)

    # A viewer sends by STOW-RS; a modality finds it by C-FIND (dcmtk findscu).
    web = write_study(tmp_path / "web", series=1, per_series=2, patient_id="STOW01")
    client.store_instances([dcmread(p) for p in web.files])
    archive.wait_indexed(web.study_uid, 2)
    code, answers, output = archive.findscu(
        "QueryRetrieveLevel=STUDY", "PatientID=STOW01", "StudyInstanceUID",
        "NumberOfStudyRelatedInstances")
    assert code == 0, output
    assert [a.StudyInstanceUID for a in answers] == [web.study_uid]
    assert answers[0].NumberOfStudyRelatedInstances == 2


def post(archive: WebArchive, path: str, body: bytes, content_type: str,
         *scopes: str) -> httpx.Response:
    with archive.http(*(scopes or (WRITE,))) as http:
        return http.post(path, content=body, headers={"Content-Type": content_type})


def test_stow_refusals_store_nothing(archive: WebArchive, tmp_path: Path) -> None:
    study = write_study(tmp_path / "s", series=1, per_series=2, patient_id="BAD01")
    good = study.files[0].read_bytes()
    before = archive.files()
    body, ctype = multipart_dicom([good])

    # Wrong media types: 415.
    r = post(archive, "/studies", good, "application/dicom")
    assert r.status_code == 415 and "multipart/related" in r.json()["detail"]
    r = post(archive, "/studies", body, ctype.replace("application/dicom", "application/dicom+json"))
    assert r.status_code == 415
    # Broken bodies: 400 with the reason.
    r = post(archive, "/studies", body, 'multipart/related; type="application/dicom"')
    assert r.status_code == 400 and "boundary" in r.json()["detail"]
    r = post(archive, "/studies", body[: len(body) // 2], ctype)
    assert r.status_code == 400 and "truncated" in r.json()["detail"]
    r = post(archive, "/studies", b"no parts at all", ctype)
    assert r.status_code == 400
    assert archive.files() == before

    # Every part refused: 409 with a FailureReason per part.
    other = write_study(tmp_path / "o", series=1, per_series=1)
    not_dicom, _ = multipart_dicom([b"hello, not DICOM", other.files[0].read_bytes()])
    r = post(archive, f"/studies/{study.study_uid}", not_dicom, ctype)
    assert r.status_code == 409
    failed = r.json()["00081198"]["Value"]
    assert [f["00081197"]["Value"][0] for f in failed] == [0xC000, 0xA900]
    assert archive.files() == before

    # Some stored, some refused: 202; the stored one is really there.
    mixed, _ = multipart_dicom([good, other.files[0].read_bytes()])
    r = post(archive, f"/studies/{study.study_uid}", mixed, ctype)
    assert r.status_code == 202, r.text
    answer = r.json()
    assert len(answer["00081199"]["Value"]) == 1 and len(answer["00081198"]["Value"]) == 1
    assert answer["00081198"]["Value"][0]["00081197"]["Value"] == [0xA900]
    assert good in [p.read_bytes() for p in archive.files()]

    # Same SOP Instance UID with other bytes (policy reject): 409, 0x0111, first copy kept.
    changed = dcmread(study.files[0])
    changed.StudyDescription = "CHANGED"
    changed_path = tmp_path / "changed.dcm"
    changed.save_as(changed_path, enforce_file_format=True)
    dup, _ = multipart_dicom([changed_path.read_bytes()])
    r = post(archive, "/studies", dup, ctype)
    assert r.status_code == 409
    assert r.json()["00081198"]["Value"][0]["00081197"]["Value"] == [0x0111]
    assert good in [p.read_bytes() for p in archive.files()]
    # The identical bytes again: 200 (one copy).
    again, _ = multipart_dicom([good])
    assert post(archive, "/studies", again, ctype).status_code == 200


def test_qido_parameters(archive: WebArchive, tmp_path: Path) -> None:
    study = write_study(tmp_path / "q", series=1, per_series=1, patient_id="QIDO01",
                        accession="ACCQ1")
    archive.client().store_instances([dcmread(study.files[0])])
    archive.wait_indexed(study.study_uid, 1)
    with archive.http(READ) as http:
        r = http.get("/studies", params={"PatientID": "QIDO01", "includefield": "00080050,"
                                         "StudyDescription"})
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("application/dicom+json")
        [row] = r.json()
        assert row["00080050"]["Value"] == ["ACCQ1"] and row["00081030"]["Value"] == ["CHEST"]
        assert row["00081190"]["Value"] == [f"{archive.url}/studies/{study.study_uid}"]
        r = http.get("/studies", params={"PatientID": "QIDO01", "includefield": "all"})
        assert "00080090" in r.json()[0]  # ReferringPhysicianName
        r = http.get("/studies", params={"PatientID": "QIDO0*", "StudyDate": "20240101-20241231"})
        assert [x["00100020"]["Value"] for x in r.json()] == [["QIDO01"]]
        # No match: 204 No Content (PS3.18 10.6.3.1).
        r = http.get("/studies", params={"PatientID": "NOBODY"})
        assert r.status_code == 204 and r.content == b""
        # fuzzymatching=true: literal matching, said in a Warning header.
        r = http.get("/studies", params={"PatientID": "QIDO01", "fuzzymatching": "true"})
        assert r.status_code == 200 and "fuzzymatching" in r.headers["warning"]
        # Bad parameters: 400 with the reason.
        for params, words in [({"NoSuchKey": "1"}, "neither"), ({"limit": "-1"}, "limit"),
                              ({"limit": "x"}, "limit"), ({"offset": "a"}, "offset"),
                              ({"fuzzymatching": "maybe"}, "true or false"),
                              ({"PatientAge": "040Y"}, "not supported"),
                              ({"StudyDate": "2024-bad"}, "StudyDate"),
                              ({"includefield": "Bogus"}, "includefield"),
                              ({"ReferencedStudySequence.StudyInstanceUID": "1.2"}, "sequence")]:
            r = http.get("/studies", params=params)
            assert r.status_code == 400, (params, r.text)
            assert words in r.json()["detail"], (params, r.text)
        assert http.get("/studies/not..a..uid/series").status_code == 400


def test_wado_refusals(archive: WebArchive, tmp_path: Path) -> None:
    study = write_study(tmp_path / "w", series=1, per_series=1, patient_id="WADO01")
    archive.client().store_instances([dcmread(study.files[0])])
    archive.wait_indexed(study.study_uid, 1)
    series_uid = next(iter(study.series))
    with archive.http(READ) as http:
        assert http.get("/studies/1.2.3.4.5.6.7.8.9").status_code == 404
        assert http.get(f"/studies/{study.study_uid}/series/1.2.3.4").status_code == 404
        assert http.get("/studies/..%2F..%2Fetc").status_code in (400, 404)
        # A transfer syntax the stored one cannot be converted to (12-bit to JPEG baseline): 406.
        r = http.get(f"/studies/{study.study_uid}", headers={
            "Accept": 'multipart/related; type="application/dicom"; '
                      "transfer-syntax=1.2.840.10008.1.2.4.50"})
        assert r.status_code == 406 and "1.2.840.10008.1.2.1" in r.json()["detail"]
        # The stored one, asked by name: fine.
        r = http.get(f"/studies/{study.study_uid}/series/{series_uid}", headers={
            "Accept": 'multipart/related; type="application/dicom"; '
                      "transfer-syntax=1.2.840.10008.1.2.1"})
        assert r.status_code == 200 and study.files[0].read_bytes() in r.content
        r = http.get(f"/studies/{study.study_uid}/metadata", headers={"Accept": "image/png"})
        assert r.status_code == 406


async def test_a_study_not_in_the_cache_asks_for_a_recall(archive: WebArchive,
                                                          tmp_path: Path) -> None:
    study = write_study(tmp_path / "r", series=1, per_series=2, patient_id="RECALL01")
    client = archive.client()
    await asyncio.to_thread(client.store_instances, [dcmread(p) for p in study.files])
    await asyncio.to_thread(archive.wait_indexed, study.study_uid, 2)
    # The cache copy of one instance is gone (purged after archiving, say).
    gone = next(p for p in archive.files() if p.name == f"{study.sop_uids[1]}.dcm")
    gone.unlink()
    # The two requests below must fall in one Retry-After window (the gateway's default
    # recall_retry_after_s, 60 s): not in a window's last seconds.
    if time.time() % 60 > 55:
        await asyncio.sleep(60.5 - time.time() % 60)
    async with httpx.AsyncClient(base_url=archive.url, headers=archive.headers(READ),
                                 timeout=30) as http:
        r = await http.get(f"/studies/{study.study_uid}")
        assert r.status_code == 503 and int(r.headers["retry-after"]) > 0
        assert "recall has been requested" in r.text
        r = await http.get(f"/studies/{study.study_uid}/metadata")
        assert r.status_code == 503
    events = await read_events(archive.bus, archive.bus.topics.studies, 1)
    recalls = [e for e in events if e.type == "dicomvault.study.recall-requested.v1"]
    assert recalls, [e.type for e in events]
    recall: Event = recalls[0]
    assert recall.subject == study.study_uid
    assert recall.payload.study_instance_uid == study.study_uid
    assert list(recall.payload.sop_instance_uids) == [study.sop_uids[1]]
    assert recall.payload.requested_by == "dicomweb"
    # Two requests within one Retry-After window are one fact (same event id).
    assert len({e.id for e in recalls}) == 1


async def test_an_evicted_study_asks_for_a_recall_not_404(archive: WebArchive,
                                                         tmp_path: Path) -> None:
    """After a real eviction (StudyEvicted projected: the catalogue keeps the instances but
    no cache location, the archive copy per study), WADO-RS answers 503 + a recall of every
    instance, never 404."""
    study = write_study(tmp_path / "e", series=1, per_series=2, patient_id="EVICT01")
    client = archive.client()
    await asyncio.to_thread(client.store_instances, [dcmread(p) for p in study.files])
    await asyncio.to_thread(archive.wait_indexed, study.study_uid, 2)
    evicted = Event(payload=ev.StudyEvicted(
        study_instance_uid=study.study_uid, tier="cache", archive_id="cache",
        location=study.study_uid, reason="test: archived elsewhere"),
        source="tests/gateway", subject=study.study_uid)
    async with Publisher(archive.bus, client_id="test-evict") as publisher:
        await publisher.publish(archive.bus.topics.studies, evicted, key=study.study_uid)
    catalogue = f"http://127.0.0.1:{archive.catalogue_port}/api/v1/studies/{study.study_uid}"
    async with httpx.AsyncClient(timeout=10) as http:
        for _ in range(300):
            r = await http.get(f"{catalogue}/instances", params={"tier": "cache"})
            if r.status_code == 200 and r.json() == []:
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError(f"the catalogue still lists cache copies: {r.text}")
    for path in archive.files():
        if path.stem in study.sop_uids:
            path.unlink()
    async with httpx.AsyncClient(base_url=archive.url, headers=archive.headers(READ),
                                 timeout=30) as http:
        r = await http.get(f"/studies/{study.study_uid}")
        assert r.status_code == 503 and int(r.headers["retry-after"]) > 0, r.text
        assert "2 instance(s)" in r.text and "recall has been requested" in r.text
        series = f"/studies/{study.study_uid}/series/{next(iter(study.series))}"
        assert (await http.get(series)).status_code == 503
        assert (await http.get(f"{series}/instances/{study.sop_uids[0]}")).status_code == 503
        # What the catalogue never heard of stays 404.
        assert (await http.get(f"{series}/instances/1.2.3.999")).status_code == 404
    events = await read_events(archive.bus, archive.bus.topics.studies, 2)
    recalls = [e.payload for e in events if e.type == "dicomvault.study.recall-requested.v1"
               and e.subject == study.study_uid]
    assert sorted(recalls[0].sop_instance_uids) == sorted(study.sop_uids), recalls


def test_tokens(archive: WebArchive, tmp_path: Path) -> None:
    study = write_study(tmp_path / "t", series=1, per_series=1, patient_id="TOKEN01")
    body, ctype = multipart_dicom([study.files[0].read_bytes()])
    issuer = archive.issuer
    before = archive.files()

    def stow(headers: dict[str, str]) -> httpx.Response:
        return httpx.post(f"{archive.url}/studies", content=body, timeout=30,
                          headers={"Content-Type": ctype, **headers})

    def bearer(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    # Missing, expired, wrongly issued, wrong audience, unknown key, not a bearer: 401.
    from cryptography.hazmat.primitives.asymmetric import rsa

    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cases = {
        "missing": {},
        "expired": bearer(issuer.token(WRITE, expires_in=-3600)),
        "issuer": bearer(issuer.token(WRITE, issuer="https://evil.test")),
        "audience": bearer(issuer.token(WRITE, audience="someone-else")),
        "key": bearer(issuer.token(WRITE, key=stranger)),
        "garbage": bearer("not.a.jwt"),
        "basic": {"Authorization": "Basic dXNlcjpwYXNz"},
    }
    for name, headers in cases.items():
        r = stow(headers)
        assert r.status_code == 401, (name, r.text)
        assert r.headers["www-authenticate"].startswith("Bearer"), name
    assert 'error="invalid_token"' in stow(cases["expired"]).headers["www-authenticate"]
    with httpx.Client(base_url=archive.url, timeout=30) as http:
        assert http.get("/studies").status_code == 401
    # A read-only token cannot store: 403, insufficient_scope.
    r = stow(bearer(issuer.token(READ)))
    assert r.status_code == 403
    assert 'error="insufficient_scope"' in r.headers["www-authenticate"]
    assert archive.files() == before
    # A write-only token cannot search.
    r = httpx.get(f"{archive.url}/studies", headers=bearer(issuer.token(WRITE)), timeout=30)
    assert r.status_code == 403
    # The write scope (ES256-signed here) stores; admin may do everything.
    assert stow(bearer(issuer.token(WRITE, alg="ES256"))).status_code == 200
    assert len(archive.files()) == len(before) + 1
    archive.wait_indexed(study.study_uid, 1)
    r = httpx.get(f"{archive.url}/studies", params={"PatientID": "TOKEN01"},
                  headers=bearer(issuer.token(ADMIN)), timeout=30)
    assert r.status_code == 200 and len(r.json()) == 1
    # /metrics and health stay open (scraped by Prometheus, probed by the kubelet).
    assert httpx.get(f"http://127.0.0.1:{archive.http_port}/healthz").status_code == 200
