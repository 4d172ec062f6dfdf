"""The embedded Tansu broker runs one Tokio worker thread unless the operator says otherwise."""

from __future__ import annotations

from pathlib import Path

import pytest

from dicomvault.bus.broker import EmbeddedBroker


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
