"""Burning a closed volume's copies and verifying each by reading it back.

A copy is tried ``burner.max_attempts`` times (backoff doubling from ``retry_backoff_s``).
A copy counts only once read back: every file of the image (the DICOMDIR, README, INDEX and
each instance) must have the manifest's checksum, which for instances is the catalogue's.
States: Closed until every configured copy is burned; Burned once all are written but not
all verified; Verified once all are verified. A burn run that fails leaves the volume
Closed (or where it was), records the error, and the sweep tries again after
``burner.retry_after_s``. Nothing is removed on failure: the volume's files and image stay.

The sweep (``sweep_volumes``, every ``optical.sweep_s``) is per volume, not per study, so it
stays a service sweep beside the jobs engine: it closes an aged open volume and burns the
closed volumes that are due (new, or a failed run's ``retry_after_s`` passed).
"""

from __future__ import annotations

import asyncio
import logging
import math
from datetime import timedelta

from dicomvault.events import deterministic_id
from dicomvault.events.v1 import optical_pb2 as op
from dicomvault.retry import backoff
from optical_burner import metrics
from optical_burner.archive import OpticalArchive
from optical_burner.errors import Conflict
from optical_burner.image import compare, read_back
from optical_burner.volumes import CopyEntry, Volume, VolumeState, now

log = logging.getLogger(__name__)


async def burn_volume(arc: OpticalArchive, label: str, copy: int | None = None) -> Volume:
    """Burn the missing copies of a closed volume (or copy ``copy`` again) and verify them."""
    async with arc.burn_lock:
        async with arc.lock:
            vol = arc.volume(label)
            if vol.state == VolumeState.OPEN or vol.image is None:
                raise Conflict(f"volume {label} is Open: close it first")
            if vol.released or not arc.image_of(vol).is_file():
                raise Conflict(f"volume {label} has no image in the volume store any more")
            wanted = _wanted(vol, arc.cfg.copies, copy)
        errors = []
        for n in wanted:
            entry = await _burn_copy(arc, vol, n)
            async with arc.lock:
                vol.copies = [c for c in vol.copies if c.number != n] + [entry]
                vol.copies.sort(key=lambda c: c.number)
                arc.store.save(vol)
            if not entry.verified:
                errors.append(f"copy {n}: {entry.error}")
        async with arc.lock:
            vol.burn_attempts += 1
            vol.last_error = "; ".join(errors)
            vol.next_burn_at = (now() + timedelta(seconds=arc.cfg.burner.retry_after_s)
                                if errors else None)
            before = vol.state
            vol.state = _state(vol, arc.cfg.copies)
            arc.store.save(vol)
            arc.update_metrics()
        if vol.state == VolumeState.VERIFIED and before != VolumeState.VERIFIED:
            await arc.emit(arc.topics.volumes, op.VolumeVerified(
                archive_id=arc.id, label=label, copies=sum(c.verified for c in vol.copies),
                files_checked=len(vol.image.files),
                study_instance_uids=[s.study_instance_uid for s in vol.studies]),
                label, deterministic_id("optical-verified", arc.id, label, str(len(vol.copies))))
            log.info("volume verified", extra={"volume": label, "copies": len(vol.copies)})
        elif errors:
            log.error("volume burn failed", extra={"volume": label, "error": vol.last_error,
                                                   "state": vol.state.value})
        return vol


def _wanted(vol: Volume, copies: int, copy: int | None) -> list[int]:
    if copy is not None:
        if copy < 1:
            raise Conflict("copy numbers start at 1")
        return [copy]
    done = {c.number for c in vol.copies if c.verified}
    missing = [n for n in range(1, copies + 1) if n not in done]
    return missing or [max([copies, *done]) + 1]  # all there: burn one more copy


def _state(vol: Volume, copies: int) -> VolumeState:
    by_copy = {c.number: c for c in vol.copies}
    needed = [by_copy.get(n) for n in range(1, copies + 1)]
    if all(c is not None and c.verified for c in needed):
        return VolumeState.VERIFIED
    if all(c is not None and c.burned for c in needed):
        return VolumeState.BURNED
    return VolumeState.CLOSED if vol.state != VolumeState.VERIFIED else vol.state


async def _burn_copy(arc: OpticalArchive, vol: Volume, n: int) -> CopyEntry:
    cfg = arc.cfg.burner
    backend = arc.burner.name
    waits = backoff(cfg.retry_backoff_s, math.inf)  # bounded by max_attempts, not by a cap
    entry = CopyEntry(number=n, backend=backend)
    for attempt in range(1, cfg.max_attempts + 1):
        result = await arc.burner.burn(vol.label, n, arc.image_of(vol), arc.volid(vol))
        entry = CopyEntry(number=n, backend=backend, target=result.target,
                          exit_status=result.exit_status, output=result.output)
        if result.ok:
            entry.burned, entry.burned_at = True, now()
            metrics.BYTES_BURNED.labels(arc.id, backend).inc(vol.image.size_bytes)
            await arc.emit(arc.topics.volumes, op.VolumeBurned(
                archive_id=arc.id, label=vol.label, copy=n, backend=backend,
                target=result.target, bytes=vol.image.size_bytes,
                exit_status=result.exit_status or 0),
                vol.label, deterministic_id("optical-burned", arc.id, vol.label, str(n),
                                            entry.burned_at.isoformat()))
            problems = await _verify(vol, result.readback)
            if not problems:
                entry.verified, entry.verified_at = True, now()
                return entry
            metrics.VERIFY_FAILURES.labels(arc.id).inc()
            entry.error = f"read-back of {result.readback} failed: " + "; ".join(problems[:5])
        else:
            metrics.BURN_FAILURES.labels(arc.id, backend).inc()
            entry.error = result.error
        log.warning("burn attempt failed", extra={"volume": vol.label, "copy": n,
                                                  "attempt": attempt, "error": entry.error})
        await arc.emit(arc.topics.volumes, op.VolumeBurnFailed(
            archive_id=arc.id, label=vol.label, copy=n, backend=backend, target=entry.target,
            exit_status=entry.exit_status or 0, error=(entry.error + "\n" + entry.output)[-2000:],
            attempt=attempt),
            vol.label, deterministic_id("optical-burn-failed", arc.id, vol.label, str(n),
                                        now().isoformat()))
        if attempt < cfg.max_attempts:
            await asyncio.sleep(next(waits))
    return entry


async def _verify(vol: Volume, readback) -> list[str]:
    """Compare every file read back with the manifest's checksums; [] when all match."""
    if readback is None:
        return ["nothing to read back"]
    try:
        found = await asyncio.to_thread(read_back, readback)
    except Exception as exc:  # noqa: BLE001 - an unreadable medium is a failed verification
        return [f"cannot read {readback}: {exc!r}"]
    return compare(vol.image.files, found)


async def sweep_volumes(arc: OpticalArchive) -> None:
    """One pass: close an aged open volume, burn the volumes that are due."""
    await arc.close_aged()
    for vol in arc.store.all():
        if (vol.state in (VolumeState.CLOSED, VolumeState.BURNED) and not vol.released
                and vol.next_burn_at is not None and vol.next_burn_at <= now()):
            try:
                await burn_volume(arc, vol.label)
            except Exception:  # noqa: BLE001 - recorded on the volume; the sweep goes on
                log.exception("burn run failed", extra={"volume": vol.label})
