"""Orthanc's DICOMweb client plugin against our DICOMweb server: it searches us (QIDO-RS)
and retrieves a study from us (WADO-RS) into its own storage, bytes intact."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydicom import dcmread

from dicomvault.bus.broker import EmbeddedBroker
from tests.gateway.dicomweb_peers import READ, Issuer, WebArchive, bus_settings_for
from tests.peers.datasets import write_study
from tests.peers.orthanc import Orthanc


@pytest.fixture
def archive(broker: EmbeddedBroker, tmp_path: Path) -> Iterator[WebArchive]:
    folder = tmp_path / "vault"
    folder.mkdir()
    a = WebArchive(folder, bus_settings_for(broker), Issuer(folder))
    try:
        yield a.start()
    finally:
        a.stop()


def test_orthanc_queries_and_retrieves_from_our_dicomweb(archive: WebArchive,
                                                          tmp_path: Path) -> None:
    study = write_study(tmp_path / "in", series=2, per_series=2, patient_id="ORTHANC01")
    archive.client().store_instances([dcmread(p) for p in study.files])
    archive.wait_indexed(study.study_uid, 4)
    token = archive.issuer.token(READ, expires_in=3600)
    servers = {"vault": {"Url": f"{archive.url}/",
                         "HttpHeaders": {"Authorization": f"Bearer {token}"}}}
    with Orthanc(tmp_path / "orthanc", extra_config={
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "Servers": servers}}) as orthanc:
        http = orthanc.rest
        # QIDO-RS through Orthanc's client.
        r = http.post("/dicom-web/servers/vault/qido",
                      json={"Uri": "/studies", "Arguments": {"PatientID": "ORTHANC01"}})
        assert r.status_code == 200, r.text + orthanc.tail()
        [row] = r.json()  # Orthanc flattens single values: "Value": "<uid>"
        assert row["0020000D"]["Value"] in (study.study_uid, [study.study_uid])
        # WADO-RS: Orthanc pulls the study into its own storage.
        r = http.post("/dicom-web/servers/vault/retrieve", timeout=120,
                      json={"Resources": [{"Study": study.study_uid}], "Synchronous": True})
        assert r.status_code == 200, r.text + orthanc.tail()
        deadline = time.monotonic() + 60
        while len(orthanc.files_by_sop_uid_of(study.study_uid)) < 4 and \
                time.monotonic() < deadline:
            time.sleep(0.2)
        got = orthanc.files_by_sop_uid_of(study.study_uid)
        sent = {dcmread(p).SOPInstanceUID: p.read_bytes() for p in study.files}
        assert set(got) == set(sent)
        for sop, data in got.items():  # Orthanc keeps what it received, as received
            assert data == sent[sop], sop
