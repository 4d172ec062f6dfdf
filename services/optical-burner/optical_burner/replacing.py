"""New bytes under a UID a volume holds (the gateway's duplicate policy ``replace``: the cache
sha256 differs from the latest copy's) are written again: in place while that copy is on the
open volume and the volume has room for the difference, else into the study's next part like
new instances (the archive's writer does that) — a Closed volume is never rewritten. The
highest part holding a UID has its latest write (``volumes.latest`` / ``volumes.effective``):
what StudyArchived counts (each UID once) and what a retrieve reads.

Here: the in-place rewrite on the open volume."""

from __future__ import annotations

import asyncio
import logging

from dicomvault.query import InstanceLocation
from dicomvault.store import CacheStore
from optical_burner import metrics
from optical_burner.copying import copy_in
from optical_burner.packing import cost
from optical_burner.settings import OpticalSection
from optical_burner.volumes import (
    InstanceEntry,
    Latest,
    StudyEntry,
    Volume,
    VolumeState,
    VolumeStore,
)

log = logging.getLogger(__name__)


class InPlace:
    """Rewrites replaced instances on the open volume of one optical archive."""

    def __init__(self, cfg: OpticalSection, store: VolumeStore, cache: CacheStore) -> None:
        self.cfg, self.store, self.cache = cfg, store, cache

    async def rewrite_open(self, changed: list[InstanceLocation], have: dict[str, Latest]
                           ) -> set[str]:
        """Rewrite in place the ``changed`` instances whose latest copy is on the open volume
        (not in an image yet) while it has room for the difference; return their UIDs.

        Smallest growth first: once one does not fit, no later one does, and the free space
        stays below each one's whole cost — so packing never puts one of them into the open
        volume next to its old entry (a UID is in a volume once, as in its DICOMDIR)."""
        done: set[str] = set()
        on_open = [i for i in changed if have[i.sop_instance_uid][0].state == VolumeState.OPEN]
        for inst in sorted(on_open, key=lambda i: self._growth(i, have[i.sop_instance_uid][2])):
            vol, entry, old = have[inst.sop_instance_uid]
            if self._growth(inst, old) > vol.free_bytes:
                break
            await asyncio.to_thread(self.rewrite, vol, entry, old, inst)
            done.add(inst.sop_instance_uid)
        return done

    def _growth(self, inst: InstanceLocation, old: InstanceEntry) -> int:
        return cost(self.cfg, inst.size_bytes) - cost(self.cfg, old.size_bytes)

    def rewrite(self, vol: Volume, entry: StudyEntry, old: InstanceEntry,
                inst: InstanceLocation) -> None:
        """New bytes of ``old`` on the open volume: the file first (read back), then the
        manifest. A crash in between leaves the manifest's old checksum, so the next STORE
        run still sees the instance as changed and writes it again."""
        (new,) = copy_in(self.store, self.cache, vol, [inst])
        if old.storage_key != inst.storage_key:
            self.store.data(vol.label).delete(old.storage_key)
        entry.instances = [new if i is old else i for i in entry.instances]
        entry.size_bytes += new.size_bytes - old.size_bytes
        vol.used_bytes += self._growth(inst, old)
        vol.data_bytes += new.size_bytes - old.size_bytes
        self.store.save(vol)
        metrics.BYTES_WRITTEN.labels(self.cfg.archive_id).inc(new.size_bytes)
        log.info("replaced instance rewritten on the open volume",
                 extra={"study": entry.study_instance_uid, "volume": vol.label,
                        "archive": self.cfg.archive_id})
