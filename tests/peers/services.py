"""Run DICOM Vault services as real subprocesses (`dicomvault run <service>`) for tests."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from dicomvault.lifecycle.processes import stop_process
from dicomvault.settings import BusSettings

# Short broker timeouts and back-offs (and plain-text logs) for service processes that must
# notice a broker restart, or a test's topics appearing, within a test's patience.
FAST_BUS_ENV = {
    "DICOMVAULT_BUS__HEALTH_CHECK_INTERVAL_S": "1",
    "DICOMVAULT_BUS__REQUEST_TIMEOUT_S": "3",
    "DICOMVAULT_BUS__RETRY_BACKOFF_S": "0.05",
    "DICOMVAULT_BUS__RETRY_BACKOFF_MAX_S": "0.5",
    "DICOMVAULT_BUS__SESSION_TIMEOUT_MS": "6000",
    "DICOMVAULT_LOG__JSON_FORMAT": "false",
}


# Bearer tokens off (DICOMVAULT_AUTH__ENABLED=false) for a service process whose HTTP API a
# test uses for other things; the token tests turn them on with a key file instead
# (tests/peers/tokens.py, tests/libs/test_api_guard.py).
AUTH_OFF_ENV = {"DICOMVAULT_AUTH__ENABLED": "false"}


def bus_env(bus: BusSettings) -> dict[str, str]:
    """The broker and every topic name of ``bus`` as DICOMVAULT_BUS__* variables."""
    env = {"DICOMVAULT_BUS__BOOTSTRAP_SERVERS": bus.bootstrap_servers}
    for name, topic in bus.topics.model_dump().items():
        env[f"DICOMVAULT_BUS__TOPICS__{name.upper()}"] = topic
    return env


def catalogue_env(bus: BusSettings, db_url: str, port: int, **extra: str) -> dict[str, str]:
    """The environment of `dicomvault run catalogue` on ``bus`` with its database at
    ``db_url`` and its HTTP API on ``port``; ``extra`` variables are added (or override).
    Bearer tokens are off unless ``extra`` turns them on (``DICOMVAULT_AUTH__ENABLED`` and a
    key file: tests/catalogue/test_read_tokens.py)."""
    return {**bus_env(bus), "DICOMVAULT_DATABASE__URL": db_url,
            "DICOMVAULT_HTTP__PORT": str(port), **AUTH_OFF_ENV, **extra}


def gateway_env(bus: BusSettings, port: int, *, dimse_port: int, cache_root: Path,
                catalogue_url: str, **extra: str) -> dict[str, str]:
    """The environment of `dicomvault run gateway` on ``bus``: HTTP on ``port``, DIMSE on
    ``dimse_port``, its cache and its catalogue; ``extra`` variables are added (or override)."""
    return {**bus_env(bus), "DICOMVAULT_HTTP__PORT": str(port),
            "DICOMVAULT_CACHE__ROOT": str(cache_root),
            "DICOMVAULT_GATEWAY__DIMSE_PORT": str(dimse_port),
            "DICOMVAULT_GATEWAY__CATALOGUE_URL": catalogue_url, **extra}


class ServiceProcess:
    """One service process with its own environment; stopped (SIGTERM, then KILL) by stop()."""

    def __init__(self, service: str, env: dict[str, str], log_dir: Path,
                 ready_url: str | None = None) -> None:
        self.service = service
        self.env = env
        self.log_path = log_dir / f"{service}.log"
        self.ready_url = ready_url
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 60.0) -> ServiceProcess:
        log = open(self.log_path, "ab")  # noqa: SIM115 - closed with the process
        self.process = subprocess.Popen(
            [sys.executable, "-m", "dicomvault_cli", "run", self.service],
            env={**os.environ, **self.env}, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        if self.ready_url:
            self.wait_ready(timeout_s)
        return self

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        last = ""
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"{self.service} exited ({self.process.returncode}):\n{self.tail()}")
            try:
                r = httpx.get(self.ready_url, timeout=1.0)
                if r.status_code == 200:
                    return
                last = r.text
            except httpx.HTTPError as exc:
                last = repr(exc)
            time.sleep(0.1)
        raise TimeoutError(f"{self.service} not ready at {self.ready_url}: {last}\n{self.tail()}")

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout_s: float = 15.0) -> int | None:
        if self.process is None:
            return None
        code = stop_process(self.process, timeout_s)
        self.process = None
        return code

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process = None
