"""Gateway fixtures: the real gateway in a thread of this process (its own event loop) on the
real broker, a pynetdicom SCU for exact statuses, and a reader of the instances topic."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaConsumer
from pynetdicom import AE, _config
from pynetdicom.sop_class import CTImageStorage, SecondaryCaptureImageStorage

from dicom_gateway.service import run
from dicom_gateway.settings import GatewaySettings
from dicomvault.bus.broker import free_port
from dicomvault.events import Event
from dicomvault.settings import BusSettings

AE_TITLE = "DICOMVAULT"
MODALITY = "MODALITY1"


class RunningGateway:
    """``dicom_gateway.service.run`` in a thread with its own loop; stopped like SIGTERM does."""

    def __init__(self, settings: GatewaySettings) -> None:
        self.settings = settings
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="gateway-under-test",
                                        daemon=True)

    @property
    def port(self) -> int:
        return self.settings.gateway.dimse_port

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.settings.http.port}"

    @property
    def cache(self) -> Path:
        return Path(self.settings.cache.root)

    def _main(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            await run(self.settings, self._stop)

        try:
            asyncio.run(main())
        except BaseException as exc:  # noqa: BLE001 - reported by start()/stop()
            self._error = exc

    def start(self, timeout_s: float = 60.0) -> RunningGateway:
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._error is not None or not self._thread.is_alive():
                raise RuntimeError(f"gateway did not start: {self._error!r}")
            try:
                if httpx.get(f"{self.http}/healthz", timeout=1).status_code == 200:
                    with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                        return self
            except (httpx.HTTPError, OSError):
                pass
            time.sleep(0.05)
        raise TimeoutError("gateway not listening")

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(60)
        assert not self._thread.is_alive(), "gateway did not stop"
        if self._error is not None:
            raise self._error

    def files(self, temps: bool = False) -> list[Path]:
        """The stored objects; ``temps``: with the temp files (a write's, or a spare made
        ahead for the next instance of a series, which exists for a few seconds after a
        store: ``gateway.spare_files``)."""
        return sorted(p for p in self.cache.rglob("*")
                      if p.is_file() and (temps or not p.name.startswith(".tmp-")))

    def metrics(self) -> str:
        return httpx.get(f"{self.http}/metrics", timeout=10).text


def gateway_settings(tmp_path: Path, bus: BusSettings, **gateway: object) -> GatewaySettings:
    section = {"ae_title": AE_TITLE, "dimse_port": free_port(), "allowed_calling_aes": [MODALITY],
               "catalogue_url": f"http://127.0.0.1:{free_port()}",  # nobody: no catalogue here
               "store_timeout_s": 10.0, "reconcile_interval_s": 3600.0, **gateway}
    return GatewaySettings(bus=bus, http={"port": free_port()},
                           cache={"root": tmp_path / "cache", "fsync": True}, gateway=section)


@pytest.fixture
def start_gateway(tmp_path: Path, bus_settings: BusSettings
                  ) -> Iterator[Callable[..., RunningGateway]]:
    """Start gateways with setting overrides; every one is stopped after the test."""
    started: list[RunningGateway] = []

    def start(bus: BusSettings | None = None, folder: Path | None = None,
              **gateway: object) -> RunningGateway:
        gw = RunningGateway(gateway_settings(folder or tmp_path, bus or bus_settings, **gateway))
        started.append(gw)
        return gw.start()

    yield start
    for gw in started:
        gw.stop()


@contextmanager
def association(port: int, calling_ae: str = MODALITY, contexts: list[tuple[str, list[str]]]
                | None = None):
    ae = AE(ae_title=calling_ae)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 30
    for abstract, syntaxes in contexts or [
            (CTImageStorage, ["1.2.840.10008.1.2.1"]),
            (SecondaryCaptureImageStorage, ["1.2.840.10008.1.2.1"])]:
        ae.add_requested_context(abstract, syntaxes)
    assoc = ae.associate("127.0.0.1", port, ae_title=AE_TITLE)
    assert assoc.is_established, "association not established"
    try:
        yield assoc
    finally:
        assoc.release()
        ae.shutdown()


def send_files(port: int, paths: list[Path], calling_ae: str = MODALITY,
               contexts: list[tuple[str, list[str]]] | None = None) -> list[int]:
    """C-STORE each file as its bytes are (pynetdicom chunked sending: no decode); statuses."""
    statuses = []
    saved = _config.STORE_SEND_CHUNKED_DATASET
    _config.STORE_SEND_CHUNKED_DATASET = True
    try:
        with association(port, calling_ae, contexts) as assoc:
            for path in paths:
                rsp = assoc.send_c_store(path)
                assert "Status" in rsp, f"no response to {path.name}"
                statuses.append(int(rsp.Status))
    finally:
        _config.STORE_SEND_CHUNKED_DATASET = saved
    return statuses


async def read_events(bus: BusSettings, topic: str, expected: int,
                      timeout_s: float = 30.0) -> list[Event]:
    """Every event on ``topic`` from the start, once at least ``expected`` have arrived."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bus.bootstrap_servers,
                                auto_offset_reset="earliest", enable_auto_commit=False,
                                group_id=None)
    await consumer.start()
    events: list[Event] = []
    try:
        deadline = time.monotonic() + timeout_s
        while len(events) < expected and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                events += [Event.from_record(r.value, r.headers) for r in records]
        # anything beyond what we waited for (a duplicate publish, say)
        for records in (await consumer.getmany(timeout_ms=500)).values():
            events += [Event.from_record(r.value, r.headers) for r in records]
    finally:
        await consumer.stop()
    return events


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample in a /metrics text (0 when absent)."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and s.labels == labels:
                return s.value
    return 0.0


@pytest.fixture(scope="session")
def web_archive(broker, tmp_path_factory: pytest.TempPathFactory):
    """One catalogue + gateway with DICOMweb (default settings) for the modules that only read
    back studies they stored themselves (test_wado_frames, test_wado_rendered): started once
    per session instead of once per module."""
    from tests.gateway.dicomweb_peers import Issuer, WebArchive, bus_settings_for

    folder = tmp_path_factory.mktemp("web-archive")
    a = WebArchive(folder, bus_settings_for(broker), Issuer(folder)).start()
    try:
        yield a
    finally:
        a.stop()
