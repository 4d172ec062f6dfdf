"""HTTPS on the archive's own HTTP ports and bearer tokens on the catalogue's reads.

A real catalogue process serves HTTPS (a throw-away CA made here) with tokens required; a real
gateway process reads it over HTTPS with the CA and its own service token from a file, as a
Kubernetes Secret would mount it. When the token in the file expires the gateway's C-FIND
fails and its readiness says why; a fresh token in the file is picked up without a restart.
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import time
from pathlib import Path

import httpx
import pytest
import trustme
from pydicom import dcmread

from dicomvault.bus.broker import free_port
from dicomvault.settings import BusSettings
from tests.conftest import dcmtk, peer_env
from tests.peers.datasets import write_study
from tests.peers.services import FAST_BUS_ENV, ServiceProcess, catalogue_env, gateway_env
from tests.peers.tokens import ADMIN, ISSUER, READ, WRITE, Issuer

AE_TITLE = "DICOMVAULT"
MODALITY = "MODALITY1"


def server_certificate(folder: Path) -> tuple[trustme.CA, Path, Path, Path]:
    """A throw-away CA and a certificate for 127.0.0.1: (ca, cert_file, key_file, ca_file)."""
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert_file, key_file, ca_file = folder / "tls.crt", folder / "tls.key", folder / "ca.crt"
    cert.cert_chain_pems[0].write_to_path(cert_file)
    for pem in cert.cert_chain_pems[1:]:
        pem.write_to_path(cert_file, append=True)
    cert.private_key_pem.write_to_path(key_file)
    ca.cert_pem.write_to_path(ca_file)
    return ca, cert_file, key_file, ca_file


def wait_https(url: str, verify: ssl.SSLContext, process: ServiceProcess,
               timeout_s: float = 90.0) -> None:
    deadline = time.monotonic() + timeout_s
    last = ""
    while time.monotonic() < deadline:
        assert process.process is not None and process.process.poll() is None, process.tail()
        try:
            r = httpx.get(url, verify=verify, timeout=2)
            if r.status_code == 200:
                return
            last = r.text
        except httpx.HTTPError as exc:
            last = repr(exc)
        time.sleep(0.2)
    raise TimeoutError(f"{url} not ready: {last}\n{process.tail()}")


def replace(path: Path, text: str) -> None:
    """Swap a file's content atomically (as the kubelet swaps a mounted Secret)."""
    tmp = path.with_suffix(".new")
    tmp.write_text(text)
    os.replace(tmp, path)


def findscu(port: int, folder: Path, *keys: str) -> tuple[list, str]:
    out = folder / f"find-{free_port()}"
    out.mkdir()
    args = [dcmtk("findscu"), "-v", "-aet", MODALITY, "-aec", AE_TITLE, "-S", "-X", "-od",
            str(out)]
    for key in keys:
        args += ["-k", key]
    done = subprocess.run([*args, "127.0.0.1", str(port)], env=peer_env(),
                          capture_output=True, text=True, timeout=60)
    return [dcmread(p) for p in sorted(out.glob("rsp*.dcm"))], done.stdout + done.stderr


def test_catalogue_reads_need_a_token_and_services_send_theirs_over_https(
        bus_settings: BusSettings, tmp_path: Path) -> None:
    issuer = Issuer(tmp_path)
    ca, cert_file, key_file, ca_file = server_certificate(tmp_path)
    trusted = ssl.create_default_context()
    ca.configure_trust(trusted)
    auth_env = {"DICOMVAULT_AUTH__ENABLED": "true",
                "DICOMVAULT_AUTH__JWKS_FILE": str(issuer.jwks_file),
                "DICOMVAULT_AUTH__ISSUER": ISSUER}
    tls_env = {"DICOMVAULT_HTTP__CERT_FILE": str(cert_file),
               "DICOMVAULT_HTTP__KEY_FILE": str(key_file)}
    catalogue_port = free_port()
    catalogue = ServiceProcess("catalogue", catalogue_env(
        bus_settings, f"sqlite+aiosqlite:///{tmp_path / 'catalogue.db'}", catalogue_port,
        **FAST_BUS_ENV, **auth_env, **tls_env), tmp_path)
    # The gateway's service token, as the identity provider minted it (read scope only).
    token_file = tmp_path / "secrets" / "token"
    token_file.parent.mkdir()
    service_token = issuer.token(READ, subject="dicom-gateway")
    token_file.write_text(service_token)
    http_port, dimse_port = free_port(), free_port()
    base = f"https://127.0.0.1:{catalogue_port}"
    gateway = ServiceProcess("gateway", gateway_env(
        bus_settings, http_port, dimse_port=dimse_port, cache_root=tmp_path / "cache",
        catalogue_url=base, **{
            **FAST_BUS_ENV, **auth_env, **tls_env,
            "DICOMVAULT_GATEWAY__AE_TITLE": AE_TITLE,
            "DICOMVAULT_GATEWAY__ALLOWED_CALLING_AES": json.dumps([MODALITY]),
            "DICOMVAULT_CLIENT__CA_FILE": str(ca_file),
            "DICOMVAULT_CLIENT__TOKEN_FILE": str(token_file),
        }), tmp_path)
    catalogue.start()
    try:
        wait_https(f"{base}/readyz", trusted, catalogue)

        # HTTPS only: plain HTTP on the port is not served, and a client that does not trust
        # the archive's CA refuses the certificate.
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{catalogue_port}/healthz", timeout=5)
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{base}/healthz", timeout=5)

        with httpx.Client(base_url=base, verify=trusted, timeout=10) as http:
            # Health and metrics stay open (probes and Prometheus carry no token).
            for path in ("/healthz", "/readyz", "/metrics"):
                assert http.get(path, follow_redirects=True).status_code == 200, path

            def bearer(*scopes: str, **kw) -> dict[str, str]:
                return {"Authorization": f"Bearer {issuer.token(*scopes, **kw)}"}

            find = {"level": "STUDY", "root": "STUDY"}
            # Every read under /api/v1 needs a token: 401 with a Bearer challenge ...
            refusals = {
                "no token": ({}, 401),
                "not a bearer token": ({"Authorization": "Basic YWxpY2U6c2VjcmV0"}, 401),
                "expired": (bearer(READ, expires_in=-120), 401),
                "other issuer": (bearer(READ, issuer="https://evil.test"), 401),
                "write scope only": (bearer(WRITE), 403),
            }
            for why, (headers, status) in refusals.items():
                for r in (http.post("/api/v1/find", json=find, headers=headers),
                          http.get("/api/v1/queues", headers=headers),
                          http.get("/api/v1/jobs", headers=headers),
                          http.get("/api/v1/studies/1.2.3", headers=headers)):
                    assert r.status_code == status, (why, r.request.url, r.text)
                    assert r.headers["www-authenticate"].startswith("Bearer"), why
            assert "insufficient_scope" in http.get(
                "/api/v1/queues", headers=bearer(WRITE)).headers["www-authenticate"]
            # ... and a read token (or an administrator's) is answered.
            for scopes in ((READ,), (ADMIN,)):
                assert http.post("/api/v1/find", json=find,
                                 headers=bearer(*scopes)).status_code == 200
                assert http.get("/api/v1/queues", headers=bearer(*scopes)).status_code == 200
            assert http.get("/api/v1/studies/1.2.3", headers=bearer(READ)).status_code == 404
            # Commands still need admin: a read token is not enough.
            r = http.post("/api/v1/queues/Q1/pause", headers=bearer(READ))
            assert r.status_code == 403, r.text

            # The gateway reads the catalogue over HTTPS with its service token.
            gateway.start()
            wait_https(f"https://127.0.0.1:{http_port}/readyz", trusted, gateway)
            study = write_study(tmp_path / "in", series=1, per_series=2, patient_id="TOK01")
            done = subprocess.run(
                [dcmtk("storescu"), "-aet", MODALITY, "-aec", AE_TITLE, "127.0.0.1",
                 str(dimse_port), *map(str, study.files)],
                env=peer_env(), capture_output=True, text=True, timeout=120)
            assert done.returncode == 0, done.stdout + done.stderr
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                r = http.get(f"/api/v1/studies/{study.study_uid}/instances",
                             headers=bearer(READ))
                if r.status_code == 200 and len(r.json()) == 2:
                    break
                time.sleep(0.2)
            else:
                raise AssertionError(f"study not indexed: {r.status_code} {r.text}")
            keys = ("QueryRetrieveLevel=STUDY", "PatientID=TOK01", "StudyInstanceUID")
            answers, output = findscu(dimse_port, tmp_path, *keys)
            assert [a.StudyInstanceUID for a in answers] == [study.study_uid], output

            # The token in the Secret expires (nobody rotated it): the catalogue refuses the
            # gateway, C-FIND fails with a failure status, and /readyz says why.
            replace(token_file, issuer.token(READ, subject="dicom-gateway", expires_in=-120))
            answers, output = findscu(dimse_port, tmp_path, *keys)
            assert answers == [], output
            assert "Refused: OutOfResources" in output, output
            r = httpx.get(f"https://127.0.0.1:{http_port}/readyz", verify=trusted, timeout=10)
            assert r.status_code == 503, r.text
            assert "refuses our token" in json.dumps(r.json()), r.text

            # A fresh token in the file is read again without a restart.
            replace(token_file, issuer.token(READ, subject="dicom-gateway"))
            answers, output = findscu(dimse_port, tmp_path, *keys)
            assert [a.StudyInstanceUID for a in answers] == [study.study_uid], output
            wait_https(f"https://127.0.0.1:{http_port}/readyz", trusted, gateway)
    finally:
        gateway.stop()
        catalogue.stop()
    # The service token never reaches the logs.
    assert service_token not in gateway.log_path.read_text(errors="replace")
