"""Evict on demand: an administrator frees one study's cache space now, without waiting for
the sweep (``POST /api/v1/studies/{uid}/evict``).

The sweep's rule and fact, without its idle time: the study is evicted only when the
catalogue shows at least ``min_archive_copies`` verified copies on tiers other than the cache,
each covering every instance the cache holds (``eviction.copies_elsewhere``); then
StudyEvicted(tier="cache") is published and the files go (``eviction.evict``). Never the last
copy: every refusal says why.
"""

from __future__ import annotations

from dataclasses import dataclass

from dicomvault.store import is_valid_uid
from hsm_archiver import metrics
from hsm_archiver.context import CatalogueError, Context
from hsm_archiver.eviction import cached_objects, copies_elsewhere, describe, evict
from hsm_archiver.settings import EvictionSettings

# Named outcomes; the API maps each to an HTTP status.
EVICTED = "evicted"
INVALID_UID = "invalid_uid"
UNKNOWN_STUDY = "unknown_study"
NOT_IN_CACHE = "not_in_cache"
TOO_FEW_COPIES = "too_few_copies"
CATALOGUE_UNAVAILABLE = "catalogue_unavailable"


@dataclass(frozen=True)
class EvictionResult:
    status: str
    reason: str
    instances: int = 0
    freed_bytes: int = 0
    copies: tuple[str, ...] = ()


async def evict_study(ctx: Context, settings: EvictionSettings, study: str,
                      requested_by: str, peer_address: str = "") -> EvictionResult:
    if not is_valid_uid(study):
        return EvictionResult(INVALID_UID, f"{study[:80]!r} is not a valid DICOM UID")
    try:
        summary = await ctx.catalogue.study(study)
    except CatalogueError as exc:
        return EvictionResult(CATALOGUE_UNAVAILABLE, f"the catalogue cannot be asked: {exc}")
    if summary is None:
        return EvictionResult(UNKNOWN_STUDY, f"study {study} is unknown to the catalogue")
    items = (await cached_objects(ctx, study)).get(study, [])
    if not items:
        return EvictionResult(NOT_IN_CACHE, f"study {study} has no instances in the cache tier")
    copies = copies_elsewhere(summary, len(items))
    if len(copies) < settings.min_archive_copies:
        metrics.EVICTIONS.labels("kept_copies").inc()
        held = describe(copies) or "none"
        return EvictionResult(
            TOO_FEW_COPIES,
            f"study {study} needs {settings.min_archive_copies} verified archive cop"
            f"{'y' if settings.min_archive_copies == 1 else 'ies'} covering its {len(items)} "
            f"cached instances on tiers other than the cache; it has {len(copies)} ({held}): "
            "the cache copy is kept", len(items), copies=tuple(f"{t}:{a}" for t, a in copies))
    where = describe(copies)
    freed = await evict(ctx, study, items,
                        f"on demand by {requested_by}; verified copies on {where}",
                        requested_by=f"api:{requested_by}", peer_address=peer_address)
    return EvictionResult(EVICTED, f"evicted from the cache; verified copies on {where}",
                          len(items), freed, tuple(f"{t}:{a}" for t, a in copies))
