"""Orthanc as the reference archive for the ingest benchmark: own config, loopback, fsync on."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import httpx

from dicomvault.bus.broker import free_port
from dicomvault.lifecycle.processes import stop_process
from tests.peers.orthanc import dicomweb_plugin

ORTHANC = "/usr/sbin/Orthanc"


class Orthanc:
    def __init__(self, workdir: Path, aet: str = "ORTHANC") -> None:
        self.workdir = workdir
        self.aet = aet
        self.dicom_port = free_port()
        self.http_port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def start(self) -> Orthanc:
        storage = self.workdir / "storage"
        storage.mkdir(parents=True, exist_ok=True)
        config = {
            "Name": "bench", "DicomAet": self.aet, "DicomPort": self.dicom_port,
            "HttpPort": self.http_port, "RemoteAccessAllowed": False, "AuthenticationEnabled": False,
            "StorageDirectory": str(storage), "IndexDirectory": str(storage),
            "SyncStorageArea": True, "DicomCheckCalledAet": False, "DicomAlwaysAllowStore": True,
            "DicomAlwaysAllowEcho": True, "StorageCompression": False, "Plugins": [str(dicomweb_plugin())],
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
            "LimitFindResults": 0, "ConcurrentJobs": 2, "HttpServerEnabled": True,
            "DicomScpTimeout": 30, "StableAge": 3600, "SaveJobs": False,
        }
        cfg = self.workdir / "orthanc.json"
        cfg.write_text(json.dumps(config))
        log = open(self.workdir / "orthanc.log", "ab")  # noqa: SIM115
        self.process = subprocess.Popen([ORTHANC, str(cfg)], stdout=log, stderr=subprocess.STDOUT,
                                        env={**os.environ, "TCP_NODELAY": "1"})
        log.close()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/system", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.1)
        raise TimeoutError("Orthanc did not start")

    @property
    def stow_url(self) -> str:
        return f"{self.url}/dicom-web/studies"

    def count(self) -> int:
        return int(httpx.get(self.url + "/statistics", timeout=10).json()["CountInstances"])

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process, timeout_s=30)
            self.process = None
