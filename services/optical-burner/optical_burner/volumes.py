"""Logical volumes and the volume store that keeps them across restarts.

Layout of the volume store (``optical.volume_store``)::

    labels.json                 the last label number handed out (labels are never reused)
    DVD-000042/manifest.json    the volume: state, studies (part n of m), copies, image
    DVD-000042/data/<key>       the instance files, by their cache storage key
    DVD-000042/image/DVD-000042.iso   the IHE PDI image, once Closed

A volume's data folder may be released once it is Verified (the discs hold it): the volume
is then *offline* and a retrieve needs the disc mounted under ``optical.mount_path``.
Every file is written atomically (temp file, fsync, rename).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, Field

from dicomvault.store import FileStore

SECTOR = 2048


def now() -> datetime:
    return datetime.now(UTC)


class VolumeState(StrEnum):
    OPEN = "Open"
    CLOSED = "Closed"
    BURNED = "Burned"
    VERIFIED = "Verified"


class InstanceEntry(BaseModel):
    sop_instance_uid: str
    series_instance_uid: str
    sop_class_uid: str
    transfer_syntax_uid: str
    storage_key: str
    size_bytes: int
    sha256: str                       # the catalogue's checksum, checked on every copy
    file_id: str = ""                 # path inside the image, e.g. DICOM/PT000000/…/IM000000


class StudyEntry(BaseModel):
    study_instance_uid: str
    patient_id: str = ""
    part: int = 1                     # part n of m when the study spans volumes
    parts: int = 1
    labels: list[str] = Field(default_factory=list)  # every part's volume, in part order
    instances: list[InstanceEntry] = Field(default_factory=list)
    size_bytes: int = 0
    written_at: datetime = Field(default_factory=now)


class EvictedEntry(BaseModel):
    """A study part no longer counted on this volume (its spanning study was evicted when
    another of its volumes was deleted). A Closed volume's image still holds the files."""

    study_instance_uid: str
    part: int
    parts: int
    labels: list[str] = Field(default_factory=list)
    number_of_instances: int = 0
    size_bytes: int = 0
    reason: str = ""
    evicted_at: datetime = Field(default_factory=now)


class CopyEntry(BaseModel):
    number: int                       # 1-based copy number
    backend: str
    target: str = ""
    burned: bool = False
    verified: bool = False
    exit_status: int | None = None
    output: str = ""                  # tail of the tool's output
    error: str = ""
    burned_at: datetime | None = None
    verified_at: datetime | None = None


class ImageInfo(BaseModel):
    path: str
    size_bytes: int
    sha256: str
    files: dict[str, str] = Field(default_factory=dict)  # path in image -> sha256


class Volume(BaseModel):
    label: str
    archive_id: str
    media_type: str
    capacity_bytes: int
    usable_bytes: int                 # capacity minus the reserve for file system structures
    state: VolumeState = VolumeState.OPEN
    created_at: datetime = Field(default_factory=now)
    first_write_at: datetime | None = None
    closed_at: datetime | None = None
    close_reason: str = ""
    used_bytes: int = 0               # counted cost: files rounded to sectors + overheads
    data_bytes: int = 0               # sum of instance file sizes
    studies: list[StudyEntry] = Field(default_factory=list)
    evicted: list[EvictedEntry] = Field(default_factory=list)
    image: ImageInfo | None = None
    copies: list[CopyEntry] = Field(default_factory=list)
    burn_attempts: int = 0
    last_error: str = ""
    next_burn_at: datetime | None = None
    released: bool = False            # data folder dropped: the volume is on its discs only

    @property
    def free_bytes(self) -> int:
        return max(0, self.usable_bytes - self.used_bytes)

    @property
    def fill_ratio(self) -> float:
        return self.used_bytes / self.usable_bytes if self.usable_bytes else 1.0

    @property
    def instance_count(self) -> int:
        return sum(len(s.instances) for s in self.studies)

    def study(self, study_uid: str) -> StudyEntry | None:
        return next((s for s in self.studies if s.study_instance_uid == study_uid), None)

    def summary(self) -> dict:
        return {
            "label": self.label, "archive_id": self.archive_id, "media_type": self.media_type,
            "state": self.state.value, "capacity_bytes": self.capacity_bytes,
            "usable_bytes": self.usable_bytes, "used_bytes": self.used_bytes,
            "data_bytes": self.data_bytes, "fill_ratio": self.fill_ratio,
            "created_at": self.created_at, "first_write_at": self.first_write_at,
            "closed_at": self.closed_at, "close_reason": self.close_reason,
            "online": not self.released, "number_of_instances": self.instance_count,
            "studies": [{"study_instance_uid": s.study_instance_uid, "part": s.part,
                         "parts": s.parts, "labels": s.labels,
                         "number_of_instances": len(s.instances), "size_bytes": s.size_bytes}
                        for s in self.studies],
            "evicted": [e.model_dump(mode="json") for e in self.evicted],
            "copies": [c.model_dump() for c in self.copies],
            "burn_attempts": self.burn_attempts, "last_error": self.last_error,
            "image": ({"size_bytes": self.image.size_bytes, "sha256": self.image.sha256,
                       "files": len(self.image.files)} if self.image else None),
        }


def write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fdatasync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dfd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


LABEL_RE = re.compile(r"^[A-Z0-9]{1,10}-\d{6}$")


class VolumeStore:
    """The persistent volumes of one archive (not thread-safe: callers hold one lock)."""

    def __init__(self, root: Path, fsync: bool = True) -> None:
        self.root = Path(root).resolve()
        self.fsync = fsync
        self.root.mkdir(parents=True, exist_ok=True)
        self._volumes: dict[str, Volume] = {}
        for manifest in sorted(self.root.glob("*/manifest.json")):
            vol = Volume.model_validate_json(manifest.read_bytes())
            self._volumes[vol.label] = vol

    # --- volumes ------------------------------------------------------------------------
    def all(self) -> list[Volume]:
        return sorted(self._volumes.values(), key=lambda v: v.label)

    def get(self, label: str) -> Volume | None:
        return self._volumes.get(label)

    def open_volume(self) -> Volume | None:
        return next((v for v in self.all() if v.state == VolumeState.OPEN), None)

    def new_volume(self, *, prefix: str, archive_id: str, media_type: str, capacity: int,
                   reserve: int) -> Volume:
        counter = self.root / "labels.json"
        last = json.loads(counter.read_text())["last"] if counter.exists() else 0
        last = max([last, *(int(v.label.rsplit("-", 1)[1]) for v in self._volumes.values())])
        label = f"{prefix}-{last + 1:06d}"
        write_atomic(counter, json.dumps({"last": last + 1}).encode())
        vol = Volume(label=label, archive_id=archive_id, media_type=media_type,
                     capacity_bytes=capacity, usable_bytes=capacity - reserve)
        self.save(vol)
        return vol

    def save(self, vol: Volume) -> None:
        write_atomic(self.folder(vol.label) / "manifest.json",
                     vol.model_dump_json(indent=1).encode())
        self._volumes[vol.label] = vol

    def remove(self, label: str) -> None:
        shutil.rmtree(self.folder(label), ignore_errors=True)
        self._volumes.pop(label, None)

    def release(self, vol: Volume) -> None:
        """Drop the online copy of a volume's files (its discs hold them)."""
        vol.released = True
        self.save(vol)
        shutil.rmtree(self.folder(vol.label) / "data", ignore_errors=True)

    # --- paths --------------------------------------------------------------------------
    def folder(self, label: str) -> Path:
        if not LABEL_RE.match(label):
            raise ValueError(f"illegal volume label {label!r}")
        return self.root / label

    def data(self, label: str) -> FileStore:
        return FileStore(self.folder(label) / "data", fsync=self.fsync)

    def image_path(self, label: str) -> Path:
        return self.folder(label) / "image" / f"{label}.iso"

    # --- studies ------------------------------------------------------------------------
    def parts_of(self, study_uid: str) -> list[tuple[Volume, StudyEntry]]:
        """Every (volume, part) holding the study, in part order."""
        found = [(v, s) for v in self._volumes.values() if (s := v.study(study_uid))]
        return sorted(found, key=lambda vs: (vs[1].part, vs[0].label))

    def held(self, study_uid: str) -> set[str]:
        """The SOP Instance UIDs of the study on any volume of this archive (each once, also
        when a later part holds new bytes of it)."""
        return set(latest(self.parts_of(study_uid)))

    # --- pending studies of an earlier version (before the jobs engine) ------------------
    def take_pending(self) -> dict[str, dict]:
        """The studies an earlier version queued in ``pending.json`` (they become STORE jobs
        at start-up); the file is removed only by ``drop_pending`` once they are jobs."""
        path = self.root / "pending.json"
        return json.loads(path.read_text()) if path.exists() else {}

    def drop_pending(self) -> None:
        (self.root / "pending.json").unlink(missing_ok=True)


# --- a study's parts -----------------------------------------------------------------------
# A study written again after new instances arrived (a later revision) gets further parts;
# the entries on volumes closed before keep the part count and labels of their own write
# (their images, and discs, say so), so the study as a whole is judged on all its entries.
def study_labels(parts: list[tuple[Volume, StudyEntry]]) -> list[str]:
    """The volumes holding the study's parts, in part order: its optical location."""
    return [v.label for v, _s in parts]


# New bytes under a UID a volume holds (the gateway's "replace") are written again: in place on
# the open volume, else into a later part (discs are never rewritten). So one UID may have an
# entry in several parts; the highest part's is the latest write and the current bytes.
Latest = tuple[Volume, StudyEntry, InstanceEntry]


def latest(parts: list[tuple[Volume, StudyEntry]]) -> dict[str, Latest]:
    """For each SOP Instance UID of the study, the entry of the highest part holding it (with
    its volume and part). ``parts`` in part order, as ``VolumeStore.parts_of`` gives them."""
    out: dict[str, Latest] = {}
    for vol, study in parts:
        for inst in study.instances:
            out[inst.sop_instance_uid] = (vol, study, inst)
    return out


def effective(parts: list[tuple[Volume, StudyEntry]]) -> list[tuple[Volume, StudyEntry]]:
    """The parts with only the instances whose latest copy they hold (copies of the entries:
    the stored ones keep what their images say); a part whose instances are all superseded is
    left out. For a study without replaced instances these are the parts as they are."""
    current = latest(parts)
    out = []
    for vol, study in parts:
        mine = [i for i in study.instances if current[i.sop_instance_uid][1] is study]
        if len(mine) == len(study.instances):
            out.append((vol, study))
        elif mine:
            out.append((vol, study.model_copy(update={"instances": mine})))
    return out


def is_complete(parts: list[tuple[Volume, StudyEntry]]) -> bool:
    """Every part 1..m is on a volume, m being the largest part count any entry records."""
    if not parts:
        return False
    total = max(s.parts for _v, s in parts)
    return sorted(s.part for _v, s in parts) == list(range(1, total + 1))
