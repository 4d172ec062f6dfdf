"""The chart renders with the real Helm SDK, for default values and every ci/*-values.yaml,
into manifests that Kubernetes 1.30's schemas (strict) and the CR schemas accept."""

from __future__ import annotations

import importlib
import os
import sys
from collections import Counter

import helm_python as helm
import jsonschema
import kubernetes_validate
import pytest
from pydantic_settings import BaseSettings
from yamllint import linter
from yamllint.config import YamlLintConfig

from tests.chart.conftest import CHART, NAMESPACE, RELEASE, ROOT, VARIANTS, manifests
from tests.chart.crschemas import SCHEMAS

K8S = "1.30.0"
YAMLLINT = YamlLintConfig("""
extends: default
rules:
  document-start: disable
  line-length: {max: 200, allow-non-breakable-inline-mappings: true}
  indentation: {spaces: consistent, indent-sequences: whatever}
  comments: {min-spaces-from-content: 1}
  comments-indentation: disable
  braces: {max-spaces-inside: 1}
  truthy: {check-keys: false}
""")


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_manifest_validates_strictly(renders, variant):
    objects = manifests(renders[variant])
    assert objects, "nothing rendered"
    custom = 0
    for path, obj in objects:
        key = (obj["apiVersion"], obj["kind"])
        if key in SCHEMAS:
            jsonschema.validate(obj, SCHEMAS[key])
            custom += 1
            continue
        try:
            kubernetes_validate.validate(obj, K8S, strict=True)
        except kubernetes_validate.ValidationError as e:
            pytest.fail(f"{variant}: {path}: {obj['kind']}/{obj['metadata']['name']}: "
                        f"{'.'.join(map(str, e.path))}: {e.message}")
        except kubernetes_validate.SchemaNotFoundError:
            pytest.fail(f"{variant}: {path}: no schema for {key} (a new custom resource "
                        "needs a schema in tests/chart/crschemas.py)")
    if variant in ("full", "strimzi"):
        assert custom >= 4


@pytest.mark.parametrize("variant", VARIANTS)
def test_rendered_yaml_passes_yamllint(renders, variant):
    for path, text in sorted(renders[variant].items()):
        if path.endswith("NOTES.txt") or not text.strip():
            continue
        # Helm's own output trims each manifest (releaseutil.SplitManifests), so do we.
        problems = [f"{p.line}: {p.message}" for p in linter.run(text.strip() + "\n", YAMLLINT)
                    if p.level == "error"]
        assert not problems, f"{variant}: {path}: {problems}"


@pytest.mark.parametrize("variant", VARIANTS)
def test_one_resource_per_template_file(renders, variant):
    for path, obj_count in Counter(p for p, _ in manifests(renders[variant])).items():
        kinds = {o["kind"] for p, o in manifests(renders[variant]) if p == path}
        # KafkaTopic is the one list: one object per topic, all of one kind.
        assert obj_count == 1 or kinds == {"KafkaTopic"}, f"{path}: {obj_count} objects"


def test_helm_lint_is_clean():
    from tests.chart.conftest import variant_values

    for variant in VARIANTS:
        values = variant_values(variant)
        report = helm.lint(str(CHART), values, strict=True, namespace=NAMESPACE,
                           kube_version="v1.30.0")
        errors = [m for m in report["messages"] if m["severity"] >= 2] + report["errors"]
        assert not errors, f"{variant}: {errors}"


def test_schema_accepts_every_variant_and_rejects_bad_values(chart):
    from tests.chart.conftest import variant_values

    for variant in VARIANTS:
        chart.validate_schema(variant_values(variant))
    for bad in ({"gateway": {"replicaCount": "two"}},
                {"gateway": {"service": {"type": "Ingress"}}},
                {"gatway": {"enabled": True}},
                {"cache": {"backend": "nfs"}},
                {"cache": {"folderFlush": "sometimes"}},
                {"catalogue": {"settings": {"Database": {"url": "x"}}}},
                {"kafka": {"bootstrapServers": "no-port"}}):
        with pytest.raises(helm.HelmValuesError):
            chart.validate_schema(bad)
        with pytest.raises(helm.HelmError):
            chart.render(bad, name=RELEASE, namespace=NAMESPACE)


def _objects(renders, variant, kind):
    return {o["metadata"]["name"]: o for _, o in manifests(renders[variant]) if o["kind"] == kind}


def test_one_deployment_per_enabled_service_with_probes_and_non_root(renders):
    full = _objects(renders, "full", "Deployment")
    assert {n.removeprefix("dicomvault-") for n in full} == {
        "gateway", "catalogue", "hsm-archiver", "optical-burner", "stow-exporter",
        "commitment", "operator", "audit"}
    default = _objects(renders, "default", "Deployment")
    assert {n.removeprefix("dicomvault-") for n in default} == {
        "gateway", "catalogue", "hsm-archiver", "optical-burner", "commitment", "operator",
        "audit"}
    for name, dep in full.items():
        pod = dep["spec"]["template"]["spec"]
        (c,) = pod["containers"]
        service = name.removeprefix("dicomvault-")
        assert c["args"] == ["run", service]
        assert "command" not in c  # the image's entrypoint is `dicomvault`
        assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] == 10001
        assert c["securityContext"]["allowPrivilegeEscalation"] is False
        assert pod["automountServiceAccountToken"] is (service == "operator")


def _env(dep) -> dict[str, str]:
    (c,) = dep["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e["value"] for e in c["env"] if "value" in e}


def test_database_url_comes_from_a_secret_file(renders):
    dep = _objects(renders, "full", "Deployment")["dicomvault-catalogue"]
    env = _env(dep)
    assert "DICOMVAULT_DATABASE__URL" not in env
    path = env["DICOMVAULT_DATABASE__URL_FILE"]
    pod = dep["spec"]["template"]["spec"]
    (mount,) = [m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "database"]
    (vol,) = [v for v in pod["volumes"] if v["name"] == "database"]
    assert path == f"{mount['mountPath']}/url" and mount["readOnly"]
    assert vol["secret"] == {"secretName": "dicomvault-db",
                             "items": [{"key": "database-url", "path": "url"}]}
    assert "Secret" not in {o["kind"] for _, o in manifests(renders["full"])}


def test_kafka_bootstrap_external_or_strimzi(renders):
    minimal = _env(_objects(renders, "minimal", "Deployment")["dicomvault-gateway"])
    assert minimal["DICOMVAULT_BUS__BOOTSTRAP_SERVERS"] == "kafka.messaging.svc:9092"
    kafka = _objects(renders, "strimzi", "Kafka")
    (name,) = kafka
    for dep in _objects(renders, "strimzi", "Deployment").values():
        assert _env(dep)["DICOMVAULT_BUS__BOOTSTRAP_SERVERS"] == f"{name}-kafka-bootstrap:9092"
    topics = {t["spec"]["topicName"] for t in _objects(renders, "strimzi", "KafkaTopic").values()}
    from dicomvault.settings import TopicNames

    assert topics == set(TopicNames().all())


def test_gateway_service_is_load_balancer_ready(renders):
    svc = _objects(renders, "full", "Service")["dicomvault-gateway"]
    assert svc["spec"]["type"] == "LoadBalancer"
    ports = {p["name"]: p for p in svc["spec"]["ports"]}
    assert ports["dimse"]["port"] == 11112 and ports["dimse"]["nodePort"] == 31112
    assert ports["http"]["port"] == 8080
    assert svc["spec"]["externalTrafficPolicy"] == "Local"
    assert svc["spec"]["loadBalancerSourceRanges"] == ["10.20.0.0/16"]
    assert "service.beta.kubernetes.io/aws-load-balancer-type" in svc["metadata"]["annotations"]
    pdb = _objects(renders, "full", "PodDisruptionBudget")["dicomvault-gateway"]
    assert pdb["spec"]["selector"]["matchLabels"] == svc["spec"]["selector"]


def test_operator_rbac_is_least_privilege(renders):
    for variant in VARIANTS:
        kinds = {o["kind"] for _, o in manifests(renders[variant])}
        assert not kinds & {"ClusterRole", "ClusterRoleBinding"}
    (role,) = _objects(renders, "default", "Role").values()
    granted = {(g, r, v) for rule in role["rules"] for g in rule["apiGroups"]
               for r in rule["resources"] for v in rule["verbs"]}
    assert not any("*" in x for grant in granted for x in grant)
    assert {r for _, r, _ in granted} == {
        "exporters", "exporters/status", "exporters/finalizers", "deployments", "configmaps",
        "events"}
    assert {v for g, r, v in granted if r == "exporters"} == {"get", "list", "watch", "patch"}
    assert {v for g, r, v in granted if r == "events"} == {"create"}
    (binding,) = _objects(renders, "default", "RoleBinding").values()
    (sa,) = binding["subjects"]
    dep = _objects(renders, "default", "Deployment")["dicomvault-operator"]
    assert dep["spec"]["template"]["spec"]["serviceAccountName"] == sa["name"]
    peering = _objects(renders, "full", "Role")["dicomvault-operator"]
    assert any("kopfpeerings" in r["resources"] for r in peering["rules"])


def test_dashboards_configmap_is_labelled_for_the_grafana_sidecar(renders):
    (cm,) = _objects(renders, "default", "ConfigMap").values()
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    names = {p.name for p in (CHART / "dashboards").glob("*.json")}
    assert set(cm["data"]) == names and names


def _settings_class(package: str):
    services = {p.parent.name: p.parent for p in ROOT.glob("services/*/*/__init__.py")}
    if not (services[package] / "settings.py").exists():
        return None
    module = importlib.import_module(f"{package}.settings")
    (cls,) = [c for c in vars(module).values() if isinstance(c, type)
              and issubclass(c, BaseSettings) and c is not BaseSettings
              and c.__module__ == module.__name__]
    return cls


PACKAGES = {"gateway": "dicom_gateway", "catalogue": "catalogue",
            "hsm-archiver": "hsm_archiver", "optical-burner": "optical_burner",
            "stow-exporter": "stow_exporter", "commitment": "commitment",
            "operator": "vault_operator", "audit": "audit"}


@pytest.mark.parametrize("variant", ["default", "full", "strimzi"])
def test_rendered_env_is_what_the_services_settings_read(renders, variant, monkeypatch):
    """The env the chart renders, fed to the services' own pydantic-settings classes."""
    checked = 0
    for name, dep in _objects(renders, variant, "Deployment").items():
        service = name.removeprefix("dicomvault-")
        cls = _settings_class(PACKAGES[service])
        if cls is None:  # the service has no settings.py yet
            continue
        for key in [k for k in os.environ if k.startswith("DICOMVAULT_")]:
            monkeypatch.delenv(key)
        env = _env(dep)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        settings = cls()
        (c,) = dep["spec"]["template"]["spec"]["containers"]
        http = {p["name"]: p["containerPort"] for p in c["ports"]}["http"]
        assert settings.http.port == http and settings.http.host == "0.0.0.0"
        assert settings.bus.bootstrap_servers == env["DICOMVAULT_BUS__BOOTSTRAP_SERVERS"]
        if service == "gateway":
            assert settings.cache.folder_flush == ("each" if variant == "full" else "auto")
        if service == "hsm-archiver":
            assert [a.id for a in settings.hsm.archives]
            assert str(settings.cache.root) == "/var/lib/dicomvault/cache"
        if service == "commitment" and variant == "full":
            assert settings.commitment.modalities["CT01"].port == 104
        if service == "audit":
            assert settings.database.url_file is not None  # the catalogue's database Secret
            if variant == "full":
                assert settings.audit.syslog_url == "tls://arr.example.org:6514"
                assert settings.audit.enterprise_site_id == "Hospital"
                mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
                assert mounts[str(settings.audit.ca_file.parent)] == "audit-ca"
                volumes = {v["name"]: v for v in dep["spec"]["template"]["spec"]["volumes"]}
                assert volumes["audit-ca"]["secret"]["secretName"] == "dicomvault-arr-ca"
        if service == "operator":
            assert settings.operator.namespace == NAMESPACE
            assert settings.operator.image.startswith("dicomvault:")
            assert settings.operator.catalogue_url == "http://dicomvault-catalogue:8081"
            assert settings.operator.exporter_env["DICOMVAULT_LOG__LEVEL"]
        if service == "catalogue":
            assert str(settings.database.url_file) == "/var/run/secrets/dicomvault.io/database/url"
        checked += 1
    assert checked >= 4, sys.modules.get("hsm_archiver")
