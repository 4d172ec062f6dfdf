"""Spare temp files (``gateway.spare_files``): after a C-STORE written on the loop, the next
instance of its series is written into a temp file made ahead; none is left behind once it
expires or the gateway stops, and none is made where it would only cost."""

from __future__ import annotations

import asyncio
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from pydicom.uid import generate_uid
from pynetdicom.dsutils import encode

from dicom_gateway import file_meta
from dicom_gateway import statuses as st
from dicom_gateway.ingest import Ingest, Part10Request, StoreRequest
from dicom_gateway.settings import GatewaySettings
from dicomvault.bus import Publisher
from dicomvault.dicom.bridge import Bridge
from dicomvault.settings import BusSettings
from dicomvault.store import FileStore, instance_key
from tests.peers.datasets import ROOT, make_instance

EXPLICIT_LE = "1.2.840.10008.1.2.1"


def series_requests(n: int, size: int = 16) -> list[tuple[StoreRequest, str]]:
    """``n`` C-STORE requests of one series, with their storage keys."""
    study, series = generate_uid(ROOT), generate_uid(ROOT)
    out = []
    for _ in range(n):
        ds = make_instance(study_uid=study, series_uid=series, size=size, modality="CT")
        data = encode(ds, False, True)
        sop_class, sop = str(ds.SOPClassUID), str(ds.SOPInstanceUID)
        rq = StoreRequest(
            affected_sop_class_uid=sop_class, affected_sop_instance_uid=sop,
            transfer_syntax_uid=EXPLICIT_LE, dataset=data,
            part10=lambda c=sop_class, s=sop, d=data: file_meta.encode(c, s, EXPLICIT_LE) + d,
            calling_ae="MODALITY", called_ae="DICOMVAULT", received=time.time())
        out.append((rq, instance_key(study, series, sop)))
    return out


def temps(root: Path) -> list[Path]:
    return sorted(root.rglob(".tmp-*"))


async def turn() -> None:
    """Let the loop run what a store left for its next turns."""
    for _ in range(3):
        await asyncio.sleep(0)


async def test_the_next_instance_of_a_series_is_written_into_a_spare(
        bus_settings: BusSettings, tmp_path: Path) -> None:
    root = tmp_path / "cache"
    settings = GatewaySettings(cache={"root": root}, bus=bus_settings,
                               gateway={"spare_files": True, "spare_max_age_s": 0.3})
    store = FileStore(root)
    requests = series_requests(3)
    async with Publisher(bus_settings, "t") as publisher:
        ingest = Ingest(settings, store, publisher, Bridge(asyncio.get_running_loop(), 5.0))
        with ThreadPoolExecutor(2) as pool:
            assert (await ingest.handle_async(requests[0][0], pool)).status == st.SUCCESS
            await turn()
            [spare] = temps(root)  # made after the response, in the series' folder
            assert spare.parent == store.path(requests[0][1]).parent
            assert spare.stat().st_size == 0
            inode = spare.stat().st_ino
            assert (await ingest.handle_async(requests[1][0], pool)).status == st.SUCCESS
            assert store.path(requests[1][1]).stat().st_ino == inode  # written into it
            await turn()
            [again] = temps(root)  # the next spare
            assert again != spare
            # Unused: removed after spare_max_age_s (checked at most twice that late).
            deadline = time.monotonic() + 5
            while temps(root) and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            assert temps(root) == []
            assert (await ingest.handle_async(requests[2][0], pool)).status == st.SUCCESS
            await turn()
            assert len(temps(root)) == 1
        ingest.close()  # the gateway stops: no spare outlives it
    assert temps(root) == []
    for rq, key in requests:
        assert store.get(key) == rq.part10()


async def test_no_spare_where_it_would_only_cost(bus_settings: BusSettings,
                                                 tmp_path: Path) -> None:
    """Off (the default); after a STOW-RS part (written on a thread, the HTTP loop is never
    held); after an object written with O_DIRECT; and while another store is under way."""
    async with Publisher(bus_settings, "t") as publisher:
        bridge = Bridge(asyncio.get_running_loop(), 5.0)
        off = GatewaySettings(cache={"root": tmp_path / "off"}, bus=bus_settings)
        ingest = Ingest(off, FileStore(tmp_path / "off"), publisher, bridge)
        assert ingest.spare_files is None
        with ThreadPoolExecutor(2) as pool:
            assert (await ingest.handle_async(series_requests(1)[0][0], pool)).status \
                == st.SUCCESS
            await turn()
            assert temps(tmp_path / "off") == []

            on = GatewaySettings(cache={"root": tmp_path / "on"}, bus=bus_settings,
                                 gateway={"spare_files": True})
            ingest = Ingest(on, FileStore(tmp_path / "on"), publisher, bridge)
            rq, _ = series_requests(1)[0]
            part = Part10Request(part10=rq.part10(), source="dicomweb", calling_ae="",
                                 called_ae="DICOMVAULT", received=time.time())
            assert (await ingest.handle_part10_async(part, pool)).status == st.SUCCESS
            await turn()
            assert temps(tmp_path / "on") == []

            large = GatewaySettings(cache={"root": tmp_path / "large"}, bus=bus_settings,
                                    gateway={"spare_files": True})
            ingest = Ingest(large, FileStore(tmp_path / "large", direct_min_bytes=4096),
                            publisher, bridge)
            rq, _ = series_requests(1, size=128)[0]
            assert len(rq.dataset) > 4096
            assert (await ingest.handle_async(rq, pool)).status == st.SUCCESS
            await turn()
            assert temps(tmp_path / "large") == []

            busy = GatewaySettings(cache={"root": tmp_path / "busy"}, bus=bus_settings,
                                   gateway={"spare_files": True})
            ingest = Ingest(busy, FileStore(tmp_path / "busy"), publisher, bridge)
            first, second = series_requests(2)
            ingest._active += 1  # another association's store is under way on this loop
            try:
                assert (await ingest.handle_async(first[0], pool)).status == st.SUCCESS
                await turn()
                assert temps(tmp_path / "busy") == []
            finally:
                ingest._active -= 1
            assert (await ingest.handle_async(second[0], pool)).status == st.SUCCESS
            await turn()
            assert len(temps(tmp_path / "busy")) == 1  # alone again: made
            ingest.close()
    assert temps(tmp_path / "busy") == []  # only the spare went
    assert FileStore(tmp_path / "busy").get(first[1]) == first[0].part10()
    assert FileStore(tmp_path / "busy").get(second[1]) == second[0].part10()


async def test_the_start_up_sweep_removes_stale_temp_files(bus_settings: BusSettings,
                                                            tmp_path: Path) -> None:
    """A gateway killed outright left spares; the next start removes them once an hour old."""
    from dicom_gateway.reconcile import STALE_TEMP_S, Reconciler
    from dicomvault.query import CatalogueClient

    root = tmp_path / "cache"
    store = FileStore(root)
    requests = series_requests(1)
    folder = store.folder(requests[0][1])
    os.makedirs(folder)
    spare = store.new_spare(folder)
    os.close(spare.fd)  # its process is gone
    young = store.new_spare(folder)  # another gateway's, just made
    aged = time.time() - STALE_TEMP_S - 60
    os.utime(spare.tmp, (aged, aged))
    settings = GatewaySettings(cache={"root": root}, bus=bus_settings)
    async with Publisher(bus_settings, "t") as publisher:
        reconciler = Reconciler(settings, store, publisher,
                                CatalogueClient("http://127.0.0.1:9", timeout_s=1.0))
        assert await reconciler.remove_stale_temps() == 1
    assert temps(root) == [Path(young.tmp)]
    os.close(young.fd)
