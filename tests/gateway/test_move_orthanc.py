"""Another PACS pulls from us: Orthanc asks the gateway for a study with C-MOVE through its
own REST API (``/modalities/{id}/move``), naming itself as the destination; the study arrives
in Orthanc with the data sets byte for byte as the modality sent them. Real gateway, real
catalogue process, real broker, real Orthanc."""

from __future__ import annotations

from pathlib import Path

from tests.gateway import retrieve_peers
from tests.gateway.conftest import AE_TITLE
from tests.gateway.retrieve_peers import stored_study
from tests.peers.datasets import dataset_bytes
from tests.peers.orthanc import Orthanc

catalogue = retrieve_peers.catalogue  # fixture

PACS = "ORTHANC"


def _dataset_bytes(raw: bytes, folder: Path, name: str) -> bytes:
    path = folder / f"{name}.dcm"
    path.write_bytes(raw)
    return dataset_bytes(path)


def test_orthanc_pulls_a_study_by_c_move(start_gateway, catalogue, tmp_path: Path) -> None:
    # The gateway knows Orthanc as a peer that may query and retrieve, and where to send.
    pacs = Orthanc(tmp_path / "orthanc", aet=PACS)
    gw = start_gateway(catalogue_url=catalogue, modalities={
        PACS: {"host": "127.0.0.1", "port": pacs.dicom_port, "may_store": False}})
    pacs.modalities = {"vault": (AE_TITLE, "127.0.0.1", gw.port)}
    study = stored_study(gw, catalogue, tmp_path / "sent", series=2, per_series=2)
    sent = dict(zip(study.sop_uids, study.files, strict=True))

    with pacs:
        # Orthanc's operator asks Orthanc to fetch the study from the archive, to itself.
        r = pacs.rest.post("/modalities/vault/move", json={
            "Level": "Study", "Resources": [{"StudyInstanceUID": study.study_uid}],
            "TargetAet": PACS, "Timeout": 60}, timeout=120)
        assert r.status_code == 200, r.text
        received = pacs.files_by_sop_uid_of(study.study_uid)

        # Every instance arrived, each data set exactly as the modality sent it.
        assert set(received) == set(study.sop_uids)
        folder = tmp_path / "received"
        folder.mkdir()
        for uid, raw in received.items():
            assert _dataset_bytes(raw, folder, uid) == dataset_bytes(sent[uid]), uid

        # Orthanc can also find it with C-FIND through the same modality entry.
        r = pacs.rest.post("/modalities/vault/query", json={
            "Level": "Study", "Query": {"StudyInstanceUID": study.study_uid}}, timeout=60)
        assert r.status_code == 200, r.text
        answers = pacs.rest.get(f"{r.json()['Path']}/answers?expand").json()
        assert [a["0020,000d"]["Value"] for a in answers] == [study.study_uid]
