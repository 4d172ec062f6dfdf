"""A stored value its VR forbids (issue 13 item 1) does not stop a volume's DICOMDIR: the
record gets a placeholder, the file under DICOM/ keeps the bytes as received, and dcmdump
reads the DICOMDIR back."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

from optical_burner.image import build_tree
from optical_burner.volumes import InstanceEntry, StudyEntry, Volume
from tests.conftest import dcmtk
from tests.peers.hostile import EXPLICIT_LE, SC, Instance


def test_dicomdir_of_an_instance_with_malformed_values(tmp_path: Path) -> None:
    inst = Instance()
    data = inst.part10(inst.dataset(InstanceNumber="1£", SliceThickness="abc",
                                    study_date="2024-13-45"))
    key = f"{inst.study}/{inst.series}/{inst.sop}.dcm"
    (tmp_path / "data" / key).parent.mkdir(parents=True)
    (tmp_path / "data" / key).write_bytes(data)
    entry = InstanceEntry(sop_instance_uid=inst.sop, series_instance_uid=inst.series,
                          sop_class_uid=SC, transfer_syntax_uid=EXPLICIT_LE, storage_key=key,
                          size_bytes=len(data), sha256=hashlib.sha256(data).hexdigest())
    vol = Volume(label="CD-000001", archive_id="optical1", media_type="CD-R",
                 capacity_bytes=700 * 2**20, usable_bytes=690 * 2**20,
                 studies=[StudyEntry(study_instance_uid=inst.study, patient_id="HOST01",
                                     instances=[entry])])

    files = build_tree(vol, tmp_path / "data", tmp_path / "stage")

    root = tmp_path / "stage" / "root"
    assert (root / entry.file_id).read_bytes() == data  # the bytes as received
    assert files[entry.file_id] == entry.sha256
    dump = subprocess.run([dcmtk("dcmdump"), str(root / "DICOMDIR")], capture_output=True,
                          text=True, timeout=30)
    assert dump.returncode == 0, dump.stderr
    assert inst.sop in dump.stdout and "(0020,0013) IS [1]" in dump.stdout, dump.stdout[-2000:]
