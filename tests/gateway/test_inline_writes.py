"""A C-STORE on a DIMSE worker's loop may write its file there (``inline_writes``), but never
waits on the loop for a storage key that another store holds: that store may itself be
waiting for the loop (a pynetdicom association publishes through it)."""

from __future__ import annotations

import asyncio
import errno
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from pydicom.uid import generate_uid
from pynetdicom.dsutils import encode

from dicom_gateway import file_meta
from dicom_gateway import statuses as st
from dicom_gateway.ingest import Ingest, StoreRequest
from dicom_gateway.settings import GatewaySettings
from dicomvault.bus import Publisher
from dicomvault.dicom.bridge import Bridge
from dicomvault.settings import BusSettings
from dicomvault.store import AioSync, FileStore, instance_key
from tests.peers.datasets import ROOT, make_instance

EXPLICIT_LE = "1.2.840.10008.1.2.1"


def store_request() -> tuple[StoreRequest, str]:
    ds = make_instance(study_uid=generate_uid(ROOT), series_uid=generate_uid(ROOT), size=16,
                       modality="CT")
    data = encode(ds, False, True)
    sop_class, sop = str(ds.SOPClassUID), str(ds.SOPInstanceUID)
    rq = StoreRequest(
        affected_sop_class_uid=sop_class, affected_sop_instance_uid=sop,
        transfer_syntax_uid=EXPLICIT_LE, dataset=data,
        part10=lambda: file_meta.encode(sop_class, sop, EXPLICIT_LE) + data,
        calling_ae="MODALITY", called_ae="DICOMVAULT", received=time.time())
    return rq, instance_key(str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID), sop)


async def test_a_held_storage_key_sends_the_store_to_a_thread(bus_settings: BusSettings,
                                                              tmp_path: Path) -> None:
    settings = GatewaySettings(cache={"root": tmp_path / "cache"}, bus=bus_settings)
    assert settings.gateway.inline_writes  # the default
    store = FileStore(tmp_path / "cache")
    async with Publisher(bus_settings, "t") as publisher:
        ingest = Ingest(settings, store, publisher, Bridge(asyncio.get_running_loop(), 5.0))
        assert ingest.inline_writes
        rq, key = store_request()
        lock = ingest._locks[hash(key) % len(ingest._locks)]
        lock.acquire()  # another store of this key is under way
        released = threading.Timer(1.0, lock.release)  # even if the loop were stuck
        released.start()
        with ThreadPoolExecutor(2) as pool:
            storing = asyncio.create_task(ingest.handle_async(rq, pool))
            ticks = 0
            started = time.monotonic()
            while time.monotonic() - started < 0.8:
                await asyncio.sleep(0.01)
                ticks += 1
            assert ticks > 20, "the loop stood still while the key was held"
            assert not storing.done()  # it waits for the key, on a thread
            outcome = await asyncio.wait_for(storing, 10)
        released.join()
    assert outcome.status == st.SUCCESS
    assert store.get(key) == rq.part10()


async def test_inline_and_threaded_stores_write_the_same_file(bus_settings: BusSettings,
                                                              tmp_path: Path) -> None:
    rq, key = store_request()
    written = []
    for inline in (True, False):
        settings = GatewaySettings(cache={"root": tmp_path / str(inline)}, bus=bus_settings,
                                   gateway={"inline_writes": inline})
        store = FileStore(tmp_path / str(inline))
        async with Publisher(bus_settings, "t") as publisher:
            ingest = Ingest(settings, store, publisher, Bridge(asyncio.get_running_loop(), 5.0))
            with ThreadPoolExecutor(2) as pool:
                outcome = await ingest.handle_async(rq, pool)
        assert outcome.status == st.SUCCESS
        written.append(store.get(key))
    assert written[0] == written[1] == rq.part10()


def distinct_stripes(ingest: Ingest, n: int) -> list[tuple[StoreRequest, str]]:
    """``n`` store requests whose storage keys use different locks of ``ingest``."""
    found: dict[int, tuple[StoreRequest, str]] = {}
    while len(found) < n:
        rq, key = store_request()
        found.setdefault(hash(key) % len(ingest._locks), (rq, key))
    return list(found.values())


class CountingPool(ThreadPoolExecutor):
    """A real thread pool that counts the writes handed to it."""

    def __init__(self) -> None:
        super().__init__(4)
        self.writes = 0

    def submit(self, fn, /, *args, **kwargs):
        self.writes += 1
        return super().submit(fn, *args, **kwargs)


async def test_small_images_of_concurrent_stores_are_written_on_the_loop(
        bus_settings: BusSettings, tmp_path: Path) -> None:
    """Six C-STOREs under way at once in one worker: with the default ``inline_max_bytes``
    (64 KiB) a small image is written on the loop even while others are under way; a dataset
    above it (or the setting at 0) goes to a write thread unless it is the only store."""
    handed: dict[int, int] = {}
    for limit in (65536, 100, 0):
        settings = GatewaySettings(cache={"root": tmp_path / str(limit)}, bus=bus_settings,
                                   gateway={"inline_max_bytes": limit})
        store = FileStore(tmp_path / str(limit))
        async with Publisher(bus_settings, "t") as publisher:
            ingest = Ingest(settings, store, publisher, Bridge(asyncio.get_running_loop(), 5.0))
            requests = distinct_stripes(ingest, 6)  # a held stripe would send one to a thread
            assert all(100 < len(rq.dataset) <= 65536 for rq, _ in requests)
            with CountingPool() as pool:
                outcomes = await asyncio.gather(*(ingest.handle_async(rq, pool)
                                                  for rq, _ in requests))
            handed[limit] = pool.writes
            ingest.close()
        assert [o.status for o in outcomes] == [st.SUCCESS] * 6
        assert all(store.get(key) == rq.part10() for rq, key in requests)
    assert handed[65536] == 0
    assert handed[100] == handed[0] == 5  # the first store was alone: on the loop


async def test_a_store_whose_flush_fails_on_the_loop_is_refused_and_frees_its_key(
        bus_settings: BusSettings, tmp_path: Path, monkeypatch) -> None:
    """While other stores are under way in a worker, a store's flushes are awaited (native AIO)
    instead of blocking the loop; one that fails is Out of Resources as a blocking write's
    failure is: nothing left in the cache, and the key free for the modality's resend."""
    real = AioSync.fsync
    failed: list[int] = []

    async def first_flush_fails(self, fd: int, data_only: bool = False) -> None:
        if not failed:
            failed.append(fd)
            raise OSError(errno.EIO, "Input/output error")
        await real(self, fd, data_only)

    monkeypatch.setattr(AioSync, "fsync", first_flush_fails)
    # No spare temp files: every temp file left would be the failed store's.
    settings = GatewaySettings(cache={"root": tmp_path / "cache"}, bus=bus_settings,
                               gateway={"spare_files": False})
    store = FileStore(tmp_path / "cache")
    async with Publisher(bus_settings, "t") as publisher:
        ingest = Ingest(settings, store, publisher, Bridge(asyncio.get_running_loop(), 5.0))
        requests = distinct_stripes(ingest, 3)
        with CountingPool() as pool:
            outcomes = await asyncio.gather(*(ingest.handle_async(rq, pool)
                                              for rq, _ in requests))
            # The first store was alone (its flushes blocked the loop, as before); the second
            # found it under way and awaited its flush, which failed.
            assert failed
            assert [o.status for o in outcomes] == [st.SUCCESS, st.OUT_OF_RESOURCES,
                                                    st.SUCCESS]
            assert not store.exists(requests[1][1])
            assert not list((tmp_path / "cache").rglob(".tmp-*"))
            assert pool.writes == 0  # all three on the loop
            again = await ingest.handle_async(requests[1][0], pool)
        ingest.close()
    assert again.status == st.SUCCESS
    assert all(store.get(key) == rq.part10() for rq, key in requests)
