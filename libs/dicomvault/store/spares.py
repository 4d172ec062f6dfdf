"""Spare temp files: empty temp files made ahead, in the folder the next object is likely to
go to, so that a write finds its temp file already created (and flushed) instead of creating
it on the store's critical path.

Creating a file allocates an inode, which on ext4 without a journal scans for inodes freed in
the last minutes (0.05 ms here, up to ~0.9 ms after a mass delete), and the first flush of a
new file also writes its folder's entry (ext4 without a journal: ``ext4_sync_parent``). A spare
made and flushed while the writer waits for its next object moves both off the store's path:
one association sending small images, write phase 1.26-1.50 -> 0.95-1.15 ms
(docs/performance.md, thirteenth run).

A spare is taken once (``take``), by a plain ``FileStore.begin`` for its folder, and then is
that write's temp file: written, flushed, renamed into place, or removed when the write fails.
At most ``limit`` spares exist per pool (the oldest goes); ``expire`` removes those unused for
a while, so a series that got its last object leaves no temp file behind for long (its empty
folders are pruned as ``FileStore.delete`` prunes them). A spare left by a process that died
is an empty ``.tmp-*.part`` file, like the temp file of a write cut short; object listings
skip both, and ``FileStore.remove_stale_temps`` (the gateway's start-up sweep) removes both
once old.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from dataclasses import dataclass


@dataclass(slots=True)
class Spare:
    tmp: str  # path of the empty temp file
    fd: int  # open for writing
    folder: str
    made: float  # time.monotonic() when offered


class Spares:
    """The spare temp files of one ``FileStore``: at most one per folder, ``limit`` in all.
    Thread-safe: writes on threads take spares that the loop made."""

    def __init__(self, root: str, limit: int = 4) -> None:
        """``root``: the store's root, never pruned; ``limit``: at least 1."""
        if limit < 1:
            raise ValueError("a pool of spares holds at least one")
        self.root = root
        self.limit = limit
        self._pool: dict[str, Spare] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._pool)

    def has(self, folder: str) -> bool:
        return folder in self._pool

    def take(self, folder: str) -> Spare | None:
        """The spare of ``folder``, now the caller's (None: there is none)."""
        if not self._pool:  # the common case of a process that makes none: no lock
            return None
        with self._lock:
            return self._pool.pop(folder, None)

    def offer(self, spare: Spare) -> None:
        """Keep ``spare`` for the next write to its folder; the oldest beyond ``limit`` (or a
        previous spare of the same folder) is removed."""
        spare.made = time.monotonic()
        with self._lock:
            old = [self._pool.pop(spare.folder)] if spare.folder in self._pool else []
            while len(self._pool) >= self.limit:
                old.append(self._pool.pop(next(iter(self._pool))))
            self._pool[spare.folder] = spare
        for gone in old:
            discard(gone)

    def expire(self, max_age_s: float) -> int:
        """Remove the spares offered more than ``max_age_s`` ago; how many are left."""
        cutoff = time.monotonic() - max_age_s
        with self._lock:
            old = [s for s in self._pool.values() if s.made <= cutoff]
            for spare in old:
                del self._pool[spare.folder]
            left = len(self._pool)
        for spare in old:
            discard(spare, prune_below=self.root)
        return left

    def clear(self) -> None:
        """Remove every spare (the writer stops)."""
        self.expire(float("-inf"))


def discard(spare: Spare, prune_below: str = "") -> None:
    """Close and remove ``spare``; ``prune_below`` (a store's root): then remove its folder
    and the one above when that left them empty, never the root itself (a concurrent write
    recreates them, as after ``FileStore.delete``)."""
    with contextlib.suppress(OSError):
        os.close(spare.fd)
    with contextlib.suppress(OSError):
        os.unlink(spare.tmp)
    folder = spare.folder
    for _ in range(2 if prune_below else 0):
        if not folder.startswith(prune_below + "/"):
            break
        try:
            os.rmdir(folder)
        except OSError:
            break
        folder = folder.rpartition("/")[0]
