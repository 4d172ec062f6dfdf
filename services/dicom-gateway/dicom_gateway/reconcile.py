"""Reconciliation sweep: files in the cache tier that the catalogue does not know get their
InstanceStored again (source "reconcile").

Why: the embedded broker (Tansu, memory storage) acknowledges writes to topics that a restart
then loses, so an acknowledged InstanceStored can vanish. The sweep is level-triggered: every
``reconcile_interval_s`` it looks at files modified in the last ``reconcile_window_s`` (all
files at start-up), asks the catalogue which SOP Instance UIDs it has never recorded, and
re-emits their events from the files' headers. Event ids are derived from (key, sha256, the
copy's generation) like the gateway's own, so a re-emitted event the catalogue did see after
all is de-duplicated there. Only the store interface is used (``keys()`` gives each object's
modification time), so the sweep works on a file system and on S3 alike.

Files younger than ``store_timeout_s`` + 1 s are left alone: their C-STORE may still be
deciding, and a failed one removes its file.

At start-up (file-system caches) the sweep also removes temp files (``.tmp-*.part``) older
than ``STALE_TEMP_S``: what writes cut short and the spare temp files of a gateway killed
outright left behind. No write of any gateway sharing the cache keeps a temp file that long
(a store times out after ``store_timeout_s``, a spare goes after ``spare_max_age_s``, ≤ 600 s).

Every sweep of a file-system cache first finishes what a crash left of batched writes
(``cache.folder_flush``, ``FileStore.recover``): a complete file whose final name was lost
before its folder's flush gets it back (and, unknown to the catalogue, its event), a temp file
cut short goes. Temp files younger than ``store_timeout_s`` + 1 s are left alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import time

from dicom_gateway import metrics
from dicom_gateway.ingest import stored_event
from dicom_gateway.part10 import Malformed, instance_stored, read_header
from dicom_gateway.settings import GatewaySettings
from dicomvault.bus import Publisher, PublishError
from dicomvault.query import CatalogueClient
from dicomvault.store import CacheStore, FileStore, StoreError, is_valid_uid

log = logging.getLogger(__name__)

STALE_TEMP_S = 3600.0  # a temp file untouched this long belongs to no write under way


class Reconciler:
    def __init__(self, settings: GatewaySettings, store: CacheStore, publisher: Publisher,
                 catalogue: CatalogueClient) -> None:
        self.cfg = settings.gateway
        self.topic = settings.bus.topics.instances
        self.store = store
        self.publisher = publisher
        self.catalogue = catalogue
        self.sweeps = 0  # completed sweeps (tests and /readyz detail)
        self.last_error = ""

    async def run(self, stop: asyncio.Event) -> None:
        full = True  # the first sweep walks everything
        try:
            await self.remove_stale_temps()
        except OSError as exc:
            log.warning("stale temp files not removed", extra={"error": repr(exc)})
        while not stop.is_set():
            started = time.time()
            try:
                emitted = await self.sweep(0.0 if full else started - self.cfg.reconcile_window_s)
                metrics.RECONCILE_SWEEPS.labels("ok").inc()
                self.sweeps += 1
                self.last_error = ""
                full = False
                if emitted:
                    log.warning("reconciliation re-emitted lost events", extra={"count": emitted})
            except Exception as exc:  # noqa: BLE001 - retried next interval
                metrics.RECONCILE_SWEEPS.labels("failed").inc()
                self.last_error = repr(exc)
                log.warning("reconciliation sweep failed", extra={"error": repr(exc)})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.cfg.reconcile_interval_s)

    async def remove_stale_temps(self) -> int:
        """Remove the cache's temp files older than ``STALE_TEMP_S`` (file system only)."""
        if not isinstance(self.store, FileStore):
            return 0
        removed = await asyncio.to_thread(self.store.remove_stale_temps,
                                          time.time() - STALE_TEMP_S)
        if removed:
            log.info("removed stale temp files from the cache", extra={"count": removed})
        return removed

    async def recover(self, settled: float) -> list[tuple[str, float]]:
        """Finish batched writes a crash cut short (file system only): the keys put back under
        their final name, with their modification times."""
        if not isinstance(self.store, FileStore):
            return []
        promoted, removed = await asyncio.to_thread(self.store.recover, settled)
        if promoted:
            metrics.RECOVERED_FILES.labels("named").inc(len(promoted))
            log.warning("stored files got their names back after a crash",
                        extra={"count": len(promoted)})
        if removed:
            metrics.RECOVERED_FILES.labels("dropped").inc(removed)
            log.info("removed temp files of writes cut short", extra={"count": removed})
        return await asyncio.to_thread(self._with_mtimes, promoted)

    def _with_mtimes(self, keys: list[str]) -> list[tuple[str, float]]:
        found = []
        for key in keys:
            with contextlib.suppress(FileNotFoundError):
                found.append((key, os.stat(self.store.path(key)).st_mtime))
        return found

    async def sweep(self, modified_after: float) -> int:
        """One sweep; returns how many events it re-emitted."""
        settled = time.time() - self.cfg.store_timeout_s - 1.0
        promoted = await self.recover(settled)
        keys = await asyncio.to_thread(
            lambda: [(k, mtime) for k, mtime in self.store.keys(modified_after)
                     if mtime < settled])
        by_sop: dict[str, tuple[str, float]] = {}
        for key, mtime in keys + promoted:
            sop = key.rsplit("/", 1)[-1].removesuffix(".dcm")
            if key.endswith(".dcm") and is_valid_uid(sop):
                by_sop[sop] = (key, mtime)
        emitted = 0
        sops = list(by_sop)
        for i in range(0, len(sops), self.cfg.reconcile_batch):
            unknown = await self.catalogue.unknown(sops[i:i + self.cfg.reconcile_batch])
            for sop in unknown:
                if sop in by_sop and await self._reemit(*by_sop[sop]):
                    emitted += 1
        return emitted

    async def _reemit(self, key: str, mtime: float) -> bool:
        try:
            data, generation = await asyncio.to_thread(self._read, key)
            header = read_header(data)
        except (StoreError, Malformed, FileNotFoundError) as exc:
            log.error("unreadable file in the cache tier", extra={"key": key, "error": str(exc)})
            return False
        msg = instance_stored(header, size=len(data), sha256=hashlib.sha256(data).hexdigest(),
                              key=key, calling_ae="", called_ae=self.cfg.ae_title,
                              source="reconcile", received=mtime)
        try:
            await self.publisher.publish(self.topic, stored_event(msg, generation=generation),
                                         key=msg.study_instance_uid)
        except PublishError:
            metrics.PUBLISH_FAILURES.labels("reconcile").inc()
            raise
        metrics.RECONCILE_REEMITTED.inc()
        return True

    def _read(self, key: str) -> tuple[bytes, str]:
        generation = self.store.generation(key)
        if generation is None:
            raise StoreError(f"{key} is gone")
        return self.store.get(key), generation
