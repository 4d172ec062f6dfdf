"""The cache file system's free-space watermark: refuse a store before the disk is full.

A full cache disk also starves what shares it (the embedded catalogue's SQLite, the logs), so
the gateway stops accepting objects while free space is still above zero: below
``min_free_bytes`` or ``min_free_percent`` (either) every store is refused with 0xA700
(STOW-RS 507). ``statvfs`` is cached for ``CACHE_S`` and the bytes written since are
subtracted, so the check costs microseconds. Stores without a local root (S3) are not
checked.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

from dicom_gateway import metrics
from dicom_gateway.settings import GatewaySection

log = logging.getLogger(__name__)

CACHE_S = 0.5
LOW_SPACE = "the cache file system is below its free-space watermark"


class FreeSpace:
    """``refusal(size)``: why a store of ``size`` bytes is refused now, or ''."""

    def __init__(self, store: object, section: GatewaySection) -> None:
        root = getattr(store, "root", None)
        self.root = Path(root) if isinstance(root, str | Path) else None
        self.min_bytes = section.min_free_bytes
        self.min_percent = section.min_free_percent
        self._lock = threading.Lock()
        self._free = self._total = 0
        self._checked = -CACHE_S

    def _statvfs(self) -> tuple[int, int]:
        now = time.monotonic()
        with self._lock:
            if now - self._checked >= CACHE_S:
                st = os.statvfs(self.root)
                self._free, self._total = st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize
                self._checked = now
            return self._free, self._total

    def _spend(self, size: int) -> None:
        with self._lock:
            self._free -= size

    def refusal(self, size: int) -> str:
        if self.root is None or (self.min_bytes == 0 and self.min_percent == 0):
            return ""
        try:
            free, total = self._statvfs()
        except OSError as exc:
            log.warning("cannot read the cache's free space", extra={"error": str(exc)})
            return ""
        after = free - size
        floor = max(self.min_bytes, int(total * self.min_percent / 100))
        if after < floor:
            metrics.LOW_SPACE_REFUSALS.inc()
            log.warning(LOW_SPACE, extra={"free_bytes": free, "watermark_bytes": floor})
            return LOW_SPACE
        self._spend(size)
        return ""
