"""File-system object store: atomic writes (temp file, fsync, rename, fsync directory).

Keys are relative paths built by ``instance_key`` from validated UIDs; the store refuses any
key that would leave its root.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

_TEMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_serial = itertools.count()  # next() is atomic under the GIL: names never repeat


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


class FileStore:
    def __init__(self, root: Path, fsync: bool = True) -> None:
        self.root = Path(root).resolve()
        self._root = str(self.root)
        self.fsync = fsync
        self.root.mkdir(parents=True, exist_ok=True)

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
        target = self._file(key)
        folder = target.rpartition("/")[0]
        try:
            tmp, fd = self._create_temp(folder)
            try:
                try:
                    _write_all(fd, data)
                    if self.fsync:
                        os.fdatasync(fd)
                    # The inode and mtime stay what they are through the rename.
                    generation = _generation(os.fstat(fd))
                finally:
                    os.close(fd)
                os.replace(tmp, target)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
            if self.fsync:
                dfd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
                try:
                    os.fsync(dfd)
                finally:
                    os.close(dfd)
        except StoreError:
            raise
        except OSError as exc:
            raise StoreError(f"cannot write {key}: {exc}") from exc
        return StoredObject(key, len(data), sha256 or hashlib.sha256(data).hexdigest(),
                            generation)

    def _create_temp(self, folder: str) -> tuple[str, int]:
        """A new temp file in ``folder`` (created with its parents when missing, or when a
        concurrent ``delete`` pruned it in between); (path, descriptor open for writing).
        Its name is unique to this process and thread: O_EXCL never meets another writer's."""
        for attempt in range(3):
            tmp = f"{folder}/.tmp-{os.getpid()}-{threading.get_ident()}-{next(_serial)}.part"
            try:
                return tmp, os.open(tmp, _TEMP_FLAGS, 0o600)
            except FileNotFoundError:
                if attempt == 2:
                    raise
                os.makedirs(folder, exist_ok=True)
        raise AssertionError("unreachable")

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


def _generation(st: os.stat_result) -> str:
    return f"{st.st_ino:x}-{st.st_mtime_ns}"
