"""Retrieving a study from its volume(s) into a destination store (the cache tier).

Every part of the study is read, on whichever volume it is — also the parts a later revision
appended after the first volumes were closed (their entries keep their own, smaller part
count). For each volume holding a part of the study, the files are read from:
1. the volume store, while the volume is online (its data folder is there);
2. else the disc mounted under ``optical.mount_path``: ``<mount_path>/<label>`` (or the
   ISO 9660 volume id, ``DVD_000042``), or the disc itself at ``<mount_path>`` — in every
   case a folder whose DICOMDIR's File-set ID is the volume id. The instance is found by its
   path in the image (``DICOM/PT000000/…``), case-insensitively (a disc mounted without
   Rock Ridge shows lower-case names);
3. else the volume is *offline*: the result is ``offline`` with a media request
   "insert volume DVD-000042", listed by ``GET /api/v1/media-requests``, counted in
   ``dicomvault_optical_media_requests_open``, logged and published as MediaRequested.
   Calling ``retrieve_study`` again once the disc is mounted continues from there (the
   RETRIEVE job does: it waits, state WAITING, and looks again every ``media_recheck_s``).
   A RETRIEVE job that ends without the disc (cancelled, failed for good) leaves the requests
   it was in (``withdraw_media_requests``): a study no other active job waits for is
   withdrawn (MediaRequestWithdrawn), and a request no active job needs any more goes.

Every instance is checked against its checksum before it is written to the destination;
``on_instance`` is awaited after each write (the RETRIEVE job announces it there).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pydicom import dcmread

from dicomvault.events import deterministic_id
from dicomvault.events.v1 import optical_pb2 as op
from dicomvault.jobs import TERMINAL, Job
from dicomvault.store import CacheStore, FileStore
from optical_burner import metrics
from optical_burner.archive import OpticalArchive
from optical_burner.image import volume_id
from optical_burner.volumes import InstanceEntry, Volume, effective, is_complete, now

log = logging.getLogger(__name__)


@dataclass
class RetrieveResult:
    status: str                       # done, offline, not_found, failed
    study_uid: str
    instances: int = 0
    size_bytes: int = 0
    sop_instance_uids: list[str] = field(default_factory=list)
    media_requests: list[dict] = field(default_factory=list)
    message: str = ""


def mounted_root(vol: Volume, mount_path: Path) -> Path | None:
    """The folder where the volume's disc is mounted, if it is."""
    want = volume_id(vol.label)
    for root in (mount_path / vol.label, mount_path / want, mount_path):
        dicomdir = _find(root, "DICOMDIR")
        if dicomdir is None:
            continue
        try:
            fsid = str(dcmread(dicomdir, stop_before_pixels=True).get("FileSetID", "")).strip()
        except Exception:  # noqa: BLE001 - an unreadable DICOMDIR is not our disc
            continue
        if fsid.upper() == want:
            return root
    return None


def _find(root: Path, rel: str) -> Path | None:
    """``rel`` under ``root``, matching each component case-insensitively (and ';1' / '.')."""
    current = root
    for part in rel.split("/"):
        exact = current / part
        if exact.exists():
            current = exact
            continue
        if not current.is_dir():
            return None
        wanted = part.upper()
        match = next((c for c in current.iterdir()
                      if c.name.split(";", 1)[0].rstrip(".").upper() == wanted), None)
        if match is None:
            return None
        current = match
    return current if current.is_file() else None


def _sources(arc: OpticalArchive, parts) -> tuple[dict[str, object], list[Volume]]:
    sources: dict[str, object] = {}
    offline: list[Volume] = []
    for vol, study in parts:
        data = arc.store.data(vol.label) if not vol.released else None
        if data is not None and all(data.exists(i.storage_key) for i in study.instances):
            sources[vol.label] = data
            continue
        root = mounted_root(vol, arc.cfg.mount_path) if vol.image else None
        if root is not None:
            sources[vol.label] = root
        else:
            offline.append(vol)
    return sources, offline


OnInstance = Callable[[InstanceEntry, bytes], Awaitable[None]]


async def retrieve_study(arc: OpticalArchive, study_uid: str, dest: CacheStore, *,
                         sop_uids: list[str] | None = None, on_instance: OnInstance | None = None,
                         job_id: str = "") -> RetrieveResult:
    """Read the study (or only ``sop_uids``) back from its volumes into ``dest``.

    Each SOP Instance UID is read from the highest part holding it, the latest write (new
    bytes of a replaced instance go into a later part: discs are never rewritten); a part
    holding only superseded copies is not read and its volume is not asked for. Whether the
    study is complete is judged on all its parts."""
    async with arc.lock:
        parts = arc.store.parts_of(study_uid)
    if parts and not is_complete(parts):
        parts = []  # an incomplete spanning study is no copy
    parts = effective(parts)  # each UID from its latest write; superseded-only parts go
    if sop_uids:
        wanted = set(sop_uids)
        parts = [(v, s.model_copy(update={"instances": [
                    i for i in s.instances if i.sop_instance_uid in wanted]}))
                 for v, s in parts]
        parts = [(v, s) for v, s in parts if s.instances]
    if not parts:
        metrics.RETRIEVES.labels(arc.id, "not_found").inc()
        return RetrieveResult("not_found", study_uid, message="no volume holds the study")
    sources, offline = _sources(arc, parts)
    if offline:
        requests = [await _request_media(arc, vol, study_uid, job_id) for vol in offline]
        metrics.RETRIEVES.labels(arc.id, "offline").inc()
        return RetrieveResult("offline", study_uid, media_requests=requests,
                              message="; ".join(r["message"] for r in requests))
    result = RetrieveResult("done", study_uid)
    for vol, study in parts:
        source = sources[vol.label]
        for inst in study.instances:
            if isinstance(source, FileStore):
                blob = source.get(inst.storage_key)
            else:
                path = _find(source, inst.file_id)
                if path is None:
                    return _failed(arc, study_uid, f"{inst.file_id} missing on {vol.label}")
                blob = path.read_bytes()
            if hashlib.sha256(blob).hexdigest() != inst.sha256:
                return _failed(arc, study_uid, f"{inst.sop_instance_uid} on {vol.label} does "
                                               "not match its checksum")
            dest.put(inst.storage_key, blob)
            if on_instance is not None:
                await on_instance(inst, blob)
            result.instances += 1
            result.size_bytes += len(blob)
            result.sop_instance_uids.append(inst.sop_instance_uid)
        if arc.media_requests.pop(vol.label, None) is not None:
            log.info("media request satisfied", extra={"volume": vol.label})
    arc.update_metrics()
    metrics.RETRIEVES.labels(arc.id, "done").inc()
    log.info("study retrieved from optical volumes",
             extra={"study": study_uid, "instances": result.instances,
                    "volumes": [v.label for v, _ in parts]})
    return result


def _failed(arc: OpticalArchive, study_uid: str, message: str) -> RetrieveResult:
    metrics.RETRIEVES.labels(arc.id, "failed").inc()
    log.error("optical retrieve failed", extra={"study": study_uid, "error": message})
    return RetrieveResult("failed", study_uid, message=message)


async def _request_media(arc: OpticalArchive, vol: Volume, study_uid: str,
                         job_id: str = "") -> dict:
    message = f"insert volume {vol.label}"
    request = arc.media_requests.get(vol.label)
    first = request is None
    if first:
        request = {"label": vol.label, "archive_id": arc.id, "message": message,
                   "media_type": vol.media_type, "requested_at": now().isoformat(),
                   "mount_path": str(arc.cfg.mount_path / vol.label), "studies": [],
                   "jobs": []}
        arc.media_requests[vol.label] = request
    if job_id and job_id not in request["jobs"]:
        request["jobs"].append(job_id)
    if study_uid not in request["studies"]:
        # When the study joined this request: a study withdrawn and asked for again is a
        # new MediaRequested (the catalogue journals an id once).
        since = request["requested_at"] if first else now().isoformat()
        request["studies"].append(study_uid)
        request.setdefault("study_requested_at", {})[study_uid] = since
        log.warning("media request: %s", message,
                    extra={"volume": vol.label, "study": study_uid,
                           "mount_path": request["mount_path"]})
        await arc.emit(arc.topics.volumes, op.MediaRequested(
            archive_id=arc.id, label=vol.label, message=message, study_instance_uid=study_uid,
            mount_path=request["mount_path"]),
            vol.label, deterministic_id("optical-media", arc.id, vol.label, study_uid, since))
    arc.update_metrics()
    return dict(request)


async def withdraw_media_requests(arc: OpticalArchive, job: Job, jobs: Mapping[str, Job],
                                  reason: str) -> list[tuple[str, str]]:
    """``job`` ended without its disc (cancelled, failed for good): take it out of every media
    request it waits in. The studies no other active (non-terminal) job of ``jobs`` — the
    RETRIEVE queue's — waits for leave the request, each announced as MediaRequestWithdrawn
    (id from the volume, the job, the study and when the study was asked for: a re-run is the
    same fact); a request no active job needs any more is dropped. A request still needed by
    another waiting (or suspended) job stays. Returns the (label, study) pairs withdrawn."""
    withdrawn: list[tuple[str, str, str]] = []
    dropped: list[str] = []
    # Every change first, without an await in between: the loop sees a consistent state.
    for label, request in list(arc.media_requests.items()):
        if job.id not in request["jobs"]:
            continue
        active = [jobs[j] for j in request["jobs"]
                  if j != job.id and j in jobs and jobs[j].state not in TERMINAL]
        needed = {j.study_uid for j in active}
        since = request.setdefault("study_requested_at", {})
        request["jobs"] = [j.id for j in active]
        for study in [s for s in request["studies"] if s not in needed]:
            withdrawn.append((label, study, since.pop(study, request["requested_at"])))
        request["studies"] = [s for s in request["studies"] if s in needed]
        if not active:
            arc.media_requests.pop(label, None)
            dropped.append(label)
    arc.update_metrics()
    if withdrawn or dropped:
        log.info("media request withdrawn",
                 extra={"job": job.id, "reason": reason, "volumes_dropped": dropped,
                        "withdrawn": [f"{label}:{study}" for label, study, _ in withdrawn],
                        "open_requests": len(arc.media_requests)})
    for label, study, since in withdrawn:
        await arc.emit(arc.topics.volumes, op.MediaRequestWithdrawn(
            archive_id=arc.id, label=label, study_instance_uid=study, reason=reason),
            label, deterministic_id("optical-media-withdrawn", arc.id, label, job.id, study,
                                    since))
    return [(label, study) for label, study, _ in withdrawn]
