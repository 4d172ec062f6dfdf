"""Peers of the retrieve tests: the real catalogue process, a dcmtk storescp as C-MOVE
destination, movescu/getscu runners, and a gateway holding a catalogued study."""

from __future__ import annotations

import re
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from pydicom import dcmread

from dicomvault.bus.broker import free_port
from dicomvault.settings import BusSettings
from tests.conftest import dcmtk, peer_env
from tests.gateway.conftest import AE_TITLE, MODALITY, RunningGateway, send_files
from tests.peers.datasets import Study, write_study
from tests.peers.services import ServiceProcess, catalogue_env

DESTINATION = "STORESCP"
RETRIEVER = "VIEWER1"


@pytest.fixture
def catalogue(bus_settings: BusSettings, tmp_path: Path, sqlite_url: str) -> Iterator[str]:
    """The real catalogue service fed by the test's topics; yields its URL."""
    port = free_port()
    env = catalogue_env(bus_settings, sqlite_url, port, DICOMVAULT_HTTP__HOST="127.0.0.1",
                        DICOMVAULT_LOG__JSON_FORMAT="false",
                        DICOMVAULT_BUS__SESSION_TIMEOUT_MS="6000")
    service = ServiceProcess("catalogue", env, tmp_path,
                             ready_url=f"http://127.0.0.1:{port}/readyz")
    try:
        service.start()
        yield f"http://127.0.0.1:{port}"
    finally:
        service.stop()


def wait_port(port: int, process: subprocess.Popen, timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {port}")


@dataclass
class StoreScp:
    port: int
    folder: Path

    def received(self) -> dict[str, Path]:
        """SOP Instance UID -> file storescp wrote."""
        out = {}
        for p in self.folder.iterdir():
            if p.is_file():
                out[str(dcmread(p, stop_before_pixels=True).SOPInstanceUID)] = p
        return out


@pytest.fixture
def storescp(tmp_path: Path) -> Iterator[StoreScp]:
    """dcmtk storescp (AE STORESCP) on a free loopback port, writing what it receives."""
    with run_storescp(tmp_path) as scp:
        yield scp


@contextmanager
def run_storescp(tmp_path: Path, *extra: str, port: int | None = None) -> Iterator[StoreScp]:
    """dcmtk storescp (AE STORESCP) on ``port`` (default: a free one), writing under tmp_path."""
    port = port or free_port()
    folder = tmp_path / "storescp"
    folder.mkdir()
    log = open(tmp_path / "storescp.log", "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [dcmtk("storescp"), "-aet", DESTINATION, "+xa", *extra, "-od", str(folder), str(port)],
        env=peer_env(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        wait_port(port, process)
        yield StoreScp(port, folder)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def modalities(storescp_port: int, **extra: dict) -> dict:
    return {DESTINATION: {"host": "127.0.0.1", "port": storescp_port},
            RETRIEVER: {"may_store": False}, **extra}


def wait_catalogued(catalogue_url: str, sop_uids: list[str], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        r = httpx.post(f"{catalogue_url}/api/v1/instances/unknown",
                       json={"sop_instance_uids": sop_uids}, timeout=5)
        if r.status_code == 200 and not r.json()["unknown"]:
            return
        time.sleep(0.2)
    raise AssertionError("instances never catalogued")


def stored_study(gw: RunningGateway, catalogue_url: str, folder: Path, **kwargs) -> Study:
    """A study sent to the gateway by C-STORE and catalogued."""
    study = write_study(folder, **kwargs)
    assert send_files(gw.port, study.files) == [0] * len(study.files)
    wait_catalogued(catalogue_url, study.sop_uids)
    return study


def movescu(gw_port: int, *keys: str, root: str = "-S", destination: str = DESTINATION,
            calling: str = RETRIEVER, extra: tuple[str, ...] = ()) -> tuple[int, str]:
    args = [dcmtk("movescu"), "-d", "-aet", calling, "-aec", AE_TITLE, "-aem", destination,
            root, *extra]
    for key in keys:
        args += ["-k", key]
    done = subprocess.run([*args, "127.0.0.1", str(gw_port)], env=peer_env(),
                          capture_output=True, text=True, timeout=120)
    return done.returncode, done.stdout + done.stderr


def getscu(gw_port: int, folder: Path, *keys: str, root: str = "-S",
           calling: str = RETRIEVER) -> tuple[int, str]:
    folder.mkdir(parents=True, exist_ok=True)
    args = [dcmtk("getscu"), "-d", "-aet", calling, "-aec", AE_TITLE, root, "-od", str(folder)]
    for key in keys:
        args += ["-k", key]
    done = subprocess.run([*args, "127.0.0.1", str(gw_port)], env=peer_env(),
                          capture_output=True, text=True, timeout=120)
    return done.returncode, done.stdout + done.stderr


def final_status(out: str) -> int:
    """The status of the last C-MOVE/C-GET response in dcmtk's debug output."""
    codes = re.findall(r"DIMSE Status\s*:\s*0x([0-9a-fA-F]{4})", out)
    assert codes, out
    return int(codes[-1], 16)


def error_comment(out: str) -> str:
    found = re.findall(r"\(0000,0902\) LO \[(.*?)\]", out)
    return found[-1] if found else ""


StartGateway = Callable[..., RunningGateway]
__all__ = ["MODALITY", "catalogue", "storescp"]
