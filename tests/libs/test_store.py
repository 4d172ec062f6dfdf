"""The file store writes atomically and only under keys built from valid UIDs."""

from __future__ import annotations

import asyncio
import ctypes
import errno
import fcntl
import hashlib
import logging
import mmap
import os
import threading

import pytest

from dicomvault.store import (
    AioSync,
    FileStore,
    InvalidUID,
    StoreError,
    filestore,
    instance_key,
    validate_uid,
)


@pytest.mark.parametrize("uid", ["1.2.3", "1.2.840.10008.5.1.4.1.1.2", "0.1", "2.25.1234"])
def test_valid_uids_are_accepted(uid: str) -> None:
    assert validate_uid(uid) == uid


@pytest.mark.parametrize(
    "uid", ["", "../../x", "1..2", "1.02", "1.2.", ".1.2", "1.2.a", "1/2", "1" * 65, "1.2\\3"]
)
def test_invalid_uids_are_refused(uid: str) -> None:
    with pytest.raises(InvalidUID):
        validate_uid(uid)


def test_key_is_study_series_instance() -> None:
    assert instance_key("1.2", "1.2.3", "1.2.3.4") == "1.2/1.2.3/1.2.3.4.dcm"
    with pytest.raises(InvalidUID):
        instance_key("1.2", "../..", "1.2.3.4")


def test_put_get_and_checksum(tmp_path) -> None:
    store = FileStore(tmp_path / "cache")
    obj = store.put("1.2/1.2.3/1.2.3.4.dcm", b"hello")
    assert obj.size == 5 and obj.sha256 == hashlib.sha256(b"hello").hexdigest()
    assert store.get(obj.key) == b"hello"
    # No temporary files are left behind.
    assert [p.name for p in (tmp_path / "cache").rglob("*") if p.is_file()] == ["1.2.3.4.dcm"]
    assert [k for k, _ in store.keys()] == ["1.2/1.2.3/1.2.3.4.dcm"]


@pytest.mark.parametrize("key", ["../x", "/etc/passwd", "a/../../b", "a//b", ""])
def test_keys_cannot_escape_the_root(tmp_path, key: str) -> None:
    store = FileStore(tmp_path / "cache")
    with pytest.raises(StoreError):
        store.put(key, b"x")


def test_delete_prunes_empty_folders(tmp_path) -> None:
    store = FileStore(tmp_path / "cache")
    store.put("1.2/1.2.3/1.2.3.4.dcm", b"x")
    assert store.delete("1.2/1.2.3/1.2.3.4.dcm")
    assert not (tmp_path / "cache" / "1.2").exists()
    assert not store.delete("1.2/1.2.3/1.2.3.4.dcm")


def test_generation_names_the_copy_in_place(tmp_path) -> None:
    store = FileStore(tmp_path / "cache")
    first = store.put("1.2/1.2.3/1.2.3.4.dcm", b"one")
    assert first.generation == store.generation(first.key)
    second = store.put(first.key, b"two")
    assert second.generation == store.generation(first.key) != first.generation


def test_writers_racing_a_pruning_delete_all_land(tmp_path) -> None:
    """A delete prunes the series folder while other threads write into it: every write
    that returned is on disk, whole, and no temporary file is left."""
    store = FileStore(tmp_path / "cache")
    errors: list[BaseException] = []

    def write(n: int) -> None:
        try:
            for i in range(200):
                store.put(f"1.2/1.2.3/{n}.{i}.dcm", b"x" * 100)
                if i % 2:  # the last file of the folder, often: the folder goes with it
                    store.delete(f"1.2/1.2.3/{n}.{i}.dcm")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    kept = sorted(k for k, _ in store.keys())
    assert kept == sorted(f"1.2/1.2.3/{n}.{i}.dcm" for n in range(4) for i in range(0, 200, 2))
    assert all(store.get(k) == b"x" * 100 for k in kept)
    assert not [p for p in (tmp_path / "cache").rglob(".tmp-*")]


def _resident_pages(path) -> tuple[int, int]:
    """(pages of ``path`` in the page cache, pages of the file), read with mincore(2)."""
    libc = ctypes.CDLL(None, use_errno=True)
    size = path.stat().st_size
    pages = -(-size // mmap.PAGESIZE)
    with open(path, "rb") as f, mmap.mmap(f.fileno(), size, access=mmap.ACCESS_COPY) as mm:
        vec = (ctypes.c_ubyte * pages)()
        start = ctypes.c_char.from_buffer(mm)  # exports the buffer: released before the close
        ok = libc.mincore(ctypes.c_void_p(ctypes.addressof(start)), ctypes.c_size_t(size), vec)
        del start
        assert ok == 0, os.strerror(ctypes.get_errno())
    return sum(b & 1 for b in vec), pages


@pytest.mark.parametrize("size", [131_072, 525_001, 262_144, (4 << 20) + 12_345])
def test_large_objects_go_straight_to_the_device(tmp_path, size: int) -> None:
    """At direct_min_bytes and above, a put leaves the object byte for byte on disk without
    filling the page cache with it (O_DIRECT), whatever its alignment; below, as before."""
    data = os.urandom(size)
    store = FileStore(tmp_path / "cache", direct_min_bytes=131_072)
    obj = store.put("1.2/1.2.3/1.2.3.4.dcm", data)
    resident, pages = _resident_pages(store.path(obj.key))
    assert resident <= 1 < pages  # at most the last block, which the cut-off reads back
    assert store.get(obj.key) == data and obj.size == size
    assert obj.sha256 == hashlib.sha256(data).hexdigest()
    assert [p.name for p in (tmp_path / "cache").rglob("*") if p.is_file()] == ["1.2.3.4.dcm"]

    cached = FileStore(tmp_path / "buffered", direct_min_bytes=size + 1)  # just below: cached
    obj = cached.put("1.2/1.2.3/1.2.3.4.dcm", data)
    resident, pages = _resident_pages(cached.path(obj.key))
    assert resident == pages
    assert cached.get(obj.key) == data


def test_a_file_system_refusing_o_direct_is_written_through_the_cache(tmp_path, monkeypatch,
                                                                       caplog) -> None:
    """EINVAL for O_DIRECT (tmpfs before Linux 6.6, some FUSE and network file systems), at
    the open or at the first write: the object is written through the page cache instead,
    and so is every later one."""
    real_open, real_write = os.open, os.write
    refused = {"open": 0, "write": 0}

    def open_refusing(path, flags, *args):
        if flags & os.O_DIRECT and "open" in refusing:
            refused["open"] += 1
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_open(path, flags, *args)

    def write_refusing(fd, data):
        if fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT and "write" in refusing:
            refused["write"] += 1
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_write(fd, data)

    monkeypatch.setattr(filestore.os, "open", open_refusing)
    monkeypatch.setattr(filestore.os, "write", write_refusing)
    data = os.urandom(300_001)
    for refusing in ({"open"}, {"write"}):
        store = FileStore(tmp_path / "-".join(refusing), direct_min_bytes=131_072)
        with caplog.at_level(logging.WARNING, logger="dicomvault.store.filestore"):
            first = store.put("1.2/1.2.3/1.2.3.4.dcm", data)
            second = store.put("1.2/1.2.3/1.2.3.5.dcm", data)
        assert store.get(first.key) == data and store.get(second.key) == data
        assert store.direct_min_bytes == 0
        assert sorted(p.name for p in store.root.rglob("*") if p.is_file()) == [
            "1.2.3.4.dcm", "1.2.3.5.dcm"]  # no temp file left by the refused attempt
    assert refused == {"open": 1, "write": 1}  # once each: the store then stops asking
    assert sum("refuses O_DIRECT" in r.getMessage() for r in caplog.records) == 2


def test_a_store_without_fsync_keeps_writing_through_the_cache(tmp_path) -> None:
    """fsync off (tests, a scratch cache) never waits for the device: no O_DIRECT either."""
    data = os.urandom(525_001)
    store = FileStore(tmp_path / "cache", fsync=False, direct_min_bytes=131_072)
    obj = store.put("1.2/1.2.3/1.2.3.4.dcm", data)
    resident, pages = _resident_pages(store.path(obj.key))
    assert resident == pages
    assert store.get(obj.key) == data


async def test_a_put_finished_on_the_loop_writes_what_put_writes(tmp_path) -> None:
    """begin + finish_async (the flushes awaited through native AIO) leaves the same file as
    put: the bytes, the generation of the copy in place, no temp file."""
    aio = AioSync.open(asyncio.get_running_loop())
    assert aio is not None, "native AIO (io_setup) is unavailable on this machine"
    try:
        store = FileStore(tmp_path / "cache")
        draft = store.begin("1.2/1.2.3/1.2.3.4.dcm", b"hello")
        assert not store.exists(draft.stored.key)  # not in place before it is flushed
        obj = await store.finish_async(draft, aio)
    finally:
        aio.close()
    assert store.get(obj.key) == b"hello"
    assert obj.sha256 == hashlib.sha256(b"hello").hexdigest()
    assert obj.generation == store.generation(obj.key)
    assert [p.name for p in (tmp_path / "cache").rglob("*") if p.is_file()] == ["1.2.3.4.dcm"]


@pytest.mark.parametrize("on_loop", [False, True])
async def test_a_finish_that_fails_leaves_no_temp_file(tmp_path, on_loop: bool) -> None:
    store = FileStore(tmp_path / "cache")
    key = "1.2/1.2.3/1.2.3.4.dcm"
    blocker = tmp_path / "cache" / key  # a folder where the file should go: rename fails
    (blocker / "inside").mkdir(parents=True)
    draft = store.begin(key, b"hello")
    aio = AioSync.open(asyncio.get_running_loop())
    try:
        with pytest.raises(StoreError):
            if on_loop:
                await store.finish_async(draft, aio)
            else:
                store.finish(draft)
    finally:
        aio.close()
    assert not [p for p in (tmp_path / "cache").rglob(".tmp-*")]
    assert draft.fd == -1  # the descriptor was closed


async def test_a_cancelled_finish_leaves_no_temp_file(tmp_path) -> None:
    store = FileStore(tmp_path / "cache")
    draft = store.begin("1.2/1.2.3/1.2.3.4.dcm", os.urandom(32 << 20))
    aio = AioSync.open(asyncio.get_running_loop())
    try:
        finishing = asyncio.create_task(store.finish_async(draft, aio))
        await asyncio.sleep(0)  # the data flush is under way
        finishing.cancel()
        with pytest.raises(asyncio.CancelledError):
            await finishing
    finally:
        aio.close()
    assert not store.exists(draft.stored.key)
    assert not [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]
