"""The cache tier as every service sees it: one interface, two back ends.

``open_cache(settings.cache)`` gives a ``FileStore`` (``backend: fs``, the default) or an
``S3Store`` (``backend: s3``); callers use only the ``CacheStore`` methods, so they work on
either. The methods block; async callers use ``asyncio.to_thread``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from dicomvault.store import names
from dicomvault.store.filestore import FileStore, StoredObject
from dicomvault.store.s3store import S3Store

if TYPE_CHECKING:  # dicomvault.settings imports S3Settings from this package
    from dicomvault.settings import CacheSettings


@runtime_checkable
class CacheStore(Protocol):
    """What FileStore and S3Store both offer."""

    def put(self, key: str, data: bytes, sha256: str | None = None) -> StoredObject:
        """Write atomically; durable (and verified) when this returns. Raises StoreError.
        ``sha256``: the caller's digest of ``data``, when it has one."""

    def get(self, key: str) -> bytes:
        """The stored bytes. Raises StoreError (also when the object is absent)."""

    def exists(self, key: str) -> bool:
        """Whether an object is stored under ``key``. Raises StoreError when it cannot tell."""

    def stat(self, key: str) -> StoredObject:
        """Size and SHA-256 of the stored bytes (read back)."""

    def delete(self, key: str) -> bool:
        """Remove the object; False when there was none."""

    def keys(self, modified_after: float = 0.0, prefix: str = "") -> Iterator[tuple[str, float]]:
        """(key, modification time as POSIX seconds) of every object, optionally newer only
        and under a key prefix (``"<study uid>/"``)."""

    def generation(self, key: str) -> str | None:
        """A token that changes every time ``key`` is (re)written; None when it is absent."""


def open_cache(settings: CacheSettings) -> CacheStore:
    """The cache tier's store for ``settings`` (``dicomvault.settings.CacheSettings``)."""
    if settings.backend == "s3":
        return S3Store(settings.s3)
    return FileStore(settings.root, fsync=settings.fsync,
                     direct_min_bytes=settings.direct_io_min_bytes,
                     batched_names=names.resolve(settings.folder_flush, str(settings.root)),
                     name_delay_s=settings.folder_flush_delay_ms / 1000)
