"""Storage tiers' shared pieces: UID validation, keys, and the file-system store."""

from dicomvault.store.filestore import FileStore, StoredObject, StoreError
from dicomvault.store.s3store import S3Settings, S3Store
from dicomvault.store.uids import InvalidUID, instance_key, is_valid_uid, validate_uid

__all__ = [
    "FileStore",
    "InvalidUID",
    "S3Settings",
    "S3Store",
    "StoreError",
    "StoredObject",
    "instance_key",
    "is_valid_uid",
    "validate_uid",
]
