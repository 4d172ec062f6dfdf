"""Storage tiers' shared pieces: UID validation, keys, the file-system and S3 stores, and
``open_cache`` (the cache tier's store for ``CacheSettings``)."""

from dicomvault.store.aio_sync import AioSync
from dicomvault.store.cache import CacheStore, open_cache
from dicomvault.store.filestore import Draft, FileStore, StoredObject, StoreError
from dicomvault.store.s3store import S3Settings, S3Store
from dicomvault.store.uids import InvalidUID, instance_key, is_valid_uid, validate_uid

__all__ = [
    "AioSync",
    "CacheStore",
    "Draft",
    "FileStore",
    "InvalidUID",
    "S3Settings",
    "S3Store",
    "StoreError",
    "StoredObject",
    "instance_key",
    "is_valid_uid",
    "open_cache",
    "validate_uid",
]
