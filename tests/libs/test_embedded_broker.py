"""The embedded Tansu broker runs one Tokio worker thread unless the operator says otherwise,
and every thread of it on one CPU unless told otherwise."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from dicomvault.bus.broker import EmbeddedBroker, broker_cpu


def _tokio_workers(pid: int) -> int:
    return sum(1 for task in Path(f"/proc/{pid}/task").iterdir()
               if (task / "comm").read_text().strip() == "tokio-rt-worker")


def _workers_of_started_broker(tmp_path: Path, **kwargs) -> int:
    broker = EmbeddedBroker(log_path=tmp_path / "tansu.log", **kwargs)
    broker.start()
    try:
        assert broker.process is not None
        return _tokio_workers(broker.process.pid)
    finally:
        broker.stop()


def test_one_worker_thread_by_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TOKIO_WORKER_THREADS", raising=False)
    assert _workers_of_started_broker(tmp_path) == 1
    assert _workers_of_started_broker(tmp_path, worker_threads=3) == 3


def test_the_operators_tokio_worker_threads_wins(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOKIO_WORKER_THREADS", "2")
    assert _workers_of_started_broker(tmp_path) == 2


# --- the CPU its threads share ---------------------------------------------------------------
def _thread_cpus(pid: int) -> list[set[int]]:
    return [os.sched_getaffinity(int(task.name)) for task in Path(f"/proc/{pid}/task").iterdir()]


def _started(tmp_path: Path, **kwargs) -> EmbeddedBroker:
    broker = EmbeddedBroker(log_path=tmp_path / "tansu.log", **kwargs)
    broker.start()
    return broker


def _round_trip(broker: EmbeddedBroker) -> bytes:
    async def go() -> bytes:
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers)
        consumer = AIOKafkaConsumer("pinned", bootstrap_servers=broker.bootstrap_servers,
                                    auto_offset_reset="earliest")
        await producer.start()
        try:
            await producer.send_and_wait("pinned", b"on one CPU")
        finally:
            await producer.stop()
        await consumer.start()
        try:
            return (await asyncio.wait_for(consumer.getone(), 20)).value
        finally:
            await consumer.stop()

    return asyncio.run(go())


@pytest.fixture
def two_cpus() -> list[int]:
    allowed = sorted(os.sched_getaffinity(0))
    assert len(allowed) >= 2, f"these tests need 2 CPUs to tell pinned from free: {allowed}"
    return allowed


def test_every_broker_thread_shares_one_cpu_by_default(tmp_path: Path,
                                                       two_cpus: list[int]) -> None:
    broker = _started(tmp_path)
    try:
        assert broker.process is not None
        masks = _thread_cpus(broker.process.pid)
        assert len(masks) >= 2  # Tokio's threads, not only the main one
        assert all(m == {broker.cpu} for m in masks), masks
        assert broker.cpu in two_cpus
        assert _round_trip(broker) == b"on one CPU"
        # The thread that started it is not pinned with it.
        assert sorted(os.sched_getaffinity(0)) == two_cpus
    finally:
        broker.stop()


def test_the_cpu_can_be_named_or_left_free(tmp_path: Path, two_cpus: list[int]) -> None:
    last = two_cpus[-1]
    broker = _started(tmp_path, cpu=last)
    try:
        assert broker.process is not None
        assert all(m == {last} for m in _thread_cpus(broker.process.pid))
    finally:
        broker.stop()
    free = _started(tmp_path, cpu=None)
    try:
        assert free.process is not None
        assert all(sorted(m) == two_cpus for m in _thread_cpus(free.process.pid))
    finally:
        free.stop()


def test_brokers_side_by_side_spread_over_the_cpus(two_cpus: list[int]) -> None:
    picked = {broker_cpu(port) for port in range(20000, 20000 + len(two_cpus))}
    assert picked == set(two_cpus)


def test_a_cpu_this_process_may_not_use_is_refused() -> None:
    with pytest.raises(ValueError, match=r"cannot run on CPU 4096: this process may use CPUs"):
        EmbeddedBroker(cpu=4096)
