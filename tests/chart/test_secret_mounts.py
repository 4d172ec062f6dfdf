"""Where Secrets are mounted. The chart's own (TLS, the service's token, the issuer's keys, S3
credentials, the database URL) sit under /var/run/secrets/dicomvault.io/<purpose>; the Secrets
Exporters name sit under /var/run/secrets/dicomvault/<secret name> (the stow-exporter's
secrets_dir), in the chart's static stow-exporter as in the exporter pods the operator creates.
So no Secret name can clash with the chart's mounts: every pod has distinct mount paths and
volume names (DNS labels), whatever the names."""

from __future__ import annotations

import hashlib
import re

import helm_python as helm
import kubernetes_validate
import pytest

from tests.chart.conftest import NAMESPACE, RELEASE, VARIANTS, install_values, manifests

OWN = "/var/run/secrets/dicomvault.io"
EXPORTER_SECRETS = "/var/run/secrets/dicomvault"
LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
LONG = "a" * 60 + ".credentials"
# Every name the chart mounts a Secret of its own under, and then some.
SECRETS = ["tls", "token", "auth", "s3", "database", "research.creds", LONG, "tls"]


def _pod(dep) -> tuple[dict, list[dict], list[dict], dict[str, str]]:
    pod = dep["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    env = {e["name"]: e["value"] for e in c["env"] if "value" in e}
    return c, c.get("volumeMounts", []), pod.get("volumes", []), env


def _assert_no_clash(mounts: list[dict], volumes: list[dict], where: str) -> None:
    paths = [m["mountPath"] for m in mounts]
    names = [v["name"] for v in volumes]
    assert len(paths) == len(set(paths)), (where, paths)
    assert len(names) == len(set(names)), (where, names)
    assert all(LABEL.match(n) and len(n) <= 63 for n in names), (where, names)
    assert {m["name"] for m in mounts} <= set(names), where


def _static_exporter(chart, secrets: list[str]) -> dict:
    values = install_values(
        tls={"enabled": True, "secretName": "dicomvault-tls"},
        cache={"backend": "s3", "s3": {"credentialsSecret": "dicomvault-s3"}},
        stowExporter={"enabled": True, "secrets": secrets, "exporters": [{
            "apiVersion": "dicomvault.io/v1", "kind": "Exporter",
            "metadata": {"name": "research"},
            "spec": {"uri": "https://research.example.org/dicom-web"}}]})
    rendered = chart.render(values, name=RELEASE, namespace=NAMESPACE)
    (dep,) = [o for _, o in manifests(rendered)
              if o["kind"] == "Deployment" and o["metadata"]["name"] == "dicomvault-stow-exporter"]
    return dep


@pytest.mark.parametrize("variant", VARIANTS)
def test_no_pod_has_two_mounts_at_one_path_or_two_volumes_of_one_name(renders, variant):
    for _, o in manifests(renders[variant]):
        if o["kind"] == "Deployment":
            _, mounts, volumes, _ = _pod(o)
            _assert_no_clash(mounts, volumes, f"{variant}: {o['metadata']['name']}")


def test_exporter_secrets_named_like_the_charts_own_mounts_do_not_clash(chart, monkeypatch):
    from stow_exporter.settings import ExporterSettings

    dep = _static_exporter(chart, SECRETS)
    kubernetes_validate.validate(dep, "1.30.0", strict=True)
    _, mounts, volumes, env = _pod(dep)
    _assert_no_clash(mounts, volumes, "stow-exporter")
    by_path = {m["mountPath"]: m for m in mounts}
    secret_of = {v["name"]: v["secret"]["secretName"] for v in volumes if "secret" in v}
    # Each Exporter Secret once, read-only, at <secrets_dir>/<its name>.
    for name in set(SECRETS):
        mount = by_path[f"{EXPORTER_SECRETS}/{name}"]
        assert mount["readOnly"] is True and secret_of[mount["name"]] == name
    assert by_path[f"{EXPORTER_SECRETS}/tls"]["name"] == "secret-tls"
    assert by_path[f"{EXPORTER_SECRETS}/research.creds"]["name"].startswith("secret-research-creds-")
    # The chart's own Secrets, under their own directory.
    assert secret_of[by_path[f"{OWN}/tls"]["name"]] == "dicomvault-tls"
    assert secret_of[by_path[f"{OWN}/token"]["name"]] == "dicomvault-token-stow-exporter"
    assert secret_of[by_path[f"{OWN}/auth"]["name"]] == "dicomvault-idp-keys"
    assert secret_of[by_path[f"{OWN}/s3"]["name"]] == "dicomvault-s3"
    # The files the service reads are in those mounts.
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    s = ExporterSettings()
    assert str(s.exporter.secrets_dir) == EXPORTER_SECRETS
    assert str(s.http.cert_file) == f"{OWN}/tls/tls.crt"
    assert str(s.client.ca_file) == f"{OWN}/tls/ca.crt"
    assert str(s.client.token_file) == f"{OWN}/token/token"
    assert str(s.auth.jwks_file) == f"{OWN}/auth/jwks.json"
    assert str(s.cache.s3.credentials_file) == f"{OWN}/s3/credentials.json"


def test_two_secrets_that_would_share_a_volume_name_are_refused(chart):
    # "a.b" is no DNS label: its volume is "secret-a-b-<hash>", which this name also gives.
    twin = "a-b-" + hashlib.sha256(b"a.b").hexdigest()[:8]
    with pytest.raises(helm.HelmError) as err:
        _static_exporter(chart, ["a.b", twin])
    assert (f'stowExporter.secrets: "a.b" and "{twin}" would share the pod volume name '
            f'"secret-{twin}"; rename one of the Secrets') in str(err.value)


@pytest.mark.parametrize("name", ["tls", "token", "auth"])
def test_operator_exporter_pods_keep_an_exporters_secret_apart_too(renders, monkeypatch, name):
    """The operator (as the chart configures it) mounts its TLS, token and key Secrets under
    /var/run/secrets/dicomvault.io: an Exporter's Secret of the same name does not clash."""
    from dicomvault.exporters import ExporterSpec
    from vault_operator import render
    from vault_operator.settings import OperatorSettings

    (op,) = [o for _, o in manifests(renders["tls"])
             if o["kind"] == "Deployment" and o["metadata"]["name"] == "dicomvault-operator"]
    for key, value in _pod(op)[3].items():
        monkeypatch.setenv(key, value)
    spec = ExporterSpec.model_validate({
        "exporterID": "X1", "uri": "stowrs:pacs",
        "webApplication": {"name": "pacs", "url": "https://pacs.example.org/dicom-web",
                           "properties": {"bearer-token": {"secretKeyRef": {
                               "name": name, "key": "token"}}}}})
    cfg = OperatorSettings().operator
    dep = render.deployment("x1", NAMESPACE, spec, cfg, "kafka:9092",
                            render.config_map("x1", NAMESPACE, spec))
    _, mounts, volumes, _ = _pod(dep)
    _assert_no_clash(mounts, volumes, "operator's exporter pod")
    paths = {m["mountPath"] for m in mounts}
    assert {f"{EXPORTER_SECRETS}/{name}", f"{OWN}/tls", f"{OWN}/token", f"{OWN}/auth"} <= paths
