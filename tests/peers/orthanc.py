"""Orthanc as a test peer: a remote PACS, a DICOMweb (STOW/QIDO/WADO) server, a C-STORE SCP.

One ``Orthanc`` object runs one ``/usr/sbin/Orthanc`` process with its own JSON config in a
temporary folder: free loopback DICOM and HTTP ports, the DICOMweb plugin loaded, storage in
the folder, ``SyncStorageArea`` on, ``TCP_NODELAY=1`` in its environment (TEST-INFRA.md).

Orthanc 1.10 listens on all interfaces whatever its config says: every client in the tests
talks to ``127.0.0.1`` (``Orthanc.host``), never to a host name.

    with Orthanc(tmp_path, aet="ORTHANC", modalities={"VAULT": ("VAULT", "127.0.0.1", 11112)}) as o:
        o.dicomweb_url            # http://127.0.0.1:<port>/dicom-web
        o.instances(); o.instance_file(orthanc_id); o.delete_all()
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx

from dicomvault.bus.broker import free_port
from dicomvault.lifecycle.processes import stop_process

ORTHANC = Path("/usr/sbin/Orthanc")
PLUGIN_DIRS = (Path("/usr/share/orthanc/plugins"), Path("/usr/lib/orthanc"))


def dicomweb_plugin() -> Path:
    """The DICOMweb plugin shared library of the Debian package (loud failure if missing)."""
    for folder in PLUGIN_DIRS:
        for candidate in sorted(folder.glob("libOrthancDicomWeb.so*")):
            return candidate
    raise RuntimeError("Orthanc DICOMweb plugin not found: run `make peers` "
                       "(apt-get install orthanc orthanc-dicomweb)")


class Orthanc:
    """One Orthanc process; ``start()`` waits until its REST API answers, ``stop()`` ends it."""

    host = "127.0.0.1"

    def __init__(
        self,
        folder: Path,
        *,
        aet: str = "ORTHANC",
        modalities: dict[str, tuple[str, str, int]] | None = None,
        dicom_port: int | None = None,
        http_port: int | None = None,
        extra_config: dict[str, Any] | None = None,
    ) -> None:
        if not ORTHANC.exists():
            raise RuntimeError(f"Orthanc missing at {ORTHANC}: run `make peers`")
        self.folder = Path(folder)
        self.aet = aet
        self.modalities = dict(modalities or {})
        self.dicom_port = dicom_port or free_port()
        self.http_port = http_port or free_port()
        self.extra_config = dict(extra_config or {})
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = self.folder / "orthanc.log"
        self.config_path = self.folder / "orthanc.json"
        self._client: httpx.Client | None = None

    # -- life cycle -----------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.http_port}"

    @property
    def dicomweb_url(self) -> str:
        return f"{self.url}/dicom-web"

    def config(self) -> dict[str, Any]:
        storage = self.folder / "storage"
        return {
            "Name": f"vault-test-{self.aet}",
            "StorageDirectory": str(storage),
            "IndexDirectory": str(storage),
            "StorageCompression": False,
            "SyncStorageArea": True,
            "HttpPort": self.http_port,
            "HttpServerEnabled": True,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "DicomServerEnabled": True,
            "DicomAet": self.aet,
            "DicomPort": self.dicom_port,
            "DicomCheckCalledAet": False,
            "DicomAlwaysAllowEcho": True,
            "DicomAlwaysAllowStore": True,
            "DicomModalities": {
                name: [aet, host, port] for name, (aet, host, port) in self.modalities.items()
            },
            "OverwriteInstances": True,
            "StableAge": 1,
            "Plugins": [str(dicomweb_plugin())],
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "EnableWado": True,
                         "StudiesMetadata": "Full", "SeriesMetadata": "Full"},
            **self.extra_config,
        }

    def start(self, timeout_s: float = 60.0) -> Orthanc:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(json.dumps(self.config(), indent=2))
        log = open(self.log_path, "ab")  # noqa: SIM115 - closed right after Popen
        self.process = subprocess.Popen(
            [str(ORTHANC), str(self.config_path)],
            env={**os.environ, "TCP_NODELAY": "1"}, cwd=self.folder,
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
        log.close()
        self._client = httpx.Client(base_url=self.url, timeout=30.0)
        deadline = time.monotonic() + timeout_s
        last = ""
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"Orthanc exited ({self.process.returncode}):\n{self.tail()}")
            try:
                r = self._client.get("/system")
                if r.status_code == 200:
                    return self
                last = f"HTTP {r.status_code}"
            except httpx.HTTPError as exc:
                last = repr(exc)
            time.sleep(0.1)
        self.stop()
        raise TimeoutError(f"Orthanc REST API not answering at {self.url}: {last}\n{self.tail()}")

    def stop(self, timeout_s: float = 20.0) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        if self.process is None:
            return
        stop_process(self.process, timeout_s)
        self.process = None

    def __enter__(self) -> Orthanc:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def wipe(self) -> None:
        """Stop and remove the storage folder (the object can be started again)."""
        self.stop()
        shutil.rmtree(self.folder / "storage", ignore_errors=True)

    # -- REST helpers ---------------------------------------------------------------------
    @property
    def rest(self) -> httpx.Client:
        if self._client is None:
            raise RuntimeError("Orthanc is not running")
        return self._client

    def _get_json(self, path: str, **params: Any) -> Any:
        r = self.rest.get(path, params=params or None)
        r.raise_for_status()
        return r.json()

    def instances(self) -> list[str]:
        """Orthanc ids of every stored instance."""
        return self._get_json("/instances")

    def studies(self) -> list[str]:
        """Orthanc ids of every stored study."""
        return self._get_json("/studies")

    def study_uids(self) -> list[str]:
        """Study Instance UIDs of every stored study."""
        return [self._get_json(f"/studies/{sid}")["MainDicomTags"]["StudyInstanceUID"]
                for sid in self.studies()]

    def instance_tags(self, orthanc_id: str) -> dict[str, Any]:
        """``/instances/{id}/simplified-tags``: keyword -> value."""
        return self._get_json(f"/instances/{orthanc_id}/simplified-tags")

    def instance_file(self, orthanc_id: str) -> bytes:
        """The Part 10 file exactly as Orthanc stored it."""
        r = self.rest.get(f"/instances/{orthanc_id}/file")
        r.raise_for_status()
        return r.content

    def files_by_sop_uid(self) -> dict[str, bytes]:
        """SOP Instance UID -> stored Part 10 bytes, for every instance."""
        out = {}
        for oid in self.instances():
            sop = self.instance_tags(oid)["SOPInstanceUID"]
            out[sop] = self.instance_file(oid)
        return out

    def find_study(self, study_uid: str) -> list[str]:
        """Orthanc ids of the studies with this Study Instance UID (0 or 1)."""
        r = self.rest.post("/tools/lookup", content=study_uid)
        r.raise_for_status()
        return [hit["ID"] for hit in r.json() if hit.get("Type") == "Study"]

    def files_by_sop_uid_of(self, study_uid: str) -> dict[str, bytes]:
        """SOP Instance UID -> stored Part 10 bytes, for one study."""
        out = {}
        for sid in self.find_study(study_uid):
            for inst in self._get_json(f"/studies/{sid}/instances"):
                out[inst["MainDicomTags"]["SOPInstanceUID"]] = self.instance_file(inst["ID"])
        return out

    def delete(self, kind: str, orthanc_id: str) -> None:
        """Delete one resource (kind: patients, studies, series, instances)."""
        self.rest.delete(f"/{kind}/{orthanc_id}").raise_for_status()

    def delete_all(self) -> None:
        for pid in self._get_json("/patients"):
            self.delete("patients", pid)
