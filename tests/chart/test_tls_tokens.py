"""The chart with HTTPS and tokens on (ci/tls-values.yaml): every service mounts the TLS
Secret and serves HTTPS (probes and ServiceMonitor use https), the callers of the catalogue
trust its CA, call it on https:// and send their own token file, and every service with a
REST API (all but the operator; its exporter pods too) verifies tokens with the issuer's keys.
Default values keep plain HTTP. The chart's own Secrets sit under /var/run/secrets/dicomvault.io,
apart from the Exporters' Secrets (/var/run/secrets/dicomvault/<name>, test_secret_mounts.py)."""

from __future__ import annotations

import helm_python as helm
import pytest

from tests.chart.conftest import NAMESPACE, RELEASE, install_values, manifests

SECRETS = "/var/run/secrets/dicomvault.io"
CALLERS = {"gateway": "gateway", "hsm-archiver": "hsm-archiver",
           "optical-burner": "optical-burner", "stow-exporter": "stow-exporter",
           "commitment": "commitment", "operator": "operator"}
CATALOGUE_URL_ENV = {"gateway": "DICOMVAULT_GATEWAY__CATALOGUE_URL",
                     "hsm-archiver": "DICOMVAULT_HSM__CATALOGUE_URL",
                     "optical-burner": "DICOMVAULT_OPTICAL__CATALOGUE_URL",
                     "commitment": "DICOMVAULT_COMMITMENT__CATALOGUE_URL",
                     "stow-exporter": "DICOMVAULT_EXPORTER__CATALOGUE_URL",
                     "operator": "DICOMVAULT_OPERATOR__CATALOGUE_URL"}
# The services that verify bearer tokens on their REST API (the operator serves none).
VERIFIERS = ("gateway", "catalogue", "hsm-archiver", "optical-burner", "stow-exporter",
             "commitment", "audit")


def _deployments(rendered) -> dict[str, dict]:
    return {o["metadata"]["name"].removeprefix("dicomvault-"): o
            for _, o in manifests(rendered) if o["kind"] == "Deployment"}


def _pod(dep):
    pod = dep["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    env = {e["name"]: e["value"] for e in c["env"] if "value" in e}
    mounts = {m["name"]: m for m in c.get("volumeMounts", [])}
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    return c, env, mounts, volumes


def test_tls_and_tokens_mount_secrets_set_files_and_probe_https(renders):
    deps = _deployments(renders["tls"])
    assert set(deps) == {"gateway", "catalogue", "audit", *CALLERS}
    for service, dep in deps.items():
        c, env, mounts, volumes = _pod(dep)
        # HTTPS on the HTTP port, from the mounted TLS Secret.
        assert env["DICOMVAULT_HTTP__CERT_FILE"] == f"{SECRETS}/tls/tls.crt", service
        assert env["DICOMVAULT_HTTP__KEY_FILE"] == f"{SECRETS}/tls/tls.key", service
        assert mounts["tls"] == {"name": "tls", "mountPath": f"{SECRETS}/tls",
                                 "readOnly": True}, service
        assert volumes["tls"]["secret"]["secretName"] == "dicomvault-tls"
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            assert c[probe]["httpGet"]["scheme"] == "HTTPS", (service, probe)
        # Secrets never travel as env values (only file paths, Secret names and keys do).
        assert not any("TOKEN" in name and not name.endswith(("_FILE", "_SECRET", "_KEY"))
                       for name in env)
        if service in CALLERS:
            # It trusts the archive's CA and sends its own token, from its own Secret.
            assert env["DICOMVAULT_CLIENT__CA_FILE"] == f"{SECRETS}/tls/ca.crt", service
            assert env["DICOMVAULT_CLIENT__TOKEN_FILE"] == f"{SECRETS}/token/token", service
            assert mounts["token"]["mountPath"] == f"{SECRETS}/token"
            assert mounts["token"]["readOnly"] is True
            assert volumes["token"]["secret"]["secretName"] == f"dicomvault-token-{service}"
            if service in CATALOGUE_URL_ENV:
                assert env[CATALOGUE_URL_ENV[service]] == "https://dicomvault-catalogue:8081"
        else:
            assert "token" not in mounts and not any(k.startswith("DICOMVAULT_CLIENT__")
                                                     for k in env)
        if service in VERIFIERS:
            # The verifiers read the identity provider's keys from their Secret.
            assert env["DICOMVAULT_AUTH__ENABLED"] == "true"
            assert env["DICOMVAULT_AUTH__JWKS_FILE"] == f"{SECRETS}/auth/jwks.json"
            assert env["DICOMVAULT_AUTH__ISSUER"] == "https://idp.hospital.example/realms/pacs"
            assert env["DICOMVAULT_AUTH__AUDIENCE"] == "dicomvault"
            assert volumes["auth-keys"]["secret"]["secretName"] == "dicomvault-idp-keys"
            assert mounts["auth-keys"]["mountPath"] == f"{SECRETS}/auth"
        else:
            assert "auth-keys" not in mounts
    # Prometheus scrapes over HTTPS, trusting the same CA.
    (monitor,) = [o for _, o in manifests(renders["tls"]) if o["kind"] == "ServiceMonitor"]
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["scheme"] == "https"
    assert endpoint["tlsConfig"] == {"ca": {"secret": {"name": "dicomvault-tls",
                                                       "key": "ca.crt"}}}


def test_default_values_stay_plain_http(renders):
    # The default install: plain HTTP, and the keys and tokens README's command supplies.
    for service, dep in _deployments(renders["default"]).items():
        c, env, mounts, _ = _pod(dep)
        assert c["readinessProbe"]["httpGet"]["scheme"] == "HTTP", service
        assert "DICOMVAULT_HTTP__CERT_FILE" not in env and "tls" not in mounts, service
        assert ("token" in mounts) == (service in CALLERS), service
        assert ("auth-keys" in mounts) == (service in VERIFIERS), service
        for name, value in env.items():
            if name.endswith("__CATALOGUE_URL"):
                assert value.startswith("http://"), (service, value)


def test_pem_issuer_key_and_auth_off(chart):
    pem = chart.render(install_values(kafka={"bootstrapServers": "kafka:9092"},
                                      auth={"keySecret": "idp", "keySecretKey": "issuer.pem",
                                            "keyFormat": "pem"},
                                      stowExporter={"enabled": True}),
                       name=RELEASE, namespace=NAMESPACE)
    _, env, _, _ = _pod(_deployments(pem)["catalogue"])
    assert env["DICOMVAULT_AUTH__PUBLIC_KEY_FILE"] == f"{SECRETS}/auth/issuer.pem"
    assert "DICOMVAULT_AUTH__JWKS_FILE" not in env
    for service in VERIFIERS:
        _, env, mounts, _ = _pod(_deployments(pem)[service])
        assert env["DICOMVAULT_AUTH__PUBLIC_KEY_FILE"] == f"{SECRETS}/auth/issuer.pem", service
        assert mounts["auth-keys"]["mountPath"] == f"{SECRETS}/auth", service
    off = chart.render({"auth": {"enabled": False}, "stowExporter": {"enabled": True}},
                       name=RELEASE, namespace=NAMESPACE)
    deps = _deployments(off)
    assert set(VERIFIERS) <= set(deps)
    for service in VERIFIERS:
        _, env, mounts, _ = _pod(deps[service])
        assert env["DICOMVAULT_AUTH__ENABLED"] == "false" and "auth-keys" not in mounts, service


def test_tls_without_a_secret_is_refused(chart):
    with pytest.raises(helm.HelmError, match="secretName"):
        chart.render(install_values(tls={"enabled": True}), name=RELEASE, namespace=NAMESPACE)


def _exporter_pod_env(rendered, monkeypatch) -> tuple[dict, dict, dict, dict]:
    """The operator as the chart configures it renders an Exporter's Deployment: that pod."""
    from dicomvault.exporters import ExporterSpec
    from vault_operator import render
    from vault_operator.settings import OperatorSettings

    _, op_env, _, _ = _pod(_deployments(rendered)["operator"])
    for name, value in op_env.items():
        monkeypatch.setenv(name, value)
    cfg = OperatorSettings().operator
    spec = ExporterSpec.model_validate({
        "exporterID": "X1", "uri": "stowrs:pacs",
        "webApplication": {"name": "pacs", "url": "https://pacs.example.org/dicom-web"}})
    cm = render.config_map("x1", NAMESPACE, spec)
    dep = render.deployment("x1", NAMESPACE, spec, cfg, "kafka:9092", cm)
    return _pod(dep)


def test_operator_gives_exporter_pods_https_ca_and_token(renders, monkeypatch):
    from stow_exporter.settings import ExporterSettings

    c, env, mounts, volumes = _exporter_pod_env(renders["tls"], monkeypatch)
    for probe in ("livenessProbe", "readinessProbe"):
        assert c[probe]["httpGet"]["scheme"] == "HTTPS", probe
    assert volumes["dicomvault-tls"]["secret"]["secretName"] == "dicomvault-tls"
    assert volumes["dicomvault-token"]["secret"]["secretName"] == "dicomvault-token-stow-exporter"
    assert all(m["readOnly"] for m in mounts.values() if m["name"].startswith("dicomvault-"))
    assert env["DICOMVAULT_EXPORTER__CATALOGUE_URL"] == "https://dicomvault-catalogue:8081"
    assert not any("TOKEN" in name and not name.endswith("_FILE") for name in env)
    # The names are the stow-exporter's real settings, pointing into the mounted Secrets.
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    s = ExporterSettings()
    tls_dir = mounts["dicomvault-tls"]["mountPath"]
    token_dir = mounts["dicomvault-token"]["mountPath"]
    assert str(s.http.cert_file) == f"{tls_dir}/tls.crt"
    assert str(s.http.key_file) == f"{tls_dir}/tls.key"
    assert str(s.client.ca_file) == f"{tls_dir}/ca.crt"
    assert str(s.client.token_file) == f"{token_dir}/token"
    # Its /api/v1 verifies tokens with the issuer's keys, mounted from the chart's Secret.
    assert volumes["dicomvault-auth"]["secret"]["secretName"] == "dicomvault-idp-keys"
    auth_dir = mounts["dicomvault-auth"]["mountPath"]
    assert s.auth.enabled and str(s.auth.jwks_file) == f"{auth_dir}/jwks.json"
    assert s.auth.public_key_file is None
    assert s.auth.issuer == "https://idp.hospital.example/realms/pacs"
    assert s.auth.audience == "dicomvault"


def test_operator_exporter_pods_stay_plain_by_default(renders, monkeypatch):
    c, env, mounts, _ = _exporter_pod_env(renders["default"], monkeypatch)
    assert c["readinessProbe"]["httpGet"]["scheme"] == "HTTP"
    assert not any(k.startswith("DICOMVAULT_CLIENT__CA") or k.startswith("DICOMVAULT_HTTP__CERT")
                   for k in env)
    assert "dicomvault-tls" not in mounts
    # Tokens are required (auth.enabled defaults to true): the keys and the exporters' token
    # that the default install supplies reach the pods.
    assert env["DICOMVAULT_AUTH__ENABLED"] == "true"
    assert env["DICOMVAULT_AUTH__JWKS_FILE"].startswith(mounts["dicomvault-auth"]["mountPath"])
    assert env["DICOMVAULT_CLIENT__TOKEN_FILE"].startswith(
        mounts["dicomvault-token"]["mountPath"])


def test_operator_exporter_pods_follow_auth_off_and_a_pem_key(chart, monkeypatch):
    off = chart.render({"auth": {"enabled": False, "keySecret": "idp"}}, name=RELEASE,
                       namespace=NAMESPACE)
    _, env, mounts, _ = _exporter_pod_env(off, monkeypatch)
    assert env["DICOMVAULT_AUTH__ENABLED"] == "false" and "dicomvault-auth" not in mounts
    pem = chart.render(install_values(auth={"keySecret": "idp", "keySecretKey": "issuer.pem",
                                            "keyFormat": "pem"}),
                       name=RELEASE, namespace=NAMESPACE)
    _, env, mounts, volumes = _exporter_pod_env(pem, monkeypatch)
    auth_dir = mounts["dicomvault-auth"]["mountPath"]
    assert env["DICOMVAULT_AUTH__PUBLIC_KEY_FILE"] == f"{auth_dir}/issuer.pem"
    assert "DICOMVAULT_AUTH__JWKS_FILE" not in env
    assert volumes["dicomvault-auth"]["secret"]["items"] == [{"key": "issuer.pem",
                                                              "path": "issuer.pem"}]
