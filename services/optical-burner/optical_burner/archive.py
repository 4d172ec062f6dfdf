"""The optical archive: writing studies into logical volumes, closing, deleting, releasing.

These are plain async methods; the jobs engine's STORE / RETRIEVE executors
(``optical_burner.jobs``) call them (``archive_study``, ``retrieve_study``). One lock
serialises changes of the volume store.

Packing (documented order):
- a study goes whole into the open volume when it fits its free space;
- else, when it fits an empty medium, the open volume is closed ("full") and a new one
  takes the study;
- else the study *spans* volumes: its instances, series kept together in catalogue order,
  fill the open volume's free space and then as many new volumes as needed; each volume
  records "part n of m" and the labels of every part; every part but the last is closed.
- an instance counts its size rounded up to 2048-byte sectors plus
  ``per_instance_overhead_bytes``; each medium keeps ``reserve_bytes`` for the file system.

A study written to a volume is an archive location at once: StudyArchived(tier="optical",
location=label) — for a spanning study one fact with ``location`` = the labels of its parts
joined by ``+`` in part order (e.g. ``DVD-000007+DVD-000008``), so it counts as one copy.

New instances of a study already on volumes (a later revision: a late reconstruction, an
added series) are *appended*: the cache instances no volume holds yet are written as the
study's further part(s) — into the open volume (its entry grows when the open volume holds
the study's last part already), spanning as usual — and StudyArchived is announced again with
every instance and every label. Parts on Closed (burned) volumes are never rewritten: their
entries keep the part count and labels of their own write, as their images do, so a study
is complete when every cache instance is on some volume and parts 1..m (m the largest part
count of its entries) are all there. Nothing new: "already", nothing written.

New bytes under a UID a volume holds (the gateway's duplicate policy ``replace``: the cache
sha256 differs from the latest copy's) are written again: in place while that copy is on the
open volume and the volume has room for the difference, else into the study's next part like
new instances — a Closed volume is never rewritten. The highest part holding a UID has its
latest write (``volumes.latest`` / ``volumes.effective``): what StudyArchived counts (each
UID once) and what a retrieve reads.

Deleting a volume evicts every study on it from this archive *as a whole*: for a spanning
study the other parts' manifest entries go too (moved to the volume's ``evicted`` list), so
no volume keeps a part of a study whose optical copy is gone. An Open volume also drops
those files and frees their space; a Closed (or burned) volume keeps its image and files
unchanged — they are what its write-once discs hold — but no longer counts or serves them.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import tempfile
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from dicomvault.events import deterministic_id
from dicomvault.events.v1 import events_pb2 as ev
from dicomvault.events.v1 import optical_pb2 as op
from dicomvault.query import InstanceLocation
from dicomvault.store import CacheStore, StoreError
from optical_burner import metrics
from optical_burner.burners import Burner, make_burner
from optical_burner.catalogue import Catalogue, LocationsProvider
from optical_burner.events import Emit
from optical_burner.image import build_image, volume_id
from optical_burner.settings import OpticalSection
from optical_burner.volumes import (
    SECTOR,
    EvictedEntry,
    InstanceEntry,
    Latest,
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

if TYPE_CHECKING:
    from optical_burner.handlers import Queues

log = logging.getLogger(__name__)

TIER = "optical"


class ArchiveError(RuntimeError):
    """A study cannot be written (not in the cache, changed bytes, instance too large)."""


class InstanceTooLarge(ArchiveError):
    """An instance does not fit an empty medium: retrying cannot help."""


class Conflict(RuntimeError):
    """The volume is not in a state that allows the operation (HTTP 409)."""


class DeleteRefused(Conflict):
    """Deleting would lose the only verified copy of a study."""

    def __init__(self, label: str, studies: list[str]) -> None:
        self.studies = studies
        super().__init__(f"volume {label} holds the only verified copy of "
                         f"{len(studies)} study(ies): {', '.join(studies[:10])}")


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
        # The jobs engine's queues of this archive, set by the service (the API lists them).
        self.queues: Queues | None = None
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
        return -(-size // SECTOR) * SECTOR + self.cfg.per_instance_overhead_bytes

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
            rewritten = await self._rewrite_open(changed, have)
            again = {i.sop_instance_uid for i in changed} - rewritten
            todo = _ordered([i for i in instances if i.sop_instance_uid not in have
                             or i.sop_instance_uid in again])
            if not todo and not rewritten:
                if not is_complete(done):
                    raise ArchiveError(f"study {study_uid} misses a part on "
                                       f"{'+'.join(study_labels(done))}")
                await self._announce(study_uid, done)
                return _result("already", study_uid, done)
            if todo:
                await self._write(study_uid, self.store.parts_of(study_uid), self._plan(todo))
            else:  # only rewritten in place: the open volume may be full now
                vol = self.store.open_volume()
                if vol is not None and vol.fill_ratio >= self.cfg.close_fill_ratio:
                    await self._close_locked(vol, "full")
            parts = self.store.parts_of(study_uid)
            await self._announce(study_uid, parts)
            self.update_metrics()
            return _result("archived", study_uid, parts, written=len(todo) + len(rewritten))

    async def _rewrite_open(self, changed: list[InstanceLocation], have: dict[str, Latest]
                            ) -> set[str]:
        """Rewrite in place the ``changed`` instances whose latest copy is on the open volume
        (not in an image yet) while it has room for the difference; return their UIDs.

        Smallest growth first: once one does not fit, no later one does, and the free space
        stays below each one's whole cost — so ``_plan`` never puts one of them into the open
        volume next to its old entry (a UID is in a volume once, as in its DICOMDIR)."""
        done: set[str] = set()
        on_open = [i for i in changed if have[i.sop_instance_uid][0].state == VolumeState.OPEN]
        for inst in sorted(on_open, key=lambda i: self.cost(i.size_bytes)
                           - self.cost(have[i.sop_instance_uid][2].size_bytes)):
            vol, entry, old = have[inst.sop_instance_uid]
            if self.cost(inst.size_bytes) - self.cost(old.size_bytes) > vol.free_bytes:
                break
            await asyncio.to_thread(self._rewrite, vol, entry, old, inst)
            done.add(inst.sop_instance_uid)
        return done

    def _rewrite(self, vol: Volume, entry: StudyEntry, old: InstanceEntry,
                 inst: InstanceLocation) -> None:
        """New bytes of ``old`` on the open volume: the file first (read back), then the
        manifest. A crash in between leaves the manifest's old checksum, so the next STORE
        run still sees the instance as changed and writes it again."""
        (new,) = self._copy_in(vol, [inst])
        if old.storage_key != inst.storage_key:
            self.store.data(vol.label).delete(old.storage_key)
        entry.instances = [new if i is old else i for i in entry.instances]
        entry.size_bytes += new.size_bytes - old.size_bytes
        vol.used_bytes += self.cost(new.size_bytes) - self.cost(old.size_bytes)
        vol.data_bytes += new.size_bytes - old.size_bytes
        self.store.save(vol)
        metrics.BYTES_WRITTEN.labels(self.id).inc(new.size_bytes)
        log.info("replaced instance rewritten on the open volume",
                 extra={"study": entry.study_instance_uid, "volume": vol.label,
                        "archive": self.id})

    def _plan(self, todo: list[InstanceLocation]) -> list[tuple[Volume | None, list]]:
        usable = self.cfg.capacity - self.cfg.reserve_bytes
        too_big = [i.sop_instance_uid for i in todo if self.cost(i.size_bytes) > usable]
        if too_big:
            raise InstanceTooLarge(
                f"instance {too_big[0]} is larger than a {self.cfg.media_type}")
        total = sum(self.cost(i.size_bytes) for i in todo)
        current = self.store.open_volume()
        if current is not None and (total <= current.free_bytes
                                    or (not current.studies and total <= usable)):
            return [(current, todo)]
        if total <= usable:
            return [(None, todo)]  # the open volume is closed as full by _write
        chunks: list[tuple[Volume | None, list]] = [(current, [])]
        free = current.free_bytes if current is not None else usable
        for inst in todo:
            c = self.cost(inst.size_bytes)
            if c > free:
                chunks.append((None, []))
                free = usable
            chunks[-1][1].append(inst)
            free -= c
        return [(v, items) for v, items in chunks if items]

    async def _write(self, study_uid: str, done: list, chunks: list) -> None:
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
            await self._close_locked(open_now, "full")
        patient = next((s.patient_id for _v, s in done if s.patient_id), "")
        number = max((s.part for _v, s in done), default=0)
        for vol, (_v, items) in zip(volumes, chunks, strict=True):
            entries = await asyncio.to_thread(self._copy_in, vol, items)
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
            await self._close_locked(vol, "full")
        if volumes[-1].fill_ratio >= self.cfg.close_fill_ratio:
            await self._close_locked(volumes[-1], "full")

    def _new_volume(self) -> Volume:
        return self.store.new_volume(prefix=self.cfg.prefix, archive_id=self.id,
                                     media_type=self.cfg.media_type,
                                     capacity=self.cfg.capacity, reserve=self.cfg.reserve_bytes)

    def _copy_in(self, vol: Volume, items: list[InstanceLocation]) -> list[InstanceEntry]:
        """Copy instances from the cache into the volume, read back and checksum each."""
        data = self.store.data(vol.label)
        out = []
        for inst in items:
            try:
                blob = self.cache.get(inst.storage_key)
            except StoreError as exc:
                raise ArchiveError(f"instance {inst.sop_instance_uid} is not readable in the "
                                   f"cache: {exc}") from exc
            if hashlib.sha256(blob).hexdigest() != inst.sha256:
                raise ArchiveError(f"instance {inst.sop_instance_uid} in the cache does not "
                                   "match the catalogue's checksum")
            data.put(inst.storage_key, blob)
            if data.stat(inst.storage_key).sha256 != inst.sha256:
                raise ArchiveError(f"read-back of {inst.sop_instance_uid} on {vol.label} "
                                   "does not match")
            out.append(InstanceEntry(
                sop_instance_uid=inst.sop_instance_uid,
                series_instance_uid=inst.series_instance_uid, sop_class_uid=inst.sop_class_uid,
                transfer_syntax_uid=inst.transfer_syntax_uid, storage_key=inst.storage_key,
                size_bytes=inst.size_bytes, sha256=inst.sha256))
        return out

    async def _patient_of(self, inst: InstanceLocation) -> str:
        try:
            summary = await self.catalogue.study(inst.study_instance_uid)
        except Exception:  # noqa: BLE001 - the patient id is only shown in README / INDEX
            return ""
        return str((summary or {}).get("patient_id") or "")

    async def _announce(self, study_uid: str, parts: list[tuple[Volume, StudyEntry]]) -> None:
        """StudyArchived for what the volumes hold: each SOP Instance UID once, its latest
        copy (a replaced instance's superseded entries do not count). Its id derives from the
        location *and* the instances with their checksums: re-announcing the same copy is the
        same fact, a copy that grew (new instances appended, perhaps on the same volume) or
        holds new bytes of an instance is a new one — which the catalogue records (verified
        again after a replace had unverified the location)."""
        location = "+".join(study_labels(parts))
        current = [i for _v, s in effective(parts) for i in s.instances]
        sops = [i.sop_instance_uid for i in current]
        digest = hashlib.sha256("\n".join(
            sorted(f"{i.sop_instance_uid}:{i.sha256}" for i in current)).encode()).hexdigest()
        msg = ev.StudyArchived(
            study_instance_uid=study_uid, tier=TIER, archive_id=self.id, location=location,
            number_of_instances=len(sops), size_bytes=sum(i.size_bytes for i in current),
            sop_instance_uids=sops, sha256s=[i.sha256 for i in current], verified=True)
        await self.emit(self.topics.studies, msg, study_uid,
                        deterministic_id("optical-archived", self.id, study_uid, location,
                                         str(len(sops)), digest))

    # --- closing ------------------------------------------------------------------------
    async def close_volume(self, label: str, reason: str = "manual") -> Volume:
        async with self.lock:
            vol = self._get(label)
            if vol.state != VolumeState.OPEN:
                raise Conflict(f"volume {label} is {vol.state.value}, not Open")
            if not vol.studies:
                raise Conflict(f"volume {label} is empty")
            await self._close_locked(vol, reason)
            return vol

    async def _close_locked(self, vol: Volume, reason: str) -> None:
        image = await asyncio.to_thread(
            build_image, vol, self.store.data(vol.label).root, self.store.image_path(vol.label),
            rock_ridge=self.cfg.rock_ridge, joliet=self.cfg.joliet, index=self.cfg.index_htm)
        vol.image = image
        vol.state = VolumeState.CLOSED
        vol.closed_at = now()
        vol.close_reason = reason
        vol.next_burn_at = now()
        self.store.save(vol)  # with every instance's file_id inside the image
        log.info("volume closed", extra={"volume": vol.label, "reason": reason,
                                         "image_bytes": image.size_bytes})
        await self.emit(self.topics.volumes, op.VolumeClosed(
            archive_id=self.id, label=vol.label, media_type=vol.media_type,
            capacity_bytes=vol.capacity_bytes, used_bytes=vol.data_bytes,
            image_bytes=image.size_bytes, image_sha256=image.sha256,
            number_of_studies=len(vol.studies), number_of_instances=vol.instance_count,
            reason=reason, study_instance_uids=[s.study_instance_uid for s in vol.studies]),
            vol.label, deterministic_id("optical-closed", self.id, vol.label))
        self.update_metrics()

    async def close_aged(self) -> list[str]:
        """Close the open volume once its first study is ``close_after_s`` old."""
        async with self.lock:
            vol = self.store.open_volume()
            if (vol is None or not vol.studies or vol.first_write_at is None
                    or now() - vol.first_write_at < timedelta(seconds=self.cfg.close_after_s)):
                return []
            await self._close_locked(vol, "age")
            return [vol.label]

    # --- deleting and releasing ---------------------------------------------------------
    async def delete_volume(self, label: str, requested_by: str = "") -> None:
        """Delete a volume, refused while any study on it has no other verified copy."""
        async with self.lock:
            vol = self._get(label)
            # Every volume of each study: entries on volumes closed before a later revision
            # was appended keep the shorter label list of their own write.
            spans: dict[str, list[str]] = {}
            for study in vol.studies:
                parts = self.store.parts_of(study.study_instance_uid)
                spans[study.study_instance_uid] = list(dict.fromkeys(
                    [*study_labels(parts), *(lb for _v, s in parts for lb in s.labels)]))
            only: list[str] = []
            for study in vol.studies:
                mine = set(spans[study.study_instance_uid]) | {label}
                others = [
                    loc for loc in await self.locations(study.study_instance_uid)
                    if loc.get("verified") and loc.get("tier") != "cache"
                    and not (loc.get("tier") == TIER and loc.get("archive_id") == self.id
                             and mine & set(str(loc.get("location", "")).split("+")))]
                if not others:
                    only.append(study.study_instance_uid)
            if only:
                raise DeleteRefused(label, only)
            for study in vol.studies:
                location = "+".join(study_labels(self.store.parts_of(study.study_instance_uid)))
                await self.emit(self.topics.studies, ev.StudyEvicted(
                    study_instance_uid=study.study_instance_uid, tier=TIER, archive_id=self.id,
                    location=location, reason=f"volume {label} deleted"),
                    study.study_instance_uid,
                    deterministic_id("optical-evicted", self.id, study.study_instance_uid, label))
            await self.emit(self.topics.volumes, op.VolumeDeleted(
                archive_id=self.id, label=label, requested_by=requested_by,
                study_instance_uids=[s.study_instance_uid for s in vol.studies]),
                label, deterministic_id("optical-deleted", self.id, label))
            for study in vol.studies:  # the study's optical copy is gone as a whole
                for other in spans[study.study_instance_uid]:
                    if other != label:
                        await asyncio.to_thread(self._drop_part, other, study.study_instance_uid,
                                                f"volume {label} deleted")
            await asyncio.to_thread(self.store.remove, label)
            self.media_requests.pop(label, None)
            log.warning("volume deleted", extra={"volume": label, "by": requested_by})
            self.update_metrics()

    def _drop_part(self, label: str, study_uid: str, reason: str) -> None:
        """Remove another part of an evicted spanning study from volume ``label``."""
        vol = self.store.get(label)
        entry = vol.study(study_uid) if vol is not None else None
        if vol is None or entry is None:
            return
        vol.studies = [s for s in vol.studies if s.study_instance_uid != study_uid]
        vol.evicted.append(EvictedEntry(
            study_instance_uid=study_uid, part=entry.part, parts=entry.parts,
            labels=entry.labels, number_of_instances=len(entry.instances),
            size_bytes=entry.size_bytes, reason=reason))
        if vol.state == VolumeState.OPEN:  # not in an image yet: free the space
            data = self.store.data(label)
            for inst in entry.instances:
                data.delete(inst.storage_key)
            vol.used_bytes -= sum(self.cost(i.size_bytes) for i in entry.instances)
            vol.data_bytes -= entry.size_bytes
        self.store.save(vol)
        log.warning("part of a spanning study dropped", extra={
            "volume": label, "study": study_uid, "part": entry.part, "reason": reason})

    async def release_volume(self, label: str) -> Volume:
        """Drop a Verified volume's files from the volume store: its discs hold them."""
        async with self.lock:
            vol = self._get(label)
            if vol.state != VolumeState.VERIFIED:
                raise Conflict(f"volume {label} is {vol.state.value}: only a Verified volume "
                               "can go offline")
            await asyncio.to_thread(self.store.release, vol)
            self.store.image_path(label).unlink(missing_ok=True)
            return vol

    # --- helpers ------------------------------------------------------------------------
    def _get(self, label: str) -> Volume:
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


def _ordered(items: list[InstanceLocation]) -> list[InstanceLocation]:
    """Series kept together, in the order the catalogue lists them."""
    series: dict[str, list[InstanceLocation]] = {}
    for i in items:
        series.setdefault(i.series_instance_uid, []).append(i)
    return [i for group in series.values() for i in group]


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
