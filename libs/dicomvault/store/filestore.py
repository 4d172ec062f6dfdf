"""File-system object store: atomic writes (temp file, fsync, rename, fsync directory).

With ``batched_names`` (``cache.folder_flush``, ``dicomvault.store.names``) a new file is
flushed once: the temp file, whose name carries its SHA-256 and final name, is flushed with
its data, and the final name is a hard link whose folder is flushed in the background for
many files at once; ``recover`` finishes what a crash left.

Keys are relative paths built by ``instance_key`` from validated UIDs; the store refuses any
key that would leave its root.

Objects of at least ``direct_min_bytes`` are written with O_DIRECT: from a buffer each writing
thread keeps, straight to the device, instead of copied into page-cache pages that must be
allocated first (a 525 kB CT slice: 0.4-0.8 instead of 1.3-1.8 ms of system CPU here, where
freshly allocated pages are expensive). A file system that refuses O_DIRECT (tmpfs, some
network and FUSE file systems) is written through the page cache from then on.

A write through the page cache takes a spare temp file of its folder when one was made
ahead (``new_spare``, ``spares``) instead of creating one.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import itertools
import logging
import mmap
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from dicomvault.store.names import PendingNames, named_temp, parse_named
from dicomvault.store.spares import Spare, Spares

if TYPE_CHECKING:
    from dicomvault.store.aio_sync import AioSync

_TEMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_DIRECT = getattr(os, "O_DIRECT", 0)  # Linux; elsewhere every write goes through the cache
_BLOCK = 4096  # O_DIRECT alignment of memory, length and offset: any logical block size <= it
_CHUNK = 4 << 20  # the per-thread buffer: larger objects go through it in chunks
_serial = itertools.count()  # next() is atomic under the GIL: names never repeat
_buffers = threading.local()  # each writing thread's aligned buffer, reused (pages stay warm)

log = logging.getLogger(__name__)


class StoreError(OSError):
    """The object could not be written or read durably."""


@dataclass(frozen=True, slots=True)
class StoredObject:
    key: str
    size: int
    sha256: str
    # Changes with every write of the key (see ``generation``); not part of the comparison:
    # two reads of the same bytes are the same object.
    generation: str = field(default="", compare=False)


@dataclass(slots=True)
class Draft:
    """A ``FileStore.put`` half done: the temp file written, not yet flushed or in place."""

    stored: StoredObject  # what the finished put returns
    tmp: str
    target: str
    folder: str
    fd: int  # open for writing until placed
    placed: bool = False  # renamed into place (or linked, when ``named``)
    named: bool = False  # the temp name carries SHA-256 and final name: linked, folder flushed later


class FileStore:
    def __init__(self, root: Path, fsync: bool = True, direct_min_bytes: int = 0,
                 batched_names: bool = False, name_delay_s: float = 0.05) -> None:
        """``direct_min_bytes``: objects at least that large are written with O_DIRECT
        (0: never). Only with ``fsync``: a store that does not wait for the device (tests, a
        scratch cache) would otherwise wait for it on every large write.
        ``batched_names``: a new file's final name is linked and its folder flushed in the
        background, every ``name_delay_s`` (``dicomvault.store.names``); only with ``fsync``
        and only where something runs ``recover`` (the gateway, on the cache tier)."""
        self.root = Path(root).resolve()
        self._root = str(self.root)
        self.fsync = fsync
        self.direct_min_bytes = direct_min_bytes if _DIRECT and fsync else 0
        self.root.mkdir(parents=True, exist_ok=True)
        # Temp files made ahead (``new_spare``), taken by ``begin`` (see ``spares``).
        self.spares = Spares(self._root)
        # Final names linked whose folder is not flushed yet (``batched_names``).
        self.names: PendingNames | None = PendingNames(name_delay_s) \
            if batched_names and fsync else None

    def path(self, key: str) -> Path:
        """The file of ``key``. A key with an empty, ``.`` or ``..`` part, a leading ``/``, a
        backslash or a NUL cannot name a path outside the root, so none is resolved (the
        store never creates links; resolving cost several system calls per store)."""
        return Path(self._file(key))

    def _file(self, key: str) -> str:
        """``path(key)`` as text: the write path builds no Path objects."""
        if not key or key.startswith("/") or "\\" in key or "\x00" in key or any(
            part in ("", ".", "..") for part in key.split("/")
        ):
            raise StoreError(f"illegal key {key!r}")
        return f"{self._root}/{key}"

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def put(self, key: str, data: bytes, sha256: str | None = None) -> StoredObject:
        """Write ``data`` under ``key`` atomically; the file is durable when this returns.
        ``sha256``: the caller's digest of ``data``, if it has one (not computed again)."""
        return self.finish(self.begin(key, data, sha256))

    def begin(self, key: str, data: bytes, sha256: str | None = None) -> Draft:
        """The first half of ``put``: ``data`` written to a temp file beside the target, not
        yet flushed nor in place. ``finish`` or ``finish_async`` completes it (and removes
        the temp file when that fails)."""
        target = self._file(key)
        folder, _, name = target.rpartition("/")
        sha256 = sha256 or hashlib.sha256(data).hexdigest()
        # Batched: the temp name says what the file must hold and where it goes (``recover``).
        label = (sha256, name) if self.names is not None else None
        try:
            direct = 0 < self.direct_min_bytes <= len(data)
            spare = None if direct else self.spares.take(folder)
            named = False
            if spare is not None:
                tmp, fd = spare.tmp, spare.fd
            else:
                tmp, fd, direct, named = self._create_temp(folder, direct, label)
            try:
                if direct and not self._write_direct(fd, data):
                    os.close(fd)  # refused: this file system is written through the cache
                    fd = -1
                    os.unlink(tmp)
                    tmp, fd, direct, named = self._create_temp(folder, False, label)
                if not direct:
                    _write_all(fd, data)
                # The inode and mtime stay what they are through the flush and the rename.
                generation = _generation(os.fstat(fd))
            except BaseException:
                if fd >= 0:
                    os.close(fd)
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
        except StoreError:
            raise
        except OSError as exc:
            raise StoreError(f"cannot write {key}: {exc}") from exc
        return Draft(StoredObject(key, len(data), sha256, generation), tmp, target, folder, fd,
                     named=named)

    def finish(self, draft: Draft) -> StoredObject:
        """The second half of ``put``, blocking: flush the temp file, rename it into place,
        flush the folder."""
        with self._finishing(draft), contextlib.closing(self._flushes(draft)) as flushes:
            for fd, data_only in flushes:
                (os.fdatasync if data_only else os.fsync)(fd)
        return draft.stored

    async def finish_async(self, draft: Draft, aio: AioSync) -> StoredObject:
        """``finish`` with both flushes awaited through ``aio`` instead of blocking the
        loop: the same steps in the same order, durable when this returns."""
        with self._finishing(draft), contextlib.closing(self._flushes(draft)) as flushes:
            for fd, data_only in flushes:
                await aio.fsync(fd, data_only)
        return draft.stored

    def _flushes(self, draft: Draft) -> Iterator[tuple[int, bool]]:
        """The steps of ``finish``, each flush left to the caller: (descriptor, data only)."""
        if self.fsync:
            yield draft.fd, True
        fd, draft.fd = draft.fd, -1
        os.close(fd)
        if draft.named and self._link(draft):
            return  # durable under its temp name; the final name's folder is flushed later
        os.replace(draft.tmp, draft.target)
        draft.placed = True
        if self.fsync:
            dfd = os.open(draft.folder, os.O_RDONLY | os.O_DIRECTORY)
            try:
                yield dfd, False
            finally:
                os.close(dfd)

    def _link(self, draft: Draft) -> bool:
        """Make the final name a hard link to the flushed temp file and hand its folder to
        ``names``; False when that cannot be (the name exists: the write replaces a copy in
        place; or this file system has no hard links), for a rename instead."""
        names = self.names  # read once: another thread may turn batching off meanwhile
        if names is None:
            return False
        try:
            os.link(draft.tmp, draft.target)
        except FileExistsError:
            return False
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EMLINK, errno.ENOSYS):
                raise
            log.warning("file system refuses hard links; every folder is flushed per file",
                        extra={"root": self._root, "error": str(exc)})
            self.names = None
            return False
        draft.placed = True
        names.add(draft.folder, draft.tmp, draft.target)
        return True

    def flush_names(self) -> None:
        """Flush now every folder with final names pending, then drop their temp names."""
        if self.names is not None:
            self.names.flush()

    def close(self) -> None:
        """Flush the pending final names and stop their thread (also done at exit)."""
        if self.names is not None:
            self.names.close()

    @contextlib.contextmanager
    def _finishing(self, draft: Draft) -> Iterator[None]:
        """A failed ``finish``: the temp file goes (unless already in place); StoreError."""
        try:
            yield
        except BaseException as exc:
            if draft.fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(draft.fd)
                draft.fd = -1
            if not draft.placed:
                with contextlib.suppress(OSError):
                    os.unlink(draft.tmp)
            if isinstance(exc, OSError) and not isinstance(exc, StoreError):
                raise StoreError(f"cannot write {draft.stored.key}: {exc}") from exc
            raise

    def folder(self, key: str) -> str:
        """The folder of ``key``'s file (where its temp file is made)."""
        return self._file(key).rpartition("/")[0]

    def new_spare(self, folder: str) -> Spare:
        """An empty temp file in ``folder``, for ``spares.offer`` once the caller flushed it
        (``fsync`` of its ``fd``: its entry in the folder is then durable too, and the write
        that takes it flushes only its own data and size)."""
        try:
            tmp, fd, _, _ = self._create_temp(folder, False)
        except OSError as exc:
            raise StoreError(f"cannot make a temp file in {folder}: {exc}") from exc
        return Spare(tmp, fd, folder, 0.0)

    def _create_temp(self, folder: str, direct: bool,
                     label: tuple[str, str] | None = None) -> tuple[str, int, bool, bool]:
        """A new temp file in ``folder`` (created with its parents when missing, or when a
        concurrent ``delete`` pruned it in between); (path, descriptor open for writing,
        whether it is open with O_DIRECT, whether its name carries ``label``). Its name is
        unique to this process and thread: O_EXCL never meets another writer's. ``direct``:
        ask for O_DIRECT, which is dropped (and never asked for again) where the file system
        refuses it. ``label``: (SHA-256, final name) to carry in the name (``names``)."""
        for attempt in range(3):
            prefix = f"{folder}/.tmp-{os.getpid()}-{threading.get_ident()}-{next(_serial)}"
            tmp = named_temp(prefix, *label) if label is not None else None
            named = tmp is not None
            tmp = tmp or f"{prefix}.part"
            try:
                flags = _TEMP_FLAGS | (_DIRECT if direct else 0)
                return tmp, os.open(tmp, flags, 0o600), direct, named
            except FileNotFoundError:
                if attempt == 2:
                    raise
                os.makedirs(folder, exist_ok=True)
            except OSError as exc:
                if not direct or exc.errno != errno.EINVAL:
                    raise
                self._no_direct(exc)
                with contextlib.suppress(OSError):
                    os.unlink(tmp)  # some file systems create the file before refusing
                return self._create_temp(folder, False, label)
        raise AssertionError("unreachable")

    def _write_direct(self, fd: int, data: bytes) -> bool:
        """Write ``data`` with O_DIRECT through this thread's aligned buffer, the last block
        padded with zeros and cut off again (ftruncate); False, nothing to keep, when the
        file system refuses the aligned write."""
        buf = getattr(_buffers, "buf", None)
        if buf is None:
            buf = _buffers.buf = mmap.mmap(-1, _CHUNK)  # page-aligned
        view = memoryview(data)
        try:
            for start in range(0, len(data), _CHUNK):
                chunk = view[start:start + _CHUNK]
                size = len(chunk)
                aligned = -(-size // _BLOCK) * _BLOCK
                buf[:size] = chunk
                if aligned > size:
                    buf[size:aligned] = bytes(aligned - size)
                out = memoryview(buf)[:aligned]
                try:
                    while out:  # O_DIRECT writes are whole or fail; loop on a short one anyway
                        out = out[os.write(fd, out):]
                finally:
                    out.release()
        except OSError as exc:
            if exc.errno != errno.EINVAL:
                raise
            self._no_direct(exc)
            return False
        if len(data) % _BLOCK:
            os.ftruncate(fd, len(data))
        return True

    def _no_direct(self, exc: OSError) -> None:
        if self.direct_min_bytes:
            log.warning("file system refuses O_DIRECT; writing through the page cache",
                        extra={"root": self._root, "error": str(exc)})
        self.direct_min_bytes = 0

    def get(self, key: str) -> bytes:
        try:
            return self.path(key).read_bytes()
        except OSError as exc:
            raise StoreError(f"cannot read {key}: {exc}") from exc

    def stat(self, key: str) -> StoredObject:
        data = self.get(key)
        return StoredObject(key, len(data), hashlib.sha256(data).hexdigest())

    def generation(self, key: str) -> str | None:
        """Inode and nanosecond mtime: every ``put`` renames a new file into place."""
        try:
            return _generation(os.stat(self._file(key)))
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StoreError(f"cannot look up {key}: {exc}") from exc

    def delete(self, key: str) -> bool:
        path = self.path(key)
        if self.names is not None and (tmp := self.names.forget(str(path))) is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)  # its temp name too: nothing for ``recover`` to bring back
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        for parent in (path.parent, path.parent.parent):  # prune empty series/study folders
            try:
                parent.rmdir()
            except OSError:
                break
        return True

    def remove_stale_temps(self, before: float) -> int:
        """Remove temp files last modified before ``before`` (epoch seconds): what writes cut
        short and spares of a process killed outright left behind; how many went. A temp
        file that old belongs to no write under way (``before`` is the caller's margin)."""
        removed = 0
        for dirpath, _dirs, files in os.walk(self.root):
            for name in files:
                if not (name.startswith(".tmp-") and name.endswith(".part")):
                    continue
                if parse_named(name) is not None:
                    continue  # possibly an acknowledged file's only durable name: ``recover``
                full = os.path.join(dirpath, name)
                try:
                    if os.lstat(full).st_mtime < before:
                        os.unlink(full)
                        removed += 1
                except FileNotFoundError:
                    continue
        return removed

    def recover(self, settled_before: float) -> tuple[list[str], int]:
        """Finish what a crash left of batched writes (``names``): every temp file named with
        its SHA-256 and final name, last modified before ``settled_before`` (epoch seconds:
        no write under way keeps one that long), is

        - still linked to its final name: the folder is flushed, the temp name removed;
        - alone, with content matching its SHA-256 and no file under the final name: linked to
          it (never replacing a copy written meanwhile), the folder flushed, the temp name
          removed (the final name had been lost before its folder's flush);
        - otherwise (content cut short: never acknowledged; or a later copy under the final
          name) removed.

        Returns (the keys put back under their final name, how many temp files' content was
        dropped)."""
        promoted: list[str] = []
        removed = 0
        for dirpath, _dirs, files in os.walk(self.root):
            linked: list[str] = []  # temp names to drop once the folder is flushed
            for name in files:
                if (parsed := parse_named(name)) is None:
                    continue
                tmp, target = f"{dirpath}/{name}", f"{dirpath}/{parsed[1]}"
                try:
                    st = os.lstat(tmp)
                    if st.st_mtime >= settled_before:
                        continue
                    if st.st_nlink == 1 and _sha256_of(tmp) == parsed[0]:
                        with contextlib.suppress(FileExistsError):  # else: a later copy
                            os.link(tmp, target)
                            promoted.append(target[len(self._root) + 1:])
                            log.warning("a stored file got its name back after a crash",
                                        extra={"path": target})
                            st = os.lstat(tmp)
                    if st.st_nlink > 1:
                        linked.append(tmp)
                    else:
                        os.unlink(tmp)
                        removed += 1
                except FileNotFoundError:
                    continue
            if linked:
                dfd = os.open(dirpath, os.O_RDONLY | os.O_DIRECTORY)
                try:
                    os.fsync(dfd)
                finally:
                    os.close(dfd)
                for tmp in linked:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(tmp)
        return promoted, removed

    def keys(self, modified_after: float = 0.0, prefix: str = "") -> Iterator[tuple[str, float]]:
        """(key, mtime) of every stored object, optionally only those changed after a time
        and only under a folder prefix such as ``"<study uid>/"``."""
        top = self.path(prefix.rstrip("/")) if prefix.strip("/") else self.root
        for dirpath, _dirs, files in os.walk(top):
            for name in files:
                if name.startswith(".tmp-"):
                    continue
                full = Path(dirpath) / name
                try:
                    mtime = full.stat().st_mtime
                except FileNotFoundError:
                    continue
                if mtime > modified_after:
                    yield full.relative_to(self.root).as_posix(), mtime


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _sha256_of(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _generation(st: os.stat_result) -> str:
    return f"{st.st_ino:x}-{st.st_mtime_ns}"
