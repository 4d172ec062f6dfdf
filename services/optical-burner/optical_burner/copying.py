"""Copying instances from the cache tier into a volume's files: each read back and
checksummed against the catalogue's sha256 before the volume's manifest may name it."""

from __future__ import annotations

import hashlib

from dicomvault.query import InstanceLocation
from dicomvault.store import CacheStore, StoreError
from optical_burner.errors import ArchiveError
from optical_burner.volumes import InstanceEntry, Volume, VolumeStore


def copy_in(store: VolumeStore, cache: CacheStore, vol: Volume,
            items: list[InstanceLocation]) -> list[InstanceEntry]:
    """Copy instances from the cache into the volume, read back and checksum each."""
    data = store.data(vol.label)
    out = []
    for inst in items:
        try:
            blob = cache.get(inst.storage_key)
        except StoreError as exc:
            raise ArchiveError(f"instance {inst.sop_instance_uid} is not readable in the "
                               f"cache: {exc}") from exc
        if hashlib.sha256(blob).hexdigest() != inst.sha256:
            raise ArchiveError(f"instance {inst.sop_instance_uid} in the cache does not "
                               "match the catalogue's checksum")
        data.put(inst.storage_key, blob)
        if data.stat(inst.storage_key).sha256 != inst.sha256:
            raise ArchiveError(f"read-back of {inst.sop_instance_uid} on {vol.label} "
                               "does not match")
        out.append(InstanceEntry(
            sop_instance_uid=inst.sop_instance_uid,
            series_instance_uid=inst.series_instance_uid, sop_class_uid=inst.sop_class_uid,
            transfer_syntax_uid=inst.transfer_syntax_uid, storage_key=inst.storage_key,
            size_bytes=inst.size_bytes, sha256=inst.sha256))
    return out
