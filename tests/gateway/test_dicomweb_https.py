"""The gateway's HTTP port over HTTPS (a trustme CA), and the auth-disabled laptop mode."""

from __future__ import annotations

import ssl
import time
from pathlib import Path

import httpx
import pytest
import trustme

from dicomvault.bus.broker import EmbeddedBroker, free_port
from tests.gateway.dicomweb_peers import bus_settings_for, multipart_dicom
from tests.peers.datasets import write_study
from tests.peers.services import FAST_BUS_ENV, ServiceProcess, gateway_env


def wait_https(url: str, verify: ssl.SSLContext, process: ServiceProcess,
               timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert process.process is not None and process.process.poll() is None, process.tail()
        try:
            if httpx.get(url, verify=verify, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise TimeoutError(f"{url} not answering:\n{process.tail()}")


def test_https_and_auth_disabled(broker: EmbeddedBroker, tmp_path: Path) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert_file, key_file = tmp_path / "gateway.pem", tmp_path / "gateway.key"
    cert.cert_chain_pems[0].write_to_path(cert_file)
    for pem in cert.cert_chain_pems[1:]:
        pem.write_to_path(cert_file, append=True)
    cert.private_key_pem.write_to_path(key_file)
    port = free_port()
    gateway = ServiceProcess("gateway", gateway_env(
        bus_settings_for(broker), port, dimse_port=free_port(), cache_root=tmp_path / "cache",
        catalogue_url=f"http://127.0.0.1:{free_port()}", **FAST_BUS_ENV,
        DICOMVAULT_HTTP__CERT_FILE=str(cert_file),
        DICOMVAULT_HTTP__KEY_FILE=str(key_file),
        DICOMVAULT_AUTH__ENABLED="false",
    ), tmp_path)
    verify = ssl.create_default_context()
    ca.configure_trust(verify)
    base = f"https://127.0.0.1:{port}"
    gateway.start()
    try:
        wait_https(f"{base}/healthz", verify, gateway)
        # Plain HTTP on the same port is not served; a client that does not trust the CA
        # refuses the certificate.
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{base}/healthz", timeout=5)
        # Auth disabled: STOW-RS without a token stores (and the start-up log said so).
        study = write_study(tmp_path / "in", series=1, per_series=1)
        body, ctype = multipart_dicom([study.files[0].read_bytes()])
        r = httpx.post(f"{base}/dicomweb/studies", content=body, verify=verify, timeout=30,
                       headers={"Content-Type": ctype})
        assert r.status_code == 200, r.text
        assert r.json()["00081190"]["Value"][0].startswith(f"{base}/dicomweb/studies/")
        stored = [p.read_bytes() for p in (tmp_path / "cache").rglob("*.dcm")]
        assert stored == [study.files[0].read_bytes()]
        assert "AUTHENTICATION DISABLED" in gateway.tail(400)
    finally:
        gateway.stop()
