"""Flushes awaited through Linux native AIO: the loop goes on while the device works, and an
error or a cancellation comes back as it would from os.fsync."""

from __future__ import annotations

import asyncio
import errno
import os
from pathlib import Path

import pytest

from dicomvault.store import AioSync


@pytest.fixture
async def aio():
    opened = AioSync.open(asyncio.get_running_loop())
    assert opened is not None, "native AIO (io_setup) is unavailable on this machine"
    yield opened
    opened.close()


def dirty_file(path: Path, size: int) -> int:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    view = memoryview(os.urandom(1 << 20))
    for _ in range(size >> 20):
        os.write(fd, view)
    return fd


async def test_the_loop_runs_while_a_flush_is_under_way(aio: AioSync, tmp_path: Path) -> None:
    fd = dirty_file(tmp_path / "big", 64 << 20)  # 64 MiB in the page cache, none on disk
    try:
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0)
                ticks += 1

        ticker = asyncio.create_task(tick())
        await asyncio.sleep(0)
        before = ticks
        await aio.fsync(fd, data_only=True)
        during = ticks - before
        ticker.cancel()
    finally:
        os.close(fd)
    # os.fdatasync would have held the loop for the whole write-out (tens of milliseconds
    # for 64 MiB): the ticker would have had the one turn any await gives it.
    print(f"ticks during the flush: {during}")
    assert during > 100


async def test_many_flushes_at_once_all_complete(aio: AioSync, tmp_path: Path) -> None:
    fds = []
    try:
        for i in range(300):  # more than one io_getevents call collects
            fd = os.open(tmp_path / f"f{i}", os.O_WRONLY | os.O_CREAT, 0o600)
            os.write(fd, b"x" * 100)
            fds.append(fd)
        await asyncio.gather(*(aio.fsync(fd, data_only=i % 2 == 0) for i, fd in enumerate(fds)))
    finally:
        for fd in fds:
            os.close(fd)
    assert not aio._pending  # every completion was collected


async def test_a_bad_descriptor_raises_as_os_fsync_does(aio: AioSync, tmp_path: Path) -> None:
    fd = os.open(tmp_path / "f", os.O_WRONLY | os.O_CREAT, 0o600)
    os.close(fd)
    with pytest.raises(OSError) as caught:
        await aio.fsync(fd)
    assert caught.value.errno == errno.EBADF
    # A pipe cannot be flushed: EINVAL, as from os.fsync.
    r, w = os.pipe()
    try:
        with pytest.raises(OSError) as caught:
            await aio.fsync(w)
        assert caught.value.errno == errno.EINVAL
    finally:
        os.close(r)
        os.close(w)


async def test_a_cancelled_flush_leaves_the_next_ones_working(aio: AioSync,
                                                               tmp_path: Path) -> None:
    fd = dirty_file(tmp_path / "big", 16 << 20)
    flushing = asyncio.create_task(aio.fsync(fd, data_only=True))
    await asyncio.sleep(0)  # submitted
    flushing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await flushing
    os.close(fd)  # safe: the kernel keeps its own reference to the file
    other = os.open(tmp_path / "small", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        os.write(other, b"y")
        await asyncio.wait_for(aio.fsync(other), 30)
        for _ in range(300):  # the cancelled flush's completion is collected and dropped
            if not aio._pending:
                break
            await asyncio.sleep(0.1)
    finally:
        os.close(other)
    assert not aio._pending
