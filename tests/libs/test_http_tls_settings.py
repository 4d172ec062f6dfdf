"""The HTTP listener's TLS options (``dicomvault.lifecycle``) and the gateway's deprecated
``https`` section still honoured through ``http``."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from dicom_gateway.api import http_settings
from dicom_gateway.settings import GatewaySettings
from dicomvault.lifecycle import HttpServer, uvicorn_tls
from dicomvault.settings import HttpSettings


def test_plain_http_without_a_certificate() -> None:
    assert uvicorn_tls(HttpSettings()) == {}
    server = HttpServer.for_app(object(), HttpSettings(port=0))
    assert server.config.ssl_certfile is None


def test_tls_options_and_mutual_tls(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("secret\n")
    http = HttpSettings(cert_file=tmp_path / "c.pem", key_file=tmp_path / "k.pem",
                        key_password_file=tmp_path / "pw", client_ca_file=tmp_path / "ca.pem",
                        require_client_cert=True)
    assert http.tls
    assert uvicorn_tls(http) == {
        "ssl_certfile": str(tmp_path / "c.pem"), "ssl_keyfile": str(tmp_path / "k.pem"),
        "ssl_keyfile_password": "secret", "ssl_ca_certs": str(tmp_path / "ca.pem"),
        "ssl_cert_reqs": ssl.CERT_REQUIRED}
    optional = http.model_copy(update={"require_client_cert": False})
    assert uvicorn_tls(optional)["ssl_cert_reqs"] == ssl.CERT_OPTIONAL


def test_half_a_certificate_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="both cert_file and key_file"):
        uvicorn_tls(HttpSettings(cert_file=tmp_path / "c.pem"))
    with pytest.raises(ValueError, match="client_ca_file"):
        uvicorn_tls(HttpSettings(cert_file=tmp_path / "c.pem", key_file=tmp_path / "k.pem",
                                 require_client_cert=True))


def test_gateway_deprecated_https_section(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DICOMVAULT_HTTPS__CERT_FILE", str(tmp_path / "old.pem"))
    monkeypatch.setenv("DICOMVAULT_HTTPS__KEY_FILE", str(tmp_path / "old.key"))
    http = http_settings(GatewaySettings())
    assert (http.cert_file, http.key_file) == (tmp_path / "old.pem", tmp_path / "old.key")
    # The shared names win when both are set.
    monkeypatch.setenv("DICOMVAULT_HTTP__CERT_FILE", str(tmp_path / "new.pem"))
    monkeypatch.setenv("DICOMVAULT_HTTP__KEY_FILE", str(tmp_path / "new.key"))
    assert http_settings(GatewaySettings()).cert_file == tmp_path / "new.pem"
