"""The IHE PDI media image of a closed volume, and reading an image (or disc) back.

Layout of the ISO 9660 image (interchange level 1: names of at most 8 upper-case letters,
digits or underscores, no extensions except README.TXT and INDEX.HTM)::

    DICOMDIR                          built with pydicom's FileSet (STD-GEN-CD conventions)
    DICOM/PT000000/ST000000/SE000000/IM000000   the instance files, byte-identical
    README.TXT                        what is on the medium and who wrote it
    INDEX.HTM                         optional: the studies as a web page

pydicom's FileSet writes its instances as ``PTxxxxxx/STxxxxxx/SExxxxxx/IMxxxxxx`` at the
root of the file-set. IHE PDI wants them under ``DICOM/``: the instances are moved there and
every record's Referenced File ID gets ``DICOM`` as its first component before the DICOMDIR
is encoded again (pydicom recomputes the record offsets when it encodes). Instances whose
attributes miss a Type 1 key of a directory record get one invented in the *record* only,
as ``dcmmkdir +I`` does; the files on the medium are always the archived bytes.
"""

from __future__ import annotations

import hashlib
import html
import io
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pycdlib
from pydicom import dcmread
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.filebase import DicomFileLike
from pydicom.fileset import FileSet

from dicomvault.dicom.values import conformant
from optical_burner.volumes import ImageInfo, Volume

PUBLISHER = "DICOM Vault optical-burner"

# Type 1 keys of PATIENT/STUDY/SERIES/IMAGE records, with what to invent when missing.
_INVENT = {
    "PatientID": "UNKNOWN", "PatientName": "UNKNOWN", "StudyDate": "19000101",
    "StudyTime": "000000", "StudyID": "1", "AccessionNumber": "", "StudyDescription": "",
    "Modality": "OT", "SeriesNumber": "1", "InstanceNumber": "1",
}


def _usable(ds, keyword: str) -> bool:
    """Whether a DICOMDIR record can carry the instance's value of ``keyword`` as stored: present,
    not empty, and allowed by its VR (a stored InstanceNumber ``1£`` is not)."""
    elem = ds.get_item(keyword)
    if elem is None:
        return False
    raw = elem.value
    text = raw.decode("latin-1").rstrip("\x00 ") if isinstance(raw, bytes) else str(raw or "")
    return text != "" and conformant(dictionary_VR(keyword), text) is not None


class ImageError(RuntimeError):
    """The volume cannot be made into an image (missing or changed files, too large)."""


def volume_id(label: str) -> str:
    """ISO 9660 volume identifier and DICOMDIR File-set ID: d-characters only."""
    return label.replace("-", "_").upper()[:16]


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def build_tree(vol: Volume, data_root: Path, stage: Path, index: bool = True) -> dict[str, str]:
    """Write the PDI file tree of ``vol`` under ``stage``; return path -> sha256 of every file.

    Sets ``file_id`` of every instance entry of ``vol``.
    """
    shutil.rmtree(stage, ignore_errors=True)
    pydicom_root, root = stage / "fileset", stage / "root"
    root.mkdir(parents=True)
    fs = FileSet()
    fs.ID = volume_id(vol.label)
    originals: dict[str, Path] = {}
    entries = {}
    for study in vol.studies:
        for inst in study.instances:
            path = data_root / inst.storage_key
            if not path.is_file() or sha256_file(path) != inst.sha256:
                raise ImageError(f"{vol.label}: instance {inst.sop_instance_uid} is missing or "
                                 "does not match its checksum")
            originals[inst.sop_instance_uid] = path
            entries[inst.sop_instance_uid] = inst
            try:
                fs.add(path)
            except (ValueError, Warning):  # a record key missing, or one its VR forbids
                ds = dcmread(path)
                for keyword, value in _INVENT.items():
                    if not _usable(ds, keyword):  # the record gets it; DICOM/ keeps the bytes
                        tag = tag_for_keyword(keyword)  # replaced unread: no VR warning
                        ds[tag] = DataElement(tag, dictionary_VR(tag), value)
                fs.add(ds)
    fs.write(pydicom_root)

    # Move the instances under DICOM/ (original bytes) and re-point the records.
    written = FileSet(pydicom_root / "DICOMDIR")
    files: dict[str, str] = {}
    for instance in written:
        parts = Path(instance.FileID).parts
        dst = root.joinpath("DICOM", *parts)
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(originals[instance.SOPInstanceUID], dst)
        instance.node._record.ReferencedFileID = ["DICOM", *parts]
        file_id = "/".join(("DICOM", *parts))
        entry = entries[instance.SOPInstanceUID]
        entry.file_id = file_id
        files[file_id] = entry.sha256
    with open(root / "DICOMDIR", "wb") as fp:
        written._write_dicomdir(DicomFileLike(fp))
    (root / "README.TXT").write_bytes(readme(vol).encode("ascii", "replace"))
    files["DICOMDIR"] = sha256_file(root / "DICOMDIR")
    files["README.TXT"] = sha256_file(root / "README.TXT")
    if index:
        (root / "INDEX.HTM").write_bytes(index_htm(vol).encode("utf-8"))
        files["INDEX.HTM"] = sha256_file(root / "INDEX.HTM")
    shutil.rmtree(pydicom_root)
    return files


def build_image(vol: Volume, data_root: Path, out: Path, *, rock_ridge: bool = True,
                joliet: bool = False, index: bool = True) -> ImageInfo:
    """Build the ISO 9660 image of a volume at ``out`` (atomically) and describe it."""
    stage = out.parent / ".stage"
    try:
        files = build_tree(vol, data_root, stage, index)
        root = stage / "root"
        iso = pycdlib.PyCdlib()
        iso.new(interchange_level=1, vol_ident=volume_id(vol.label),
                sys_ident="DICOMVAULT", pub_ident_str=PUBLISHER[:128],
                app_ident_str="DICOM VAULT IHE PDI",
                rock_ridge="1.09" if rock_ridge else None, joliet=3 if joliet else None)
        handles = []
        try:
            for dirpath, dirnames, filenames in os.walk(root):
                dirnames.sort()
                rel = Path(dirpath).relative_to(root)
                for d in dirnames:
                    _add_dir(iso, rel / d, rock_ridge, joliet)
                for f in sorted(filenames):
                    fh = open(Path(dirpath) / f, "rb")  # noqa: SIM115 - kept open for write()
                    handles.append(fh)
                    _add_file(iso, fh, rel / f, rock_ridge, joliet)
            tmp = out.with_suffix(".iso.part")
            out.parent.mkdir(parents=True, exist_ok=True)
            iso.write(str(tmp))
        finally:
            iso.close()
            for fh in handles:
                fh.close()
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, out)
        size = out.stat().st_size
        if size > vol.capacity_bytes:
            out.unlink()
            raise ImageError(f"{vol.label}: image of {size} bytes exceeds the medium "
                             f"({vol.capacity_bytes} bytes)")
        return ImageInfo(path=str(out), size_bytes=size, sha256=sha256_file(out), files=files)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def iso_name(name: str) -> str:
    """Level-1 ISO 9660 file identifier: NAME.EXT;1 (the dot is kept when EXT is empty)."""
    base, _, ext = name.upper().partition(".")
    return f"{base}.{ext};1"


def _add_dir(iso: pycdlib.PyCdlib, rel: Path, rr: bool, joliet: bool) -> None:
    iso.add_directory("/" + "/".join(p.upper() for p in rel.parts),
                      rr_name=rel.name if rr else None,
                      joliet_path=("/" + rel.as_posix()) if joliet else None)


def _add_file(iso: pycdlib.PyCdlib, fh: io.BufferedReader, rel: Path, rr: bool,
              joliet: bool) -> None:
    parents = "/".join(p.upper() for p in rel.parts[:-1])
    iso_path = "/" + (parents + "/" if parents else "") + iso_name(rel.name)
    iso.add_fp(fh, os.fstat(fh.fileno()).st_size, iso_path, rr_name=rel.name if rr else None,
               joliet_path=("/" + rel.as_posix()) if joliet else None)


class _Hasher:
    def __init__(self) -> None:
        self.h = hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.h.update(data)
        return len(data)


def plain_name(iso_name_: str) -> str:
    """'IM000000.;1' -> 'IM000000', 'README.TXT;1' -> 'README.TXT'."""
    return iso_name_.split(";", 1)[0].rstrip(".")


def read_back(image_or_device: Path) -> dict[str, str]:
    """Checksums of every file on an ISO 9660 image or disc, by path (ISO 9660 names)."""
    iso = pycdlib.PyCdlib()
    iso.open(str(image_or_device))
    try:
        out: dict[str, str] = {}
        for dirpath, _dirs, filenames in iso.walk(iso_path="/"):
            for name in filenames:
                hasher = _Hasher()
                full = dirpath.rstrip("/") + "/" + name
                iso.get_file_from_iso_fp(hasher, iso_path=full)
                rel = "/".join(plain_name(p) for p in full.strip("/").split("/"))
                out[rel] = hasher.h.hexdigest()
        return out
    finally:
        iso.close()


def compare(expected: dict[str, str], found: dict[str, str]) -> list[str]:
    """Differences between the manifest's checksums and what was read back."""
    problems = [f"missing {p}" for p in expected if p not in found]
    problems += [f"checksum mismatch {p}" for p in expected
                 if p in found and found[p] != expected[p]]
    problems += [f"unexpected {p}" for p in found if p not in expected]
    return problems


def readme(vol: Volume) -> str:
    lines = [
        "DICOM media (IHE Portable Data for Imaging)",
        "",
        f"Volume:    {vol.label}  (ISO 9660 volume id {volume_id(vol.label)})",
        f"Archive:   {vol.archive_id}",
        f"Medium:    {vol.media_type}",
        f"Written:   {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')} by {PUBLISHER}",
        f"Studies:   {len(vol.studies)}   Instances: {vol.instance_count}",
        "",
        "The DICOMDIR file at the root of this medium lists every DICOM instance, which are",
        "stored under the DICOM folder. Open the medium with a DICOM viewer that reads",
        "DICOMDIR (DICOM PS3.10, General Purpose CD-R/DVD Interchange, STD-GEN-CD).",
        "This medium contains personal health information: keep it safe.",
        "",
        "Studies (part n of m: a study larger than one medium continues on the next volume):",
    ]
    for s in vol.studies:
        span = f"  part {s.part} of {s.parts} ({' + '.join(s.labels)})" if s.parts > 1 else ""
        lines.append(f"  {s.study_instance_uid}  patient {s.patient_id}  "
                     f"{len(s.instances)} instances{span}")
    return "\r\n".join(lines) + "\r\n"


def index_htm(vol: Volume) -> str:
    rows = "\n".join(
        f"<tr><td>{html.escape(s.patient_id)}</td><td>{html.escape(s.study_instance_uid)}</td>"
        f"<td>{len(s.instances)}</td><td>{s.part} / {s.parts}</td></tr>" for s in vol.studies)
    return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{vol.label}</title>"
            f"</head><body><h1>DICOM volume {html.escape(vol.label)}</h1>"
            "<p>The images are in the DICOM folder, listed by the DICOMDIR file; open them "
            "with a DICOM viewer.</p><table border=\"1\"><tr><th>Patient ID</th>"
            f"<th>Study Instance UID</th><th>Instances</th><th>Part</th></tr>\n{rows}\n"
            "</table></body></html>\n")

