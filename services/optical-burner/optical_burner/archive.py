"""The optical archive: writing studies into logical volumes.

These are plain async methods; the jobs engine's STORE / RETRIEVE executors
(``optical_burner.jobs``) call them (``archive_study``, ``retrieve_study``). One lock
serialises changes of the volume store. Where a study goes is ``packing``'s answer; new bytes
of an instance on the open volume are rewritten by ``replacing``; closing, deleting and
releasing volumes are ``closing``'s; the facts announced are built in ``announcing``.

New instances of a study already on volumes (a later revision: a late reconstruction, an
added series) are *appended*: the cache instances no volume holds yet are written as the
study's further part(s) — into the open volume (its entry grows when the open volume holds
the study's last part already), spanning as usual — and StudyArchived is announced again with
every instance and every label. Parts on Closed (burned) volumes are never rewritten: their
entries keep the part count and labels of their own write, as their images do, so a study
is complete when every cache instance is on some volume and parts 1..m (m the largest part
count of its entries) are all there. Nothing new: "already", nothing written.
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from dicomvault.query import InstanceLocation
from dicomvault.store import CacheStore
from optical_burner import announcing, closing, metrics, packing
from optical_burner.burners import Burner, make_burner
from optical_burner.catalogue import Catalogue, LocationsProvider
from optical_burner.copying import copy_in
from optical_burner.errors import ArchiveError
from optical_burner.events import Emit
from optical_burner.image import volume_id
from optical_burner.replacing import InPlace
from optical_burner.settings import OpticalSection
from optical_burner.volumes import (
    StudyEntry,
    Volume,
    VolumeState,
    VolumeStore,
    effective,
    is_complete,
    latest,
    now,
    study_labels,
)

log = logging.getLogger(__name__)


@dataclass
class ArchiveResult:
    status: str                       # archived, already, not_found
    study_uid: str
    labels: list[str] = field(default_factory=list)
    instances: int = 0                # on the volumes in all
    size_bytes: int = 0
    message: str = ""
    written: int = 0                  # instances written by this run

    @property
    def location(self) -> str:
        return "+".join(self.labels)


@dataclass
class Topics:
    studies: str
    volumes: str
    instances: str = "dicomvault.instances.v1"   # recalled instances (InstanceStored)


class OpticalArchive:
    def __init__(self, cfg: OpticalSection, store: VolumeStore, cache: CacheStore,
                 catalogue: Catalogue, emit: Emit, topics: Topics,
                 burner: Burner | None = None, locations: LocationsProvider | None = None
                 ) -> None:
        self.cfg = cfg
        self.store = store
        self.cache = cache
        self.catalogue = catalogue
        self.emit = emit
        self.topics = topics
        self.burner = burner or make_burner(cfg.burner)
        self.locations = locations or _locations_from(catalogue)
        self.lock = asyncio.Lock()
        self.burn_lock = asyncio.Lock()
        self.media_requests: dict[str, dict] = {}
        self._in_place = InPlace(cfg, store, cache)
        self.update_metrics()

    @property
    def id(self) -> str:
        return self.cfg.archive_id

    # --- readiness (the STORE queue stalls, and says why, while this fails) --------------
    def check(self) -> str | None:
        root = self.store.root
        if not root.is_dir():
            return f"volume store {root} is missing"
        try:  # really try: permission bits mean nothing to root
            fd, probe = tempfile.mkstemp(dir=root, prefix=".tmp-probe-")
            os.close(fd)
            os.unlink(probe)
        except OSError as exc:
            return f"volume store {root} is not writable: {exc.strerror or exc}"
        return None

    async def readiness(self) -> str | None:
        return await asyncio.to_thread(self.check)

    # --- writing studies --------------------------------------------------------------
    def cost(self, size: int) -> int:
        return packing.cost(self.cfg, size)

    async def archive_study(self, study_uid: str) -> ArchiveResult:
        """Write the study's cache instances that no volume holds yet into the open volume(s)
        — the whole study the first time, a later revision's new instances as further
        part(s) — and emit StudyArchived with every instance and label.

        An instance whose cache bytes (sha256) differ from the latest copy on the volumes (the
        gateway's duplicate policy ``replace``) is written again: in place when that copy is
        on the open volume and the volume has room for the difference, else like a new
        instance, into the study's next part — a Closed volume's disc is never rewritten."""
        async with self.lock:
            done = self.store.parts_of(study_uid)
            instances = await self.catalogue.instances(study_uid, tier="cache")
            if not instances and not done:
                return ArchiveResult("not_found", study_uid,
                                     message="the study has no instances in the cache tier")
            have = latest(done)
            changed = [i for i in instances if i.sop_instance_uid in have
                       and have[i.sop_instance_uid][2].sha256 != i.sha256]
            rewritten = await self._in_place.rewrite_open(changed, have)
            again = {i.sop_instance_uid for i in changed} - rewritten
            todo = packing.ordered([i for i in instances if i.sop_instance_uid not in have
                                    or i.sop_instance_uid in again])
            if not todo and not rewritten:
                if not is_complete(done):
                    raise ArchiveError(f"study {study_uid} misses a part on "
                                       f"{'+'.join(study_labels(done))}")
                await self._announce(study_uid, done)
                return _result("already", study_uid, done)
            if todo:
                plan = packing.plan(self.cfg, self.store.open_volume(), todo)
                await self._write(study_uid, self.store.parts_of(study_uid), plan)
            else:  # only rewritten in place: the open volume may be full now
                vol = self.store.open_volume()
                if vol is not None and vol.fill_ratio >= self.cfg.close_fill_ratio:
                    await closing.close_locked(self, vol, "full")
            parts = self.store.parts_of(study_uid)
            await self._announce(study_uid, parts)
            self.update_metrics()
            return _result("archived", study_uid, parts, written=len(todo) + len(rewritten))

    async def _write(self, study_uid: str, done: list, chunks: packing.Plan) -> None:
        """Write ``chunks`` as the study's next parts. ``done`` are the parts on volumes
        already (an earlier revision, or an interrupted run): the open volume's part grows,
        the others stay as they are."""
        open_now = self.store.open_volume()
        volumes = [v or self._new_volume() for v, _ in chunks]
        held = {v.label for v, _s in done}
        labels = [v.label for v, _s in done] + [v.label for v in volumes if v.label not in held]
        parts = len(labels)
        # Entries on open volumes describe the whole study (they go into an image later);
        # those on Closed volumes keep what their images say.
        for vol, entry in done:
            if vol.state == VolumeState.OPEN and (entry.parts, entry.labels) != (parts, labels):
                entry.parts, entry.labels = parts, labels
                self.store.save(vol)
        if open_now is not None and all(v is not open_now for v in volumes):
            await closing.close_locked(self, open_now, "full")
        patient = next((s.patient_id for _v, s in done if s.patient_id), "")
        number = max((s.part for _v, s in done), default=0)
        for vol, (_v, items) in zip(volumes, chunks, strict=True):
            entries = await asyncio.to_thread(copy_in, self.store, self.cache, vol, items)
            patient = patient or await self._patient_of(items[0])
            size = sum(e.size_bytes for e in entries)
            entry = vol.study(study_uid)
            if entry is None:
                number += 1
                vol.studies.append(StudyEntry(study_instance_uid=study_uid, patient_id=patient,
                                              part=number, parts=parts, labels=labels,
                                              instances=entries, size_bytes=size))
            else:  # the open volume holds the study's last part: it grows
                entry.instances.extend(entries)
                entry.size_bytes += size
            vol.used_bytes += sum(self.cost(e.size_bytes) for e in entries)
            vol.data_bytes += size
            vol.first_write_at = vol.first_write_at or now()
            self.store.save(vol)
            metrics.STUDIES_WRITTEN.labels(self.id).inc()
            metrics.BYTES_WRITTEN.labels(self.id).inc(size)
        log.info("study written to optical volumes",
                 extra={"study": study_uid, "volumes": labels, "archive": self.id,
                        "instances": sum(len(items) for _v, items in chunks),
                        "appended": bool(done)})
        for vol in volumes[:-1]:
            await closing.close_locked(self, vol, "full")
        if volumes[-1].fill_ratio >= self.cfg.close_fill_ratio:
            await closing.close_locked(self, volumes[-1], "full")

    def _new_volume(self) -> Volume:
        return self.store.new_volume(prefix=self.cfg.prefix, archive_id=self.id,
                                     media_type=self.cfg.media_type,
                                     capacity=self.cfg.capacity, reserve=self.cfg.reserve_bytes)

    async def _patient_of(self, inst: InstanceLocation) -> str:
        try:
            summary = await self.catalogue.study(inst.study_instance_uid)
        except Exception:  # noqa: BLE001 - the patient id is only shown in README / INDEX
            return ""
        return str((summary or {}).get("patient_id") or "")

    async def _announce(self, study_uid: str, parts: list[tuple[Volume, StudyEntry]]) -> None:
        msg, event_id = announcing.study_archived(self.id, study_uid, parts)
        await self.emit(self.topics.studies, msg, study_uid, event_id)

    # --- closing, deleting, releasing (``optical_burner.closing``) ----------------------
    async def close_volume(self, label: str, reason: str = "manual") -> Volume:
        return await closing.close_volume(self, label, reason)

    async def close_aged(self) -> list[str]:
        return await closing.close_aged(self)

    async def delete_volume(self, label: str, requested_by: str = "") -> None:
        await closing.delete_volume(self, label, requested_by)

    async def release_volume(self, label: str) -> Volume:
        return await closing.release_volume(self, label)

    # --- helpers ------------------------------------------------------------------------
    def volume(self, label: str) -> Volume:
        """The volume ``label``; KeyError if this archive has none."""
        vol = self.store.get(label)
        if vol is None:
            raise KeyError(label)
        return vol

    def image_of(self, vol: Volume) -> Path:
        return self.store.image_path(vol.label)

    def volid(self, vol: Volume) -> str:
        return volume_id(vol.label)

    def update_metrics(self) -> None:
        counts = dict.fromkeys(VolumeState, 0)
        for v in self.store.all():
            counts[v.state] += 1
        for state, n in counts.items():
            metrics.VOLUMES.labels(self.id, state.value).set(n)
        current = self.store.open_volume()
        metrics.OPEN_FILL.labels(self.id).set(current.fill_ratio if current else 0)
        metrics.MEDIA_REQUESTS.labels(self.id).set(len(self.media_requests))


def _result(status: str, study_uid: str, parts: list, written: int = 0) -> ArchiveResult:
    current = [i for _v, s in effective(parts) for i in s.instances]
    return ArchiveResult(status, study_uid, labels=study_labels(parts),
                         instances=len(current), size_bytes=sum(i.size_bytes for i in current),
                         written=written)


def _locations_from(catalogue: Catalogue) -> LocationsProvider:
    async def locations(study_uid: str) -> list[dict]:
        summary = await catalogue.study(study_uid)
        return list((summary or {}).get("study_locations") or [])

    return locations
