"""Final names made durable in the background: one device flush per stored file instead of two.

A durable write through a temp file needs two flushes: the temp file's (its data, its inode and,
for a new file, its folder entry) and, after the rename, the folder's (the final name). Both
are device flushes, waited for in a row before the store may answer: on the benchmark machine
the folder's was the largest single cost of a small C-STORE (docs/performance.md).

With ``folder_flush: batched`` (``FileStore``) a write still flushes its temp file before it
completes, but that temp file's name carries what recovery needs (``named_temp``): the SHA-256
of the content and the final file name. The final name is then made as a hard link to the same
inode, not a rename, and its folder is flushed here, for all names made in that folder during
``delay_s`` at once, on a thread of its own; only after that flush is the temp name removed.
So at every moment one of the two names is durable and names the complete, flushed content:

- before the folder's flush, a crash can lose the final name, never the temp name (flushed
  with the data; Linux's ext3/ext4, XFS, btrfs and F2FS write a new file's entry with the
  file's own fsync: ``folder_flush: auto`` batches only on those);
- ``FileStore.recover`` (the gateway's reconcile sweep, at start-up and every interval) puts
  every such temp file back under its final name once its content matches the SHA-256 in its
  name, and removes those that do not (a write cut short: never acknowledged);
- a temp file still linked to its final name (a process stopped before its flush) only needs
  the folder flushed and the temp name removed.

A rewrite of an existing name (a duplicate replacing the copy in place) cannot be linked: it
is renamed and its folder flushed before it completes, as without batching.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import re
import threading
import time
import weakref
from typing import Literal

FolderFlush = Literal["auto", "each", "batched"]

log = logging.getLogger(__name__)

# Linux file systems on which fsync of a newly created file also makes its folder entry
# durable: ext4 (without a journal: ext4_sync_parent; with one: the creating transaction's
# commit), ext3 (same driver), XFS (log force up to the inode's last change), btrfs (the new
# name is logged with the inode), F2FS (fsync of a new inode checkpoints its dentry).
NEW_ENTRY_WITH_FSYNC = frozenset({"ext3", "ext4", "xfs", "btrfs", "f2fs"})

_NAMED = re.compile(r"\.tmp-\d+-\d+-\d+-([0-9a-f]{64})-(.+)\.part\Z")
MAX_NAME = 160  # a final file name longer than this is not carried (file names end at 255)
_RETRY_S = 1.0  # after a folder flush failed
_OCTAL = re.compile(r"\\([0-7]{3})")  # mountinfo escapes space, tab, newline, backslash


def named_temp(prefix: str, sha256: str, name: str) -> str | None:
    """The temp file name for a batched write of ``name`` with content ``sha256``, or None
    when ``name`` is too long to be carried (that write flushes its folder itself)."""
    if len(name) > MAX_NAME or "/" in name:
        return None
    return f"{prefix}-{sha256}-{name}.part"


def parse_named(name: str) -> tuple[str, str] | None:
    """(sha256, final file name) of a temp file name made by ``named_temp``; None otherwise."""
    m = _NAMED.match(name)
    return (m[1], m[2]) if m else None


def mount_type(path: str, mountinfo: str | None = None) -> str:
    """The file-system type of the mount that holds ``path`` (Linux; "" where unknown)."""
    if mountinfo is None:
        try:
            with open("/proc/self/mountinfo", encoding="utf-8") as fh:
                mountinfo = fh.read()
        except OSError:
            return ""
    real = os.path.realpath(path)
    best, kind = -1, ""
    for line in mountinfo.splitlines():
        fields = line.split()
        if " - " not in line or len(fields) < 5:
            continue
        point = _OCTAL.sub(lambda m: chr(int(m[1], 8)), fields[4])
        inside = real == point or real.startswith(point.rstrip("/") + "/")
        if inside and len(point) > best:
            best, kind = len(point), line.split(" - ", 1)[1].split()[0]
    return kind


def resolve(setting: FolderFlush, root: str, mountinfo: str | None = None) -> bool:
    """Whether a store at ``root`` batches its folder flushes under ``setting``."""
    if setting == "auto":
        return mount_type(root, mountinfo) in NEW_ENTRY_WITH_FSYNC
    return setting == "batched"


class PendingNames:
    """Final names linked but not yet flushed, by folder; a thread flushes each folder once
    per ``delay_s`` and then removes the temp names. Thread-safe."""

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self.flushes = 0  # folder flushes done (tests, benchmarks)
        self._reset()
        _all.add(self)

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._folders: dict[str, list[tuple[str, str]]] = {}  # folder -> [(temp, target)]
        self._targets: dict[str, str] = {}  # target -> its temp
        self._thread: threading.Thread | None = None
        self._closing = False

    def __len__(self) -> int:
        with self._lock:
            return len(self._targets)

    def add(self, folder: str, tmp: str, target: str) -> None:
        """``target`` was linked to ``tmp`` (flushed): flush ``folder``, then drop ``tmp``."""
        with self._lock:
            self._folders.setdefault(folder, []).append((tmp, target))
            self._targets[target] = tmp
            if self._thread is None and not self._closing:
                self._thread = threading.Thread(target=self._run, name="folder-flush",
                                                daemon=True)
                self._thread.start()
            self._wake.notify()

    def forget(self, target: str) -> str | None:
        """Stop tracking ``target`` (it is being deleted); its temp file, for the caller to
        remove, or None."""
        with self._lock:
            tmp = self._targets.pop(target, None)
            if tmp is not None:
                folder = target.rpartition("/")[0]
                entries = self._folders.get(folder, [])
                with contextlib.suppress(ValueError):
                    entries.remove((tmp, target))
                if not entries:
                    self._folders.pop(folder, None)
            return tmp

    def flush(self) -> bool:
        """Flush every folder with names pending, then remove their temp names. A folder
        whose flush fails keeps its temp names (durable, so ``recover`` finds them) and is
        tried again on the next round; False when one failed."""
        ok = True
        with self._lock:
            folders, self._folders = self._folders, {}
        for folder, entries in folders.items():
            try:
                dfd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
                try:
                    os.fsync(dfd)
                finally:
                    os.close(dfd)
            except FileNotFoundError:  # its names were deleted meanwhile (and the folder)
                self._drop(entries)
                continue
            except OSError as exc:
                log.error("cannot flush a cache folder; its temp names are kept",
                          extra={"folder": folder, "error": str(exc)})
                with self._lock:
                    for entry in entries:
                        if self._targets.get(entry[1]) == entry[0]:
                            self._folders.setdefault(folder, []).append(entry)
                ok = False
                continue
            self.flushes += 1
            self._drop(entries)
        return ok

    def _drop(self, entries: list[tuple[str, str]]) -> None:
        for tmp, target in entries:
            with self._lock:
                if self._targets.get(target) == tmp:
                    del self._targets[target]
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    def close(self) -> None:
        """Flush what is pending and stop the thread (also at interpreter exit)."""
        with self._lock:
            self._closing = True
            thread, self._thread = self._thread, None
            self._wake.notify()
        if thread is not None and thread is not threading.current_thread():
            thread.join()
        self.flush()
        with self._lock:
            self._closing = False

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._folders and not self._closing:
                    self._wake.wait()
                if self._closing:
                    return
            time.sleep(self.delay_s)  # gather the names made meanwhile into the same flushes
            if not self.flush():
                time.sleep(_RETRY_S)  # a failing device: retry, but not every few ms


_all: weakref.WeakSet[PendingNames] = weakref.WeakSet()


def _after_fork() -> None:
    # A forked child has none of the parent's threads, and a lock it copied may be held.
    for pending in list(_all):
        pending._reset()


def _at_exit() -> None:
    for pending in list(_all):
        with contextlib.suppress(Exception):
            pending.close()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)
atexit.register(_at_exit)
