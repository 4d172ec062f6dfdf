"""``workers: 2``: two DIMSE processes accept from one listening socket, the least busy
first, and both store."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import time
from pathlib import Path

from tests.conftest import dcmtk, peer_env
from tests.gateway.conftest import AE_TITLE, MODALITY, association, read_events, sample
from tests.peers.datasets import write_study


def listeners(port: int) -> int:
    """LISTEN sockets on ``port`` (/proc/net/tcp: local address hex port, state 0A)."""
    count = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        if state == "0A" and int(local.split(":")[1], 16) == port:
            count += 1
    return count


def send_in_parallel(port: int, batches: list[list[Path]]) -> None:
    senders = [subprocess.Popen(
        [dcmtk("storescu"), "-aet", MODALITY, "-aec", AE_TITLE, "127.0.0.1", str(port),
         *map(str, files)], env=peer_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        for files in batches]
    for proc in senders:
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0, out.decode()


async def test_two_workers_accept_stores(start_gateway, tmp_path: Path) -> None:
    gw = start_gateway(workers=2)
    before = gw.metrics()
    studies = [write_study(tmp_path / f"s{i}", series=1, per_series=4, seed=i) for i in range(4)]

    # Four modalities send at once; the workers share their connections.
    await asyncio.to_thread(send_in_parallel, gw.port, [s.files for s in studies])

    # Every instance is stored and announced once.
    assert len(gw.files()) == 16
    bus = gw.settings.bus
    events = await read_events(bus, bus.topics.instances, 16)
    assert sorted(e.payload.sop_instance_uid for e in events) == sorted(
        uid for s in studies for uid in s.sop_uids)

    # One socket listens on the port (the service's, shared); /metrics adds up what each
    # worker counted.
    assert listeners(gw.port) == 1
    after = gw.metrics()
    assert sample(after, "dicomvault_gateway_cstore_requests_total", status="0x0000") - sample(
        before, "dicomvault_gateway_cstore_requests_total", status="0x0000") == 16
    assert sample(after, "dicomvault_gateway_associations_total", result="accepted", reason="") - sample(
        before, "dicomvault_gateway_associations_total", result="accepted", reason="") == 4


def held(gw) -> dict[str, float]:
    text = gw.metrics()
    return {w: sample(text, "dicomvault_gateway_worker_associations", worker=w) for w in ("0", "1")}


async def test_associations_go_to_the_least_busy_worker(start_gateway) -> None:
    """Four modalities keep an association open each: two per worker, whatever the peers'
    addresses (the kernel's SO_REUSEPORT hash put 3 or 4 of 4 on one worker half of the time)."""
    gw = start_gateway(workers=2)
    await settled(gw)  # the fixture's own port probe, counted down
    with contextlib.ExitStack() as stack:
        for n in range(1, 5):
            stack.enter_context(association(gw.port))
            deadline = time.monotonic() + 10
            while sum(held(gw).values()) != n:  # the new one is counted by its worker
                assert time.monotonic() < deadline, held(gw)
                await asyncio.sleep(0.05)
        assert held(gw) == {"0": 2, "1": 2}
    await settled(gw)  # released: counted down within a poll interval


async def settled(gw) -> None:
    deadline = time.monotonic() + 10
    while held(gw) != {"0": 0, "1": 0}:
        assert time.monotonic() < deadline, held(gw)
        await asyncio.sleep(0.05)
