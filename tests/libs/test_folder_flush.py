"""Batched folder flushes (``cache.folder_flush``): a new file is durable under a temp name
that says what it must hold and where it goes, its final name is a link whose folder is
flushed later, and ``recover`` finishes whatever a crash left at any point of that."""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import time
from pathlib import Path

import pytest

from dicomvault.settings import CacheSettings
from dicomvault.store import FileStore, open_cache
from dicomvault.store.names import mount_type, named_temp, parse_named, resolve

KEY = "1.2.3/1.2.3.4/1.2.3.4.5.dcm"
LATER = 1e12  # a ``settled_before`` every file is older than


def batched(root: Path, delay_s: float = 3600.0) -> FileStore:
    """A batched store whose folder flushes happen only when the test asks (``flush_names``)."""
    return FileStore(root, batched_names=True, name_delay_s=delay_s)


def temps(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob(".tmp-*"))


def test_a_new_file_is_readable_at_once_and_its_temp_name_goes_with_the_folder_flush(
        tmp_path: Path) -> None:
    store = batched(tmp_path)
    data = os.urandom(5000)
    stored = store.put(KEY, data)
    assert store.get(KEY) == data and stored.sha256 == hashlib.sha256(data).hexdigest()
    (tmp,) = temps(tmp_path)  # same inode, still named until the folder is flushed
    assert os.path.samefile(tmp, store.path(KEY))
    assert parse_named(tmp.name) == (stored.sha256, "1.2.3.4.5.dcm")
    assert [k for k, _ in store.keys()] == [KEY]  # listings never show it
    store.flush_names()
    assert temps(tmp_path) == [] and store.get(KEY) == data
    assert os.stat(store.path(KEY)).st_nlink == 1


def test_the_background_thread_flushes_and_drops_temp_names(tmp_path: Path) -> None:
    store = batched(tmp_path, delay_s=0.01)
    for i in range(20):
        store.put(f"1.2.3/1.2.3.4/1.2.3.4.{i}.dcm", b"x" * i)
    deadline = time.monotonic() + 10
    while temps(tmp_path) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert temps(tmp_path) == []
    assert store.names is not None and store.names.flushes >= 1
    assert [store.get(f"1.2.3/1.2.3.4/1.2.3.4.{i}.dcm") for i in range(20)] == \
        [b"x" * i for i in range(20)]
    store.close()


def test_a_rewrite_replaces_the_copy_in_place_and_leaves_no_temp_name(tmp_path: Path) -> None:
    store = batched(tmp_path)
    store.put(KEY, b"old")
    store.flush_names()
    store.put(KEY, b"new")  # the name exists: renamed over it, folder flushed, as unbatched
    assert store.get(KEY) == b"new" and temps(tmp_path) == []


def test_a_crash_that_lost_the_final_name_gets_it_back(tmp_path: Path) -> None:
    store = batched(tmp_path)
    data = os.urandom(3000)
    store.put(KEY, data)
    os.unlink(store.path(KEY))  # power lost before the folder's flush: only the temp name
    restarted = batched(tmp_path)
    promoted, dropped = restarted.recover(LATER)
    assert promoted == [KEY] and dropped == 0
    assert restarted.get(KEY) == data and temps(tmp_path) == []


def test_a_write_cut_short_is_dropped_never_named(tmp_path: Path) -> None:
    store = batched(tmp_path)
    data = os.urandom(3000)
    store.put(KEY, data)
    (tmp,) = temps(tmp_path)
    os.unlink(store.path(KEY))
    os.truncate(tmp, 1000)  # its data never reached the device whole
    promoted, dropped = batched(tmp_path).recover(LATER)
    assert (promoted, dropped) == ([], 1)
    assert not store.exists(KEY) and temps(tmp_path) == []


def test_a_temp_name_still_linked_is_dropped_and_the_file_kept(tmp_path: Path) -> None:
    store = batched(tmp_path)
    store.put(KEY, b"kept")  # process killed before its folder flush: both names there
    promoted, dropped = batched(tmp_path).recover(LATER)
    assert (promoted, dropped) == ([], 0)
    assert store.get(KEY) == b"kept" and temps(tmp_path) == []


def test_a_later_copy_under_the_final_name_wins(tmp_path: Path) -> None:
    store = batched(tmp_path)
    store.put(KEY, b"first")
    os.unlink(store.path(KEY))  # the crash lost the name …
    FileStore(tmp_path).put(KEY, b"second")  # … and the key was written again since
    promoted, dropped = batched(tmp_path).recover(LATER)
    assert (promoted, dropped) == ([], 1)
    assert store.get(KEY) == b"second" and temps(tmp_path) == []


def test_recent_temp_files_are_left_to_their_writers(tmp_path: Path) -> None:
    store = batched(tmp_path)
    store.put(KEY, b"in flight")
    os.unlink(store.path(KEY))
    assert batched(tmp_path).recover(time.time() - 30) == ([], 0)
    assert len(temps(tmp_path)) == 1 and not store.exists(KEY)


def test_deleting_a_file_whose_folder_is_not_flushed_removes_both_names(tmp_path: Path) -> None:
    store = batched(tmp_path)
    store.put(KEY, b"gone")
    assert store.delete(KEY)
    assert temps(tmp_path) == [] and batched(tmp_path).recover(LATER) == ([], 0)
    assert not store.exists(KEY)


def test_the_stale_temp_sweep_leaves_named_temp_files_to_recover(tmp_path: Path) -> None:
    store = batched(tmp_path)
    store.put(KEY, b"only copy")
    os.unlink(store.path(KEY))
    (tmp,) = temps(tmp_path)
    old = time.time() - 7200
    os.utime(tmp, (old, old))
    assert store.remove_stale_temps(time.time() - 3600) == 0
    assert batched(tmp_path).recover(LATER)[0] == [KEY]
    assert store.get(KEY) == b"only copy"


def test_a_final_name_too_long_to_carry_is_flushed_per_file(tmp_path: Path) -> None:
    store = batched(tmp_path)
    key = "1.2.3/" + "9" * 200 + ".dcm"
    store.put(key, b"long")
    assert store.get(key) == b"long" and temps(tmp_path) == []
    assert named_temp("/x/.tmp-1-2-3", "0" * 64, "9" * 200) is None


def test_a_file_system_without_hard_links_is_flushed_per_file(tmp_path: Path, monkeypatch,
                                                              caplog) -> None:
    def refuse(src: str, dst: str) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", refuse)
    store = batched(tmp_path)
    with caplog.at_level(logging.WARNING):
        store.put(KEY, b"renamed")
    assert store.get(KEY) == b"renamed" and temps(tmp_path) == []
    assert store.names is None and "refuses hard links" in caplog.text
    store.put("1.2.3/1.2.3.4/1.2.3.4.6.dcm", b"again")  # from then on: temp, rename, flush
    assert temps(tmp_path) == []


def test_an_unbatched_store_keeps_renaming(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    store.put(KEY, b"plain")
    assert store.names is None and temps(tmp_path) == []


EXT4 = "29 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw\n"
MOUNTS = EXT4 + (
    "30 29 0:25 / /dev/shm rw shared:2 - tmpfs tmpfs rw\n"
    "31 29 0:40 / /var/lib/vault rw shared:3 - xfs /dev/sdb rw\n"
    "32 29 0:41 / /mnt/pacs\\040share rw shared:4 - nfs4 nas:/pacs rw\n"
    "33 29 0:42 / /var/lib/vault/scratch rw shared:5 - overlay overlay rw\n"
    "34 29 0:43 / /srv/tab\\011and\\134slash rw shared:6 - tmpfs tmpfs rw\n")


def test_auto_batches_only_where_a_files_fsync_writes_its_folder_entry() -> None:
    assert mount_type("/srv/cache", MOUNTS) == "ext4"
    assert mount_type("/var/lib/vault/cache", MOUNTS) == "xfs"
    assert mount_type("/var/lib/vault/scratch/c", MOUNTS) == "overlay"
    assert mount_type("/mnt/pacs share/cache", MOUNTS) == "nfs4"
    assert mount_type("/srv/tab\tand\\slash/cache", MOUNTS) == "tmpfs"
    assert resolve("auto", "/srv/cache", MOUNTS)
    assert resolve("auto", "/var/lib/vault/cache", MOUNTS)
    assert not resolve("auto", "/dev/shm/cache", MOUNTS)
    assert not resolve("auto", "/mnt/pacs share/cache", MOUNTS)
    assert not resolve("auto", "/var/lib/vault/scratch", MOUNTS)
    assert resolve("batched", "/dev/shm/cache", MOUNTS)
    assert not resolve("each", "/srv/cache", MOUNTS)


def test_the_cache_setting_reaches_the_store(tmp_path: Path) -> None:
    each = open_cache(CacheSettings(root=tmp_path / "a", folder_flush="each"))
    forced = open_cache(CacheSettings(root=tmp_path / "b", folder_flush="batched",
                                      folder_flush_delay_ms=5))
    unsynced = open_cache(CacheSettings(root=tmp_path / "c", folder_flush="batched",
                                        fsync=False))
    assert isinstance(each, FileStore) and each.names is None
    assert isinstance(forced, FileStore) and forced.names is not None
    assert forced.names.delay_s == 0.005
    assert isinstance(unsynced, FileStore) and unsynced.names is None  # nothing to batch
    forced.close()


def test_bad_folder_flush_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="folder_flush"):
        CacheSettings(folder_flush="sometimes")
    with pytest.raises(ValueError, match="folder_flush_delay_ms"):
        CacheSettings(folder_flush_delay_ms=-1)


def test_a_folder_that_cannot_be_flushed_keeps_its_temp_names_until_it_can(
        tmp_path: Path, monkeypatch, caplog) -> None:
    store = batched(tmp_path)
    store.put(KEY, b"kept twice")
    real_fsync = os.fsync

    def failing(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fsync", failing)
    with caplog.at_level(logging.ERROR):
        assert store.names is not None and not store.names.flush()
    assert "cannot flush a cache folder" in caplog.text
    assert len(temps(tmp_path)) == 1 and len(store.names) == 1  # the durable name stays
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert store.names.flush()
    assert temps(tmp_path) == [] and store.get(KEY) == b"kept twice"
