"""The gateway's spare temp files: after a C-STORE's response, while its worker waits for the
next request, one empty temp file is made and flushed in the folder of the series just
stored (``FileStore.new_spare``), so that the next instance of that series is written into it
instead of creating its temp file on the critical path (``dicomvault.store.spares``).

Only after a store written on the loop, and only when the loop is otherwise idle (no other
store under way): with several associations at once the loop has better things to do, and
the spare would only move work around. The spare's flush then blocks the loop, like a lone
store's own flushes, in the time the modality takes to send its next request: flushed through
native AIO instead, it was still in flight when the next request came (measured: every other
store found none). Spares unused for ``gateway.spare_max_age_s`` are removed, and all of them
when the gateway stops.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable

from dicomvault.store.filestore import FileStore, StoreError
from dicomvault.store.spares import Spare, discard

log = logging.getLogger(__name__)


class SpareFiles:
    def __init__(self, store: FileStore, max_age_s: float, busy: Callable[[], bool]) -> None:
        """``busy``: whether a store is under way (no spare is made then)."""
        self.store = store
        self.max_age_s = max_age_s
        self._busy = busy
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False

    def after_store(self, loop: asyncio.AbstractEventLoop, key: str, size: int) -> None:
        """A store of ``key`` (``size`` bytes) written on the loop succeeded (its response goes
        out in this same step of the loop): make a spare in its folder on the loop's next
        turn. Not after an object written with O_DIRECT: the next one of its series would be
        too, into a temp file of its own."""
        if 0 < self.store.direct_min_bytes <= size:
            return
        loop.call_soon(self._make, loop, self.store.folder(key))

    def _make(self, loop: asyncio.AbstractEventLoop, folder: str) -> None:
        if self._closed or self._busy() or self.store.spares.has(folder):
            return
        try:
            spare = self.store.new_spare(folder)
        except StoreError as exc:  # the next store creates its own temp file, and says why
            log.debug("no spare temp file", extra={"folder": folder, "error": str(exc)})
            return
        try:
            os.fsync(spare.fd)
        except OSError as exc:
            log.debug("spare temp file not flushed", extra={"folder": folder, "error": str(exc)})
            discard(spare)
            return
        self._offer(loop, spare)

    def _offer(self, loop: asyncio.AbstractEventLoop, spare: Spare) -> None:
        self.store.spares.offer(spare)
        if self._timer is None:
            self._timer = loop.call_later(self.max_age_s, self._expire, loop)

    def _expire(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = None
        if self.store.spares.expire(self.max_age_s) and not self._closed:
            self._timer = loop.call_later(self.max_age_s, self._expire, loop)

    def close(self) -> None:
        """Remove every spare (the gateway stops)."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.store.spares.clear()
