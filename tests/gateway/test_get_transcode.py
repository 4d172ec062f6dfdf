"""C-GET and C-MOVE of a JPEG-Lossless-stored study to peers that accept only uncompressed
transfer syntaxes: the gateway decodes on the way out (dcmtk getscu and storescp as the
peers), and the pixels the peer receives are the ones the modality encoded."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
from pydicom import dcmread
from pydicom.uid import generate_uid

from dicom_gateway import statuses as st
from tests.conftest import dcmtk, peer_env
from tests.gateway import retrieve_peers
from tests.gateway.conftest import AE_TITLE, sample, send_files
from tests.gateway.retrieve_peers import (
    RETRIEVER,
    final_status,
    modalities,
    movescu,
    run_storescp,
    wait_catalogued,
)
from tests.peers.datasets import ROOT, gdcm_transcode, make_instance

catalogue = retrieve_peers.catalogue  # fixture
JPEG_LOSSLESS = "1.2.840.10008.1.2.4.70"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
UNCOMPRESSED = {"1.2.840.10008.1.2.1", "1.2.840.10008.1.2", "1.2.840.10008.1.2.2"}


def jpeg_lossless_study(folder: Path, count: int) -> tuple[str, list[Path], list[Path]]:
    """(study UID, native originals, their JPEG Lossless SV1 copies by GDCM)."""
    folder.mkdir(parents=True)
    study, series = generate_uid(ROOT), generate_uid(ROOT)
    plain, encoded = [], []
    for n in range(1, count + 1):
        ds = make_instance(study_uid=study, series_uid=series, instance_number=n,
                           patient_id="TRANSCODE1")
        plain.append(folder / f"{n}.plain.dcm")
        ds.save_as(plain[-1], enforce_file_format=True)
        encoded.append(folder / f"{n}.dcm")
        gdcm_transcode(plain[-1], encoded[-1], JPEG_LOSSLESS)
    return study, plain, encoded


def getscu_prefer_little(port: int, folder: Path, study: str) -> tuple[int, str]:
    folder.mkdir(parents=True)
    done = subprocess.run(
        [dcmtk("getscu"), "-d", "+xe", "-aet", RETRIEVER, "-aec", AE_TITLE, "-S",
         "-od", str(folder), "-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={study}",
         "127.0.0.1", str(port)], env=peer_env(), capture_output=True, text=True, timeout=120)
    return done.returncode, done.stdout + done.stderr


def test_jpeg_lossless_study_reaches_uncompressed_only_peers(start_gateway, catalogue,
                                                             tmp_path: Path) -> None:
    study, plain, encoded = jpeg_lossless_study(tmp_path / "sent", 2)
    by_sop = {str(dcmread(p).SOPInstanceUID): p for p in plain}
    with run_storescp(tmp_path, "+x=") as scp:  # storescp accepting uncompressed only
        gw = start_gateway(catalogue_url=catalogue, modalities=modalities(scp.port))
        # The modality stores JPEG Lossless; the gateway keeps it so.
        ct = str(dcmread(encoded[0]).SOPClassUID)
        assert send_files(gw.port, encoded, contexts=[(ct, [JPEG_LOSSLESS])]) == [0, 0]
        wait_catalogued(catalogue, list(by_sop))
        assert {str(dcmread(p).file_meta.TransferSyntaxUID) for p in gw.files()} == \
            {JPEG_LOSSLESS}

        before = gw.metrics()
        # getscu proposes uncompressed syntaxes only, Explicit VR Little Endian first (+xe).
        rc, out = getscu_prefer_little(gw.port, tmp_path / "got", study)
        assert rc == 0 and final_status(out) == st.SUCCESS, out
        got = [dcmread(p) for p in (tmp_path / "got").iterdir()]
        assert len(got) == 2
        for ds in got:
            assert str(ds.file_meta.TransferSyntaxUID) == EXPLICIT_LE
            original = dcmread(by_sop[str(ds.SOPInstanceUID)])
            assert np.array_equal(ds.pixel_array, original.pixel_array)

        # C-MOVE to a storescp that accepts uncompressed only: the same.
        rc, out = movescu(gw.port, "QueryRetrieveLevel=STUDY", f"StudyInstanceUID={study}")
        assert rc == 0 and final_status(out) == st.SUCCESS, out
        received = scp.received()
        assert set(received) == set(by_sop)
        for sop, path in received.items():
            ds = dcmread(path)
            assert str(ds.file_meta.TransferSyntaxUID) in UNCOMPRESSED
            assert np.array_equal(ds.pixel_array, dcmread(by_sop[sop]).pixel_array)
        # Four conversions counted (two per retrieve).
        name, labels = "dicomvault_gateway_transcodes_total", {"interface": "dimse", "outcome": "converted"}
        assert sample(gw.metrics(), name, **labels) - sample(before, name, **labels) == 4
