"""A closed volume becomes an IHE PDI ISO 9660 image, burned by xorriso to a regular file as
the drive (command back end), read back and verified; the image is checked with pycdlib,
xorriso, pydicom's FileSet and dcmtk (dcmdump, dcmmkdir STD-GEN-CD)."""

from __future__ import annotations

import asyncio
import re
import subprocess
from pathlib import Path

from pydicom import dcmread
from pydicom.fileset import FileSet

from optical_burner.burning import burn_volume
from optical_burner.volumes import VolumeState
from tests.conftest import dcmtk
from tests.optical.helpers import XORRISO, extract

LEVEL1 = re.compile(r"^[A-Z0-9_]{1,8}\.[A-Z0-9_]{0,3};1$")


def record_keys(dicomdir: Path) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for record in dcmread(dicomdir).DirectoryRecordSequence:
        out.setdefault(record.DirectoryRecordType, set()).update(e.keyword for e in record)
    return out


async def test_volume_burned_by_xorriso_is_valid_pdi_media(
        tmp_path, optical_config, make_archive, new_study, cache):
    drives = [tmp_path / "drive-a.bin", tmp_path / "drive-b.bin"]
    cfg = optical_config(copies=2, burner={
        "backend": "command", "command": f"{XORRISO} -as cdrecord -v dev={{device}} {{iso}}",
        "devices": [f"stdio:{d}" for d in drives]})
    arc, emitted = make_archive(cfg)
    studies = [new_study(), new_study(series=1, per_series=4)]

    # Both studies go whole into the open volume, which is an archive location at once.
    for s in studies:
        result = await arc.archive_study(s.study_uid)
        assert result.status == "archived" and result.labels == ["DVD-000001"]
    archived = emitted.of("StudyArchived")
    assert [(a.tier, a.location, a.verified) for a in archived] == [
        ("optical", "DVD-000001", True)] * 2

    # Closing builds the image; the burn writes two copies with xorriso and verifies them.
    await arc.close_volume("DVD-000001")
    vol = await burn_volume(arc, "DVD-000001")
    assert vol.state == VolumeState.VERIFIED, vol.last_error
    assert [(c.number, c.burned, c.verified, c.exit_status) for c in vol.copies] == [
        (1, True, True, 0), (2, True, True, 0)]
    assert "xorriso" in vol.copies[0].output
    assert [e.copy for e in emitted.of("VolumeBurned")] == [1, 2]
    assert len(emitted.of("VolumeVerified")) == 1

    await asyncio.to_thread(check_media, tmp_path, drives, studies, vol)


def check_media(tmp_path: Path, drives: list[Path], studies: list, vol) -> None:
    """What a reader of the burned medium sees (pycdlib, xorriso, pydicom, dcmtk)."""
    # pycdlib reads the written drive: level-1 names only, every file of the manifest.
    extracted = tmp_path / "extracted"
    names = extract(drives[0], extracted)
    for name in names:
        for part in name.strip("/").split("/"):
            assert LEVEL1.match(part) or "." not in part and len(part) <= 8, name
    assert {"/DICOMDIR.;1", "/README.TXT;1", "/INDEX.HTM;1"} <= set(names)
    n_instances = sum(len(s.files) for s in studies)
    assert sum(n.startswith("/DICOM/") for n in names) == n_instances

    # xorriso itself lists the drive's content.
    ls = subprocess.run([XORRISO, "-indev", str(drives[1]), "-find", "/", "-type", "f"],
                        capture_output=True, text=True, check=True)
    found = [line.strip("'") for line in ls.stdout.split() if line.startswith("'/")]
    assert "/DICOMDIR" in found and "/README.TXT" in found
    assert sum(f.startswith("/DICOM/") for f in found) == n_instances
    top = subprocess.run([XORRISO, "-indev", str(drives[1]), "-ls", "/"],
                         capture_output=True, text=True, check=True)
    assert "Volume id    : 'DVD_000001'" in top.stderr + top.stdout

    # pydicom loads the DICOMDIR; every referenced file exists and is byte-identical.
    fs = FileSet(extracted / "DICOMDIR")
    assert fs.ID == "DVD_000001"
    originals = {dcmread(p, stop_before_pixels=True).SOPInstanceUID: p.read_bytes()
                 for s in studies for p in s.files}
    seen = set()
    paths = {}
    for instance in fs:
        paths[instance.SOPInstanceUID] = Path(instance.path).relative_to(extracted).as_posix()
        assert paths[instance.SOPInstanceUID].startswith("DICOM/")
        assert Path(instance.path).is_file()
        assert Path(instance.path).read_bytes() == originals[instance.SOPInstanceUID]
        seen.add(instance.SOPInstanceUID)
    assert seen == set(originals)
    assert set(fs.find_values("StudyInstanceUID")) == {s.study_uid for s in studies}

    # dcmtk: dcmdump parses the DICOMDIR; dcmmkdir (STD-GEN-CD) accepts the file-set.
    dump = subprocess.run([dcmtk("dcmdump"), str(extracted / "DICOMDIR")],
                          capture_output=True, text=True)
    assert dump.returncode == 0, dump.stderr
    assert "DirectoryRecordSequence" in dump.stdout
    assert dump.stdout.count("IMAGE") >= n_instances
    assert "DICOM\\PT000000\\ST000000\\SE000000\\IM000000" in dump.stdout
    check = subprocess.run([dcmtk("dcmmkdir"), "-Pgp", "+U", "+r", "-W", "+id", str(extracted),
                            "+D", str(extracted / "DICOMDIR"), "DICOM"],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "error" not in (check.stdout + check.stderr).lower(), check.stdout + check.stderr
    # Our records carry the same attributes as those dcmmkdir writes for STD-GEN-CD.
    fresh = tmp_path / "DICOMDIR.dcmtk"
    subprocess.run([dcmtk("dcmmkdir"), "-Pgp", "+r", "+id", str(extracted), "+D", str(fresh),
                    "DICOM"], capture_output=True, text=True, check=True)
    assert record_keys(extracted / "DICOMDIR") == record_keys(fresh)
    # … and the manifest's image paths are the DICOMDIR's.
    assert {i.sop_instance_uid: i.file_id for s in vol.studies for i in s.instances} == paths
