"""Spare temp files: made ahead in a folder, taken once by the next write to that folder, and
never left behind (limit, expiry, clear)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from dicomvault.store import FileStore, instance_key
from dicomvault.store.spares import Spares

STUDY, SERIES = "1.2.3", "1.2.3.4"


def temps(root: Path) -> list[Path]:
    return sorted(root.rglob(".tmp-*"))


def offer(store: FileStore, key: str) -> tuple[str, int]:
    """A flushed spare in ``key``'s folder; (its path, its inode)."""
    folder = store.folder(key)
    os.makedirs(folder, exist_ok=True)
    spare = store.new_spare(folder)
    os.fsync(spare.fd)
    store.spares.offer(spare)
    return spare.tmp, os.fstat(spare.fd).st_ino


def test_the_next_write_to_the_folder_is_written_into_the_spare(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    key = instance_key(STUDY, SERIES, "1.2.3.4.5")
    tmp, inode = offer(store, key)
    assert Path(tmp).exists() and Path(tmp).stat().st_size == 0
    stored = store.put(key, b"DICM" * 1000)
    assert store.path(key).stat().st_ino == inode  # the spare, renamed into place
    assert store.get(key) == b"DICM" * 1000 and stored.size == 4000
    assert temps(tmp_path) == [] and len(store.spares) == 0
    # Taken once: the next write creates its own temp file.
    other = instance_key(STUDY, SERIES, "1.2.3.4.6")
    store.put(other, b"x")
    assert store.path(other).stat().st_ino != inode and store.get(other) == b"x"


def test_a_write_to_another_folder_leaves_the_spare(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    tmp, inode = offer(store, instance_key(STUDY, SERIES, "1.2.3.4.5"))
    elsewhere = instance_key(STUDY, "1.2.3.9", "1.2.3.9.1")
    store.put(elsewhere, b"y")
    assert store.path(elsewhere).stat().st_ino != inode
    assert temps(tmp_path) == [Path(tmp)] and len(store.spares) == 1
    assert [k for k, _ in store.keys()] == [elsewhere]  # listings skip the spare


def test_a_failed_write_into_a_spare_leaves_no_temp_file(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    key = instance_key(STUDY, SERIES, "1.2.3.4.5")
    offer(store, key)
    os.makedirs(store.path(key))  # a folder where the file should go: the rename fails
    try:
        store.put(key, b"z")
    except OSError:
        pass
    else:
        raise AssertionError("the rename over a folder should fail")
    assert temps(tmp_path) == []


def test_large_objects_do_not_take_a_spare(tmp_path: Path) -> None:
    store = FileStore(tmp_path, direct_min_bytes=4096)
    key = instance_key(STUDY, SERIES, "1.2.3.4.5")
    tmp, inode = offer(store, key)
    store.put(key, b"L" * 10_000)
    assert store.path(key).stat().st_ino != inode and store.get(key) == b"L" * 10_000
    assert temps(tmp_path) == [Path(tmp)]


def test_at_most_limit_spares_the_oldest_goes(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    store.spares.limit = 2
    made = [offer(store, instance_key(STUDY, f"1.2.3.{i}", f"1.2.3.{i}.1"))[0]
            for i in range(3)]
    assert temps(tmp_path) == sorted(Path(p) for p in made[1:])
    # A second spare for the same folder replaces the first.
    again = offer(store, instance_key(STUDY, "1.2.3.2", "1.2.3.2.9"))[0]
    assert temps(tmp_path) == sorted(Path(p) for p in (made[1], again))


def test_expired_spares_go_with_their_empty_folders_never_the_root(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "cache")
    offer(store, instance_key(STUDY, SERIES, "1.2.3.4.5"))
    kept = instance_key("1.2.7", "1.2.7.1", "1.2.7.1.1")
    store.put(kept, b"k")
    offer(store, kept)
    time.sleep(0.05)
    assert store.spares.expire(3600) == 2  # none that old
    assert store.spares.expire(0.01) == 0
    assert temps(tmp_path) == []
    assert not (tmp_path / "cache" / STUDY).exists()  # emptied: pruned
    assert store.get(kept) == b"k"  # a folder with an object stays
    lonely = Spares(str(tmp_path / "cache" / "1.2.7" / "1.2.7.1"))
    spare = store.new_spare(str(tmp_path / "cache" / "1.2.7" / "1.2.7.1"))
    store.delete(kept)
    lonely.offer(spare)
    lonely.expire(0)  # its folder is the pool's root: emptied, yet kept
    assert (tmp_path / "cache" / "1.2.7" / "1.2.7.1").is_dir() and temps(tmp_path) == []
    assert (tmp_path / "cache").is_dir()


def test_clear_removes_every_spare(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    fds = []
    for i in range(3):
        folder = store.folder(instance_key(STUDY, f"1.2.3.{i}", f"1.2.3.{i}.1"))
        os.makedirs(folder)
        spare = store.new_spare(folder)
        fds.append(spare.fd)
        store.spares.offer(spare)
    store.spares.clear()
    assert temps(tmp_path) == [] and len(store.spares) == 0
    for fd in fds:
        try:
            os.fstat(fd)
        except OSError:
            continue
        raise AssertionError("a spare's descriptor was left open")


def test_stale_temp_files_are_removed_fresh_ones_and_objects_kept(tmp_path: Path) -> None:
    """What a gateway killed outright leaves (its spares, a write cut short) goes once old."""
    store = FileStore(tmp_path)
    key = instance_key(STUDY, SERIES, "1.2.3.4.5")
    store.put(key, b"object")
    old_spare, _ = offer(store, key)
    folder = store.folder(key)
    cut_short = f"{folder}/.tmp-1-2-3.part"
    Path(cut_short).write_bytes(b"half")
    fresh = f"{folder}/.tmp-1-2-4.part"
    Path(fresh).write_bytes(b"")
    other = f"{folder}/.tmp-not-ours"  # not a store temp file: never touched
    Path(other).write_bytes(b"")
    hour_ago = time.time() - 3700
    for p in (old_spare, cut_short, other):
        os.utime(p, (hour_ago, hour_ago))
    os.utime(store.path(key), (hour_ago, hour_ago))
    assert store.remove_stale_temps(time.time() - 3600) == 2
    assert sorted(temps(tmp_path)) == sorted([Path(fresh), Path(other)])
    assert store.get(key) == b"object"
