"""Cache eviction: remove studies from the cache tier once they are safe on other tiers.

A study is evicted when
- it has not been received or recalled for ``idle_s`` (the newest modification time of its
  objects in the cache: a recall writes them anew; a catalogue ``last_accessed_time``, when
  the summary carries one, counts as well), and
- the catalogue's ``study_locations`` show at least ``min_archive_copies`` verified copies on
  tiers other than the cache (distinct tier + archive id), each holding at least as many
  instances as the cache does when the location says how many.
Never with fewer copies: ``min_archive_copies`` is at least 1, so the only copy stays.

StudyEvicted(tier="cache") is published before the files go: if the service dies in between,
the next sweep deletes them (the fact has a deterministic id). Objects written after the
sweep looked (a recall racing the eviction) are left alone.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from datetime import datetime

from dicomvault.events import deterministic_id
from dicomvault.events.v1 import events_pb2 as ev
from dicomvault.store import is_valid_uid
from hsm_archiver import metrics
from hsm_archiver.context import CatalogueError, Context
from hsm_archiver.settings import EvictionSettings

log = logging.getLogger(__name__)


def copies_elsewhere(summary: dict, cached_instances: int) -> list[tuple[str, str]]:
    """The verified copies (tier, archive id) outside the cache that cover what it holds."""
    out = set()
    for loc in summary.get("study_locations") or []:
        if loc.get("tier") in ("cache", "", None) or not loc.get("verified"):
            continue
        n = loc.get("number_of_instances")
        if n is not None and int(n) < cached_instances:
            continue  # an older, smaller copy does not cover what the cache holds now
        out.add((loc["tier"], loc.get("archive_id") or ""))
    return sorted(out)


_copies = copies_elsewhere  # the former private name (tests/catalogue/test_replaced_locations.py)


def _accessed(summary: dict) -> float | None:
    value = summary.get("last_accessed_time")
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


async def sweep(ctx: Context, settings: EvictionSettings, now: float | None = None) -> list[str]:
    """One pass over the cache; returns the studies evicted (or that would be, in dry run)."""
    now = time.time() if now is None else now
    objects = await cached_objects(ctx)
    evicted = []
    for study, items in sorted(objects.items()):
        newest = max(m for _, m in items)
        if now - newest < settings.idle_s:
            continue
        try:
            summary = await ctx.catalogue.study(study)
        except CatalogueError as exc:
            log.warning("eviction: catalogue unavailable", extra={"error": str(exc)})
            return evicted
        if summary is None:
            continue  # unknown to the catalogue: never delete what no one has recorded
        accessed = _accessed(summary)
        if accessed is not None and now - accessed < settings.idle_s:
            continue
        copies = copies_elsewhere(summary, len(items))
        if len(copies) < settings.min_archive_copies:
            metrics.EVICTIONS.labels("kept_copies").inc()
            continue
        where = describe(copies)
        if settings.dry_run:
            log.info("eviction (dry run)", extra={"study": study, "copies": where})
            metrics.EVICTIONS.labels("dry_run").inc()
            evicted.append(study)
            continue
        await evict(ctx, study, items, f"idle {int(now - newest)} s; verified copies on {where}")
        evicted.append(study)
    return evicted


async def cached_objects(ctx: Context, study: str = "") -> dict[str, list[tuple[str, float]]]:
    """The cache's instance objects (key, modification time) by study; one study's only when
    ``study`` is given."""
    prefix = f"{study}/" if study else ""
    objects: dict[str, list[tuple[str, float]]] = defaultdict(list)
    for key, mtime in await asyncio.to_thread(lambda: list(ctx.cache.keys(prefix=prefix))):
        uid = key.split("/", 1)[0]
        if is_valid_uid(uid) and key.endswith(".dcm"):
            objects[uid].append((key, mtime))
    return objects


def describe(copies: list[tuple[str, str]]) -> str:
    return ", ".join(f"{t}:{a}" for t, a in copies)


async def evict(ctx: Context, study: str, items: list[tuple[str, float]], reason: str, *,
                requested_by: str = "", peer_address: str = "") -> int:
    """Publish StudyEvicted(tier=cache), then delete the study's objects as listed in
    ``items``; returns the bytes freed. The one place both the sweep and an administrator's
    request evict through."""
    newest = max(m for _, m in items)
    fact = ev.StudyEvicted(study_instance_uid=study, tier="cache", archive_id="cache",
                           location=study, reason=reason, requested_by=requested_by,
                           peer_address=peer_address)
    await ctx.publish(ctx.topics.studies, fact, study,
                      deterministic_id("evicted", "cache", study, f"{newest:.6f}"))

    def delete() -> int:
        freed = 0
        current = dict(ctx.cache.keys(prefix=f"{study}/"))
        for key, _ in items:
            if current.get(key, 0.0) > newest:
                continue  # written again since we looked (a recall): keep it
            freed += _size(ctx, key)
            ctx.cache.delete(key)
        return freed

    freed = await asyncio.to_thread(delete)
    metrics.EVICTIONS.labels("evicted").inc()
    metrics.EVICTED_BYTES.inc(freed)
    log.info("study evicted from the cache", extra={"study": study, "reason": reason,
                                                     "bytes": freed})
    return freed


def _size(ctx: Context, key: str) -> int:
    path = getattr(ctx.cache, "path", None)  # FileStore: stat the file, do not read it
    try:
        return path(key).stat().st_size if path else 0
    except OSError:
        return 0


async def run_evictions(ctx: Context, settings: EvictionSettings, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            await sweep(ctx, settings)
        except Exception:  # noqa: BLE001 - the next sweep tries again
            log.exception("eviction sweep failed")
        try:
            await asyncio.wait_for(stop.wait(), timeout=settings.interval_s)
        except TimeoutError:
            pass
