"""C-GET as a viewer sees it: dcmtk getscu receives the study (series) on its own association
with the bytes the modality sent. Real gateway, real catalogue process, real broker."""

from __future__ import annotations

from pathlib import Path

from pydicom import dcmread

from dicom_gateway import statuses as st
from tests.gateway import retrieve_peers
from tests.gateway.conftest import sample
from tests.gateway.retrieve_peers import (
    final_status,
    getscu,
    modalities,
    stored_study,
)
from tests.peers.datasets import dataset_bytes

catalogue = retrieve_peers.catalogue  # fixture


def received(folder: Path) -> dict[str, Path]:
    return {str(dcmread(p, stop_before_pixels=True).SOPInstanceUID): p
            for p in folder.iterdir() if p.is_file()}


def test_study_and_series_got_byte_for_byte(start_gateway, catalogue, tmp_path: Path) -> None:
    gw = start_gateway(catalogue_url=catalogue, modalities=modalities(0, READONLY={
        "may_retrieve": False}))
    study = stored_study(gw, catalogue, tmp_path / "sent", series=2, per_series=2)
    sent = dict(zip(study.sop_uids, study.files, strict=True))
    before = gw.metrics()

    # Study Root, STUDY level: every instance, dataset bytes unchanged.
    rc, out = getscu(gw.port, tmp_path / "got-study", "QueryRetrieveLevel=STUDY",
                     f"StudyInstanceUID={study.study_uid}")
    assert rc == 0 and final_status(out) == st.SUCCESS, out
    got = received(tmp_path / "got-study")
    assert set(got) == set(study.sop_uids)
    for uid, path in got.items():
        assert dataset_bytes(path) == dataset_bytes(sent[uid]), uid

    # Patient Root, SERIES level: that series only.
    series_uid, sops = list(study.series.items())[1]
    rc, out = getscu(gw.port, tmp_path / "got-series", "QueryRetrieveLevel=SERIES",
                     f"PatientID={study.patient_id}", f"StudyInstanceUID={study.study_uid}",
                     f"SeriesInstanceUID={series_uid}", root="-P")
    assert rc == 0 and final_status(out) == st.SUCCESS, out
    assert set(received(tmp_path / "got-series")) == set(sops)

    # An AE without may_retrieve gets nothing and is told so.
    rc, out = getscu(gw.port, tmp_path / "got-none", "QueryRetrieveLevel=STUDY",
                     f"StudyInstanceUID={study.study_uid}", calling="READONLY")
    assert final_status(out) == st.NOT_PERMITTED, out
    assert received(tmp_path / "got-none") == {}

    after = gw.metrics()
    name, labels = "dicomvault_gateway_retrieve_requests_total", {"operation": "get", "status": "0x0000"}
    assert sample(after, name, **labels) - sample(before, name, **labels) == 2
