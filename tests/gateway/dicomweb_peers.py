"""DICOMweb test peers: a token issuer (real keys, real JWTs) and an archive of real processes
(catalogue + gateway, `dicomvault run …`) on the session broker, with bearer tokens on."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from pathlib import Path

import httpx
from dicomweb_client import DICOMwebClient
from pydicom import dcmread
from pydicom.dataset import Dataset

from dicomvault.bus.broker import EmbeddedBroker, free_port
from dicomvault.settings import BusSettings
from tests.conftest import dcmtk, peer_env
from tests.peers.services import FAST_BUS_ENV, ServiceProcess, catalogue_env, gateway_env
from tests.peers.tokens import ADMIN, AUDIENCE, ISSUER, READ, WRITE, Issuer  # noqa: F401

AE_TITLE = "DICOMVAULT"
MODALITY = "MODALITY1"
def bus_settings_for(broker: EmbeddedBroker) -> BusSettings:
    suffix = uuid.uuid4().hex[:8]
    return BusSettings(
        bootstrap_servers=broker.bootstrap_servers,
        topics={"instances": f"w{suffix}.instances", "studies": f"w{suffix}.studies",
                "jobs": f"w{suffix}.jobs", "job_commands": f"w{suffix}.job-commands",
                "dlq": f"w{suffix}.dlq"},
        health_check_interval_s=1.0, retry_backoff_s=0.05, retry_backoff_max_s=0.5,
        session_timeout_ms=6000)


class WebArchive:
    """A catalogue (SQLite) and a gateway process with DICOMweb and bearer tokens on."""

    def __init__(self, folder: Path, bus: BusSettings, issuer: Issuer,
                 **extra_env: str) -> None:
        self.folder = folder
        self.bus = bus
        self.issuer = issuer
        self.dimse_port = free_port()
        self.catalogue_port = free_port()
        self.http_port = free_port()
        self.catalogue = ServiceProcess("catalogue", catalogue_env(
            bus, f"sqlite+aiosqlite:///{folder / 'catalogue.db'}", self.catalogue_port,
            **FAST_BUS_ENV,
        ), folder, ready_url=f"http://127.0.0.1:{self.catalogue_port}/readyz")
        self.gateway_env = gateway_env(
            bus, self.http_port, dimse_port=self.dimse_port, cache_root=folder / "cache",
            catalogue_url=f"http://127.0.0.1:{self.catalogue_port}", **{
                **FAST_BUS_ENV,
                "DICOMVAULT_GATEWAY__AE_TITLE": AE_TITLE,
                "DICOMVAULT_GATEWAY__ALLOWED_CALLING_AES": json.dumps([MODALITY]),
                "DICOMVAULT_GATEWAY__STORE_TIMEOUT_S": "5",
                "DICOMVAULT_AUTH__JWKS_FILE": str(issuer.jwks_file),
                "DICOMVAULT_AUTH__ISSUER": ISSUER,
                "DICOMVAULT_AUTH__AUDIENCE": AUDIENCE,
                # dicomweb-client sends a Host header without the port: name the public URL.
                "DICOMVAULT_DICOMWEB__BASE_URL": f"http://127.0.0.1:{self.http_port}/dicomweb",
                **extra_env,
            })
        self.gateway = ServiceProcess("gateway", self.gateway_env, folder,
                                      ready_url=f"http://127.0.0.1:{self.http_port}/readyz")

    @property
    def cache(self) -> Path:
        return self.folder / "cache"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}/dicomweb"

    def start(self) -> WebArchive:
        self.catalogue.start()
        self.gateway.start()
        return self

    def stop(self) -> None:
        self.gateway.stop()
        self.catalogue.stop()

    def files(self) -> list[Path]:
        return sorted(p for p in self.cache.rglob("*.dcm") if p.is_file())

    def headers(self, *scopes: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.issuer.token(*(scopes or (READ, WRITE)))}"}

    def client(self, *scopes: str) -> DICOMwebClient:
        return DICOMwebClient(self.url, headers=self.headers(*scopes))

    def http(self, *scopes: str) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=self.headers(*scopes), timeout=60)

    def wait_indexed(self, study_uid: str, instances: int, timeout_s: float = 60.0) -> None:
        """Until the catalogue lists ``instances`` instances of the study (a deadline only)."""
        deadline = time.monotonic() + timeout_s
        got = None
        while time.monotonic() < deadline:
            r = httpx.get(f"http://127.0.0.1:{self.catalogue_port}/api/v1/studies/"
                          f"{study_uid}/instances", timeout=10)
            if r.status_code == 200:
                got = len({row["sop_instance_uid"] for row in r.json()})
                if got >= instances:
                    return
            time.sleep(0.2)
        raise AssertionError(f"catalogue lists {got} of {instances} instances of {study_uid}")

    def storescu(self, files: list[Path]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [dcmtk("storescu"), "-aet", MODALITY, "-aec", AE_TITLE, "127.0.0.1",
             str(self.dimse_port), *map(str, files)],
            env=peer_env(), capture_output=True, text=True, timeout=120)

    def findscu(self, *keys: str) -> tuple[int, list[Dataset], str]:
        out = self.folder / f"find-{free_port()}"
        out.mkdir()
        args = [dcmtk("findscu"), "-aet", MODALITY, "-aec", AE_TITLE, "-S", "-X", "-od",
                str(out)]
        for key in keys:
            args += ["-k", key]
        done = subprocess.run([*args, "127.0.0.1", str(self.dimse_port)], env=peer_env(),
                              capture_output=True, text=True, timeout=60)
        return done.returncode, [dcmread(p) for p in sorted(out.glob("rsp*.dcm"))], \
            done.stdout + done.stderr


def multipart_dicom(parts: list[bytes], boundary: str = "b0undary-x") -> tuple[bytes, str]:
    """A STOW-RS body written by hand (for the malformed-body tests) and its Content-Type."""
    body = b"".join(b"--" + boundary.encode() + b"\r\nContent-Type: application/dicom\r\n\r\n"
                    + p + b"\r\n" for p in parts) + b"--" + boundary.encode() + b"--\r\n"
    return body, f'multipart/related; type="application/dicom"; boundary={boundary}'


def raw_parts(client: DICOMwebClient, url: str, accept: str | None = None) -> list[bytes]:
    """The parts of a WADO-RS answer exactly as sent, split by dicomweb-client's decoder."""
    headers = {"Accept": accept or 'multipart/related; type="application/dicom"'}
    response = client._session.get(url, headers=headers, timeout=60)
    assert response.status_code == 200, response.text
    return list(client._decode_multipart_message(response, stream=False))
