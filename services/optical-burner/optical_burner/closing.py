"""Closing, deleting and releasing volumes of an optical archive.

A volume is closed (manually, full, or aged) into its IHE PDI image and announced
(VolumeClosed); burning and verifying follow in ``burning``.

Deleting a volume evicts every study on it from this archive *as a whole*: for a spanning
study the other parts' manifest entries go too (moved to the volume's ``evicted`` list), so
no volume keeps a part of a study whose optical copy is gone. An Open volume also drops
those files and frees their space; a Closed (or burned) volume keeps its image and files
unchanged — they are what its write-once discs hold — but no longer counts or serves them.
A delete is refused while any study on the volume has no other verified copy.

Releasing drops a Verified volume's files from the volume store: its discs hold them.

Callers hold the archive's lock where a name ends in ``_locked``; the public functions
take it."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Protocol

from optical_burner import announcing
from optical_burner.announcing import TIER
from optical_burner.catalogue import LocationsProvider
from optical_burner.errors import Conflict, DeleteRefused
from optical_burner.events import Emit
from optical_burner.image import build_image
from optical_burner.packing import cost
from optical_burner.settings import OpticalSection
from optical_burner.volumes import EvictedEntry, Volume, VolumeState, VolumeStore, now, study_labels

log = logging.getLogger(__name__)


class Archive(Protocol):
    """What closing, deleting and releasing use of an optical archive (``OpticalArchive``)."""

    cfg: OpticalSection
    store: VolumeStore
    emit: Emit
    locations: LocationsProvider
    lock: asyncio.Lock
    media_requests: dict[str, dict]

    @property
    def id(self) -> str: ...

    @property
    def topics(self): ...

    def volume(self, label: str) -> Volume: ...

    def update_metrics(self) -> None: ...


async def close_volume(arc: Archive, label: str, reason: str = "manual") -> Volume:
    async with arc.lock:
        vol = arc.volume(label)
        if vol.state != VolumeState.OPEN:
            raise Conflict(f"volume {label} is {vol.state.value}, not Open")
        if not vol.studies:
            raise Conflict(f"volume {label} is empty")
        await close_locked(arc, vol, reason)
        return vol


async def close_locked(arc: Archive, vol: Volume, reason: str) -> None:
    cfg, store = arc.cfg, arc.store
    image = await asyncio.to_thread(
        build_image, vol, store.data(vol.label).root, store.image_path(vol.label),
        rock_ridge=cfg.rock_ridge, joliet=cfg.joliet, index=cfg.index_htm)
    vol.image = image
    vol.state = VolumeState.CLOSED
    vol.closed_at = now()
    vol.close_reason = reason
    vol.next_burn_at = now()
    store.save(vol)  # with every instance's file_id inside the image
    log.info("volume closed", extra={"volume": vol.label, "reason": reason,
                                     "image_bytes": image.size_bytes})
    msg, event_id = announcing.volume_closed(arc.id, vol, reason)
    await arc.emit(arc.topics.volumes, msg, vol.label, event_id)
    arc.update_metrics()


async def close_aged(arc: Archive) -> list[str]:
    """Close the open volume once its first study is ``close_after_s`` old."""
    async with arc.lock:
        vol = arc.store.open_volume()
        if (vol is None or not vol.studies or vol.first_write_at is None
                or now() - vol.first_write_at < timedelta(seconds=arc.cfg.close_after_s)):
            return []
        await close_locked(arc, vol, "age")
        return [vol.label]


async def delete_volume(arc: Archive, label: str, requested_by: str = "") -> None:
    """Delete a volume, refused while any study on it has no other verified copy."""
    async with arc.lock:
        store = arc.store
        vol = arc.volume(label)
        # Every volume of each study: entries on volumes closed before a later revision
        # was appended keep the shorter label list of their own write.
        spans: dict[str, list[str]] = {}
        for study in vol.studies:
            parts = store.parts_of(study.study_instance_uid)
            spans[study.study_instance_uid] = list(dict.fromkeys(
                [*study_labels(parts), *(lb for _v, s in parts for lb in s.labels)]))
        only: list[str] = []
        for study in vol.studies:
            mine = set(spans[study.study_instance_uid]) | {label}
            others = [
                loc for loc in await arc.locations(study.study_instance_uid)
                if loc.get("verified") and loc.get("tier") != "cache"
                and not (loc.get("tier") == TIER and loc.get("archive_id") == arc.id
                         and mine & set(str(loc.get("location", "")).split("+")))]
            if not others:
                only.append(study.study_instance_uid)
        if only:
            raise DeleteRefused(label, only)
        for study in vol.studies:
            uid = study.study_instance_uid
            location = "+".join(study_labels(store.parts_of(uid)))
            msg, event_id = announcing.study_evicted(arc.id, uid, location, label)
            await arc.emit(arc.topics.studies, msg, uid, event_id)
        msg, event_id = announcing.volume_deleted(arc.id, vol, requested_by)
        await arc.emit(arc.topics.volumes, msg, label, event_id)
        for study in vol.studies:  # the study's optical copy is gone as a whole
            for other in spans[study.study_instance_uid]:
                if other != label:
                    await asyncio.to_thread(_drop_part, arc, other, study.study_instance_uid,
                                            f"volume {label} deleted")
        await asyncio.to_thread(store.remove, label)
        arc.media_requests.pop(label, None)
        log.warning("volume deleted", extra={"volume": label, "by": requested_by})
        arc.update_metrics()


def _drop_part(arc: Archive, label: str, study_uid: str, reason: str) -> None:
    """Remove another part of an evicted spanning study from volume ``label``."""
    vol = arc.store.get(label)
    entry = vol.study(study_uid) if vol is not None else None
    if vol is None or entry is None:
        return
    vol.studies = [s for s in vol.studies if s.study_instance_uid != study_uid]
    vol.evicted.append(EvictedEntry(
        study_instance_uid=study_uid, part=entry.part, parts=entry.parts,
        labels=entry.labels, number_of_instances=len(entry.instances),
        size_bytes=entry.size_bytes, reason=reason))
    if vol.state == VolumeState.OPEN:  # not in an image yet: free the space
        data = arc.store.data(label)
        for inst in entry.instances:
            data.delete(inst.storage_key)
        vol.used_bytes -= sum(cost(arc.cfg, i.size_bytes) for i in entry.instances)
        vol.data_bytes -= entry.size_bytes
    arc.store.save(vol)
    log.warning("part of a spanning study dropped", extra={
        "volume": label, "study": study_uid, "part": entry.part, "reason": reason})


async def release_volume(arc: Archive, label: str) -> Volume:
    """Drop a Verified volume's files from the volume store: its discs hold them."""
    async with arc.lock:
        vol = arc.volume(label)
        if vol.state != VolumeState.VERIFIED:
            raise Conflict(f"volume {label} is {vol.state.value}: only a Verified volume "
                           "can go offline")
        await asyncio.to_thread(arc.store.release, vol)
        arc.store.image_path(label).unlink(missing_ok=True)
        return vol
