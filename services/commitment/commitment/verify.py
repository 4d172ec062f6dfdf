"""The SCP's check of one request: does the archive take responsibility for each instance?

FailureReason values (PS3.3 C.14.1.1):
- 0x0112 No such object instance: the catalogue has no record of the SOP Instance.
- 0x0119 Class / Instance conflict: the catalogue records another SOP Class for it.
- 0x0110 Processing failure: known, but the policy is not met (cache file missing, size or
  checksum differs, not yet on an archive tier).
"""

from __future__ import annotations

import hashlib
import os

from commitment.catalogue import Location
from commitment.settings import VerifyPolicy
from dicomvault.dicom import commitment as sc
from dicomvault.store import CacheStore, FileStore, StoreError


def _sha256(path: os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _cache_problem(loc: Location, store: CacheStore, policy: VerifyPolicy) -> str:
    """'' if the cache copy meets the policy, else why not."""
    if not isinstance(store, FileStore):  # object storage: one read gives size and checksum
        try:
            obj = store.stat(loc["storage_key"])
        except (StoreError, OSError):
            return "not in cache storage"
        if policy.size and loc.get("size_bytes") and obj.size != int(loc["size_bytes"]):
            return f"size {obj.size} differs from catalogued {loc['size_bytes']}"
        if policy.checksum and loc.get("sha256") and obj.sha256 != loc["sha256"]:
            return "checksum differs from catalogued"
        return ""
    try:
        path = store.path(loc["storage_key"])
        size = path.stat().st_size
    except (StoreError, OSError):
        return "not in cache storage"
    if policy.size and loc.get("size_bytes") and size != int(loc["size_bytes"]):
        return f"size {size} differs from catalogued {loc['size_bytes']}"
    if policy.checksum and loc.get("sha256"):
        try:
            if _sha256(path) != loc["sha256"]:
                return "checksum differs from catalogued"
        except OSError:
            return "cache copy unreadable"
    return ""


def archived_study(archives: list[dict], instances: int) -> bool:
    """A verified study-level copy on an archive tier that holds at least that many instances."""
    return any(a.get("verified") and int(a.get("number_of_instances") or 0) >= instances
               for a in archives)


def _archived(loc: Location) -> bool:
    return loc.get("tier") != "cache" and loc.get("verified", True) is not False


def check(refs: list[sc.SopRef], found: dict[str, list[Location]], store: CacheStore,
          policy: VerifyPolicy, archived_studies: set[str] = frozenset()
          ) -> tuple[list[sc.SopRef], list[sc.FailedRef]]:
    """Split the referenced instances into committed and failed (blocking: reads files)."""
    committed: list[sc.SopRef] = []
    failed: list[sc.FailedRef] = []
    for ref in refs:
        locs = found.get(ref.sop_instance_uid) or []
        if not locs:
            failed.append(sc.FailedRef(ref.sop_class_uid, ref.sop_instance_uid,
                                      sc.NO_SUCH_OBJECT_INSTANCE, "unknown instance"))
            continue
        classes = {loc["sop_class_uid"] for loc in locs}
        if ref.sop_class_uid not in classes:
            failed.append(sc.FailedRef(ref.sop_class_uid, ref.sop_instance_uid,
                                      sc.CLASS_INSTANCE_CONFLICT,
                                      f"catalogued as {', '.join(sorted(classes))}"))
            continue
        problem = ""
        cached = [loc for loc in locs if loc.get("tier") == "cache"]
        archived = [loc for loc in locs if _archived(loc)
                     or loc["study_instance_uid"] in archived_studies]
        if policy.storage or policy.size or policy.checksum:
            problems = [_cache_problem(loc, store, policy) for loc in cached]
            if cached and all(problems):
                problem = problems[0]
            elif not cached and policy.storage and not archived:
                problem = "in no storage tier"
        if not problem and policy.archived and not archived:
            problem = "not yet on an archive tier"
        if problem:
            failed.append(sc.FailedRef(ref.sop_class_uid, ref.sop_instance_uid,
                                      sc.PROCESSING_FAILURE, problem))
        else:
            committed.append(ref)
    return committed, failed
