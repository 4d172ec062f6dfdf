"""``workers: N``: N DIMSE processes accept from one listening socket, the least busy first.

The service process binds and listens on the DIMSE port (which also resolves port 0) and
creates the load table (``balance.py``), then starts ``python -m dicom_gateway.workers`` N
times; both descriptors are inherited (``DICOMVAULT_GATEWAY_LISTEN_FD``,
``DICOMVAULT_GATEWAY_LOAD_FD``). A worker reads its settings as one JSON line on stdin and runs
one DIMSE node (its own publisher, catalogue client and event loop); stdin closing (the parent
is gone) or SIGTERM stops it. The TLS port, if any, is shared with SO_REUSEPORT.

Metrics: each worker serves its registry on a private loopback port, which it prints as
``WORKER-METRICS <port>`` on stdout. The parent's ``/metrics`` is ``AggregateCollector``: its
own registry plus every worker's samples, summed per (name, labels).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import httpx
from prometheus_client import start_http_server
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from dicom_gateway.balance import NOT_ACCEPTING, Balancer, LoadTable
from dicom_gateway.metrics import REGISTRY
from dicom_gateway.settings import GatewaySettings
from dicomvault.lifecycle import heap, malloc
from dicomvault.lifecycle.processes import stop_process

log = logging.getLogger(__name__)


class Worker:
    """One worker process, seen from the parent."""

    def __init__(self, index: int, settings: GatewaySettings, listener: socket.socket,
                 table: LoadTable) -> None:
        self.index = index
        self.settings = settings
        self.listener = listener
        self.table = table
        self.process: subprocess.Popen[bytes] | None = None
        self.metrics_port = 0
        self.ready = threading.Event()

    def start(self) -> None:
        self.ready = threading.Event()  # until this process prints WORKER-READY
        self.metrics_port = 0
        self.table.set(self.index, NOT_ACCEPTING)  # until it accepts
        env = {**os.environ, "DICOMVAULT_GATEWAY_WORKER_INDEX": str(self.index),
               "DICOMVAULT_GATEWAY_WORKER_COUNT": str(self.table.slots),
               "DICOMVAULT_GATEWAY_LISTEN_FD": str(self.listener.fileno()),
               "DICOMVAULT_GATEWAY_LOAD_FD": str(self.table.fd)}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "dicom_gateway.workers"], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, env=env,
            pass_fds=(self.listener.fileno(), self.table.fd))
        self.process.stdin.write(self.settings.model_dump_json().encode() + b"\n")
        self.process.stdin.flush()
        threading.Thread(target=self._read_stdout, daemon=True,
                         name=f"worker-{self.index}-stdout").start()

    def _read_stdout(self) -> None:
        for line in self.process.stdout:
            text = line.decode(errors="replace").strip()
            if text.startswith("WORKER-METRICS "):
                self.metrics_port = int(text.split()[1])
            elif text == "WORKER-READY":
                self.ready.set()

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout_s: float = 15.0) -> None:
        if self.process is None:
            return
        self.table.set(self.index, NOT_ACCEPTING)  # dead or stopping: nobody defers to it
        stop_process(self.process, timeout_s)
        for pipe in (self.process.stdin, self.process.stdout):
            try:
                pipe.close()
            except OSError:
                pass
        self.process = None

    def samples(self) -> list[Metric]:
        if not self.metrics_port or not self.alive():
            return []
        try:
            r = httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=2.0)
            return list(text_string_to_metric_families(r.text))
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("worker metrics unavailable", extra={"worker": self.index,
                                                             "error": repr(exc)})
            return []


class AggregateCollector:
    """The parent's registry plus every worker's, summed (counters, histograms, gauges)."""

    def __init__(self, workers: list[Worker]) -> None:
        self.workers = workers

    def collect(self):
        families: dict[str, Metric] = {}
        values: dict[str, dict[tuple, float]] = {}
        sources = [list(REGISTRY.collect())] + [w.samples() for w in self.workers]
        for source in sources:
            for fam in source:
                if fam.name not in families:
                    families[fam.name] = Metric(fam.name, fam.documentation, fam.type, fam.unit)
                    values[fam.name] = {}
                for s in fam.samples:
                    if s.name.endswith("_created"):
                        continue  # creation times do not add up
                    k = (s.name, tuple(sorted(s.labels.items())))
                    values[fam.name][k] = values[fam.name].get(k, 0.0) + s.value
        for name, fam in families.items():
            for (sname, labels), value in values[name].items():
                fam.add_sample(sname, dict(labels), value)
            yield fam


# --- the worker process --------------------------------------------------------------------
def _worker_main() -> None:
    from dicom_gateway.node import dimse_node
    from dicomvault.bus import Publisher
    from dicomvault.logs import configure
    from dicomvault.query import CatalogueClient

    settings = GatewaySettings.model_validate_json(sys.stdin.buffer.readline())
    index = os.environ.get("DICOMVAULT_GATEWAY_WORKER_INDEX", "?")
    listener_fd = int(os.environ["DICOMVAULT_GATEWAY_LISTEN_FD"])
    table = LoadTable(int(os.environ["DICOMVAULT_GATEWAY_LOAD_FD"]),
                      int(os.environ["DICOMVAULT_GATEWAY_WORKER_COUNT"]))
    balancer = Balancer(table, int(index))
    configure(settings.log, f"gateway-worker-{index}")
    malloc.keep_large_buffers()  # as serve() does for every service process
    server, _thread = start_http_server(0, addr="127.0.0.1", registry=REGISTRY)
    print(f"WORKER-METRICS {server.server_address[1]}", flush=True)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)

        def lifeline() -> None:  # stdin closes when the parent goes away
            # os.read, not sys.stdin: a daemon thread blocked in the buffered reader makes the
            # interpreter abort at exit ("could not acquire lock for <stdin>").
            with contextlib.suppress(OSError):
                while os.read(0, 4096):
                    pass
            with contextlib.suppress(RuntimeError):  # the loop is already closed
                loop.call_soon_threadsafe(stop.set)

        threading.Thread(target=lifeline, daemon=True, name="lifeline").start()
        catalogue = CatalogueClient(settings.gateway.catalogue_url,
                                    settings.gateway.catalogue_timeout_s, client=settings.client)
        try:
            async with Publisher(settings.bus, f"{settings.gateway.client_id}-{index}") as pub, \
                    dimse_node(settings, pub, catalogue, reuse_port=True,
                               listener_fd=listener_fd, balancer=balancer):
                heap.settle()  # before taking associations: no long GC pauses under load
                balancer.publish()  # accepting: the others may defer to it
                print("WORKER-READY", flush=True)
                await stop.wait()
        finally:
            await catalogue.close()

    asyncio.run(main())
    server.shutdown()


def wait_ready(workers: list[Worker], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    for w in workers:
        while not w.ready.wait(0.1):
            if not w.alive():
                raise RuntimeError(f"DIMSE worker {w.index} exited at start-up")
            if time.monotonic() > deadline:
                raise TimeoutError(f"DIMSE worker {w.index} not ready")


if __name__ == "__main__":
    _worker_main()
