"""The children of an Exporter: a ConfigMap holding its spec and a stow-exporter Deployment.

Pure functions of (Exporter name, namespace, validated spec, settings); the handlers adopt the
results (owner references) and apply them. The pod template carries a hash of the ConfigMap
data, so a spec change rolls the pods.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

import yaml

from dicomvault.exporters import ExporterSpec, exporter_object
from vault_operator.settings import OperatorSection

SPEC_DIR = "/etc/dicomvault/exporter"
SPEC_KEY = "exporter.yaml"
HASH_ANNOTATION = "dicomvault.io/config-hash"
EXPORTER_LABEL = "dicomvault.io/exporter"
MANAGED_BY = "dicomvault-operator"
# Outside secrets_mount_base, where the Exporter's own Secrets go by name (no collision).
TLS_DIR = "/var/run/secrets/dicomvault.io/tls"
TOKEN_DIR = "/var/run/secrets/dicomvault.io/token"
AUTH_DIR = "/var/run/secrets/dicomvault.io/auth"
COMPONENT = "stow-exporter"


def child_name(exporter: str) -> str:
    """``dicomvault-exporter-<name>``, shortened with a hash to fit a label value (63)."""
    name = f"dicomvault-exporter-{exporter}"
    if len(name) <= 63:
        return name
    digest = hashlib.sha256(exporter.encode()).hexdigest()[:8]
    return f"{name[:54].rstrip('-.')}-{digest}"


def _volume_name(secret: str) -> str:
    """``secret-<name>``; when that is no DNS label (a Secret name with dots, or too long),
    its sanitized start and a hash of the name, so ``a.b`` and ``a-b`` get distinct volumes
    (the chart names the stow-exporter's Secret volumes the same way)."""
    name = f"secret-{secret}"
    label = re.sub(r"[^a-z0-9-]", "-", name)
    if label == name and len(name) <= 63:
        return name
    return f"{label[:54].rstrip('-')}-{hashlib.sha256(secret.encode()).hexdigest()[:8]}"


def label_value(value: str) -> str:
    """A label value (at most 63 characters; longer names are shortened with a hash)."""
    if len(value) <= 63:
        return value
    return f"{value[:54].rstrip('-._')}-{hashlib.sha256(value.encode()).hexdigest()[:8]}"


def labels(exporter: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "dicomvault",
        "app.kubernetes.io/component": COMPONENT,
        "app.kubernetes.io/instance": child_name(exporter),
        "app.kubernetes.io/managed-by": MANAGED_BY,
        EXPORTER_LABEL: label_value(exporter),
    }


def spec_yaml(exporter: str, namespace: str, spec: ExporterSpec) -> str:
    """The ConfigMap's exporter.yaml: a one-item list of the Exporter, defaults filled — the
    same format as the embedded-mode file, read with ``load_exporters_file``."""
    return yaml.safe_dump([exporter_object(exporter, spec, namespace)], sort_keys=False)


def config_map(exporter: str, namespace: str, spec: ExporterSpec) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": child_name(exporter), "namespace": namespace,
                     "labels": labels(exporter)},
        "data": {SPEC_KEY: spec_yaml(exporter, namespace, spec)},
    }


def config_hash(cm: dict[str, Any]) -> str:
    data = yaml.safe_dump(cm["data"], sort_keys=True).encode()
    return hashlib.sha256(data).hexdigest()[:16]


def _env(spec: ExporterSpec, cfg: OperatorSection) -> list[dict[str, str]]:
    env = {
        "DICOMVAULT_EXPORTER__SPEC_FILE": f"{SPEC_DIR}/{SPEC_KEY}",
        "DICOMVAULT_EXPORTER__SECRETS_DIR": cfg.secrets_mount_base,
        "DICOMVAULT_EXPORTER__CONSUMER_GROUP": spec.consumer_group,
        "DICOMVAULT_EXPORTER__CATALOGUE_URL": cfg.catalogue_url,
        "DICOMVAULT_CACHE__ROOT": cfg.cache_mount_path,
        "DICOMVAULT_HTTP__HOST": "0.0.0.0",
        "DICOMVAULT_HTTP__PORT": str(cfg.exporter_http_port),
    }
    if cfg.exporter_tls_secret:
        env["DICOMVAULT_HTTP__CERT_FILE"] = f"{TLS_DIR}/{cfg.exporter_tls_cert_key}"
        env["DICOMVAULT_HTTP__KEY_FILE"] = f"{TLS_DIR}/{cfg.exporter_tls_key_key}"
        if cfg.exporter_tls_ca_key:
            env["DICOMVAULT_CLIENT__CA_FILE"] = f"{TLS_DIR}/{cfg.exporter_tls_ca_key}"
    if cfg.exporter_token_secret:
        env["DICOMVAULT_CLIENT__TOKEN_FILE"] = f"{TOKEN_DIR}/{cfg.exporter_token_key}"
    if not cfg.exporter_auth_enabled:
        env["DICOMVAULT_AUTH__ENABLED"] = "false"
    elif cfg.exporter_auth_key_secret:
        key_file = "JWKS_FILE" if cfg.exporter_auth_key_format == "jwks" else "PUBLIC_KEY_FILE"
        env["DICOMVAULT_AUTH__ENABLED"] = "true"
        env[f"DICOMVAULT_AUTH__{key_file}"] = f"{AUTH_DIR}/{cfg.exporter_auth_key_key}"
        env["DICOMVAULT_AUTH__ISSUER"] = cfg.exporter_auth_issuer
        env["DICOMVAULT_AUTH__AUDIENCE"] = cfg.exporter_auth_audience
    env.update(cfg.exporter_env)
    return [{"name": k, "value": v} for k, v in env.items()]


def _tls_and_token(cfg: OperatorSection) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Volumes and mounts of the HTTPS Secret, the token Secret and the issuer's keys (whole
    Secrets as volumes, so a rotation reaches the running pod; the services re-read the
    files)."""
    volumes: list[dict[str, Any]] = []
    mounts: list[dict[str, Any]] = []
    if cfg.exporter_tls_secret:
        keys = [k for k in (cfg.exporter_tls_cert_key, cfg.exporter_tls_key_key,
                            cfg.exporter_tls_ca_key) if k]
        volumes.append({"name": "dicomvault-tls", "secret": {
            "secretName": cfg.exporter_tls_secret,
            "items": [{"key": k, "path": k} for k in keys]}})
        mounts.append({"name": "dicomvault-tls", "mountPath": TLS_DIR, "readOnly": True})
    if cfg.exporter_token_secret:
        volumes.append({"name": "dicomvault-token", "secret": {
            "secretName": cfg.exporter_token_secret,
            "items": [{"key": cfg.exporter_token_key, "path": cfg.exporter_token_key}]}})
        mounts.append({"name": "dicomvault-token", "mountPath": TOKEN_DIR, "readOnly": True})
    if cfg.exporter_auth_enabled and cfg.exporter_auth_key_secret:
        volumes.append({"name": "dicomvault-auth", "secret": {
            "secretName": cfg.exporter_auth_key_secret,
            "items": [{"key": cfg.exporter_auth_key_key, "path": cfg.exporter_auth_key_key}]}})
        mounts.append({"name": "dicomvault-auth", "mountPath": AUTH_DIR, "readOnly": True})
    return volumes, mounts


def deployment(exporter: str, namespace: str, spec: ExporterSpec, cfg: OperatorSection,
               bootstrap_servers: str, cm: dict[str, Any]) -> dict[str, Any]:
    name = child_name(exporter)
    volumes: list[dict[str, Any]] = [
        {"name": "spec", "configMap": {"name": cm["metadata"]["name"]}},
        {"name": "tmp", "emptyDir": {}},
    ]
    mounts: list[dict[str, Any]] = [
        {"name": "spec", "mountPath": SPEC_DIR, "readOnly": True},
        {"name": "tmp", "mountPath": "/tmp"},
    ]
    for secret in spec.secret_names():
        volumes.append({"name": _volume_name(secret), "secret": {"secretName": secret}})
        mounts.append({"name": _volume_name(secret), "readOnly": True,
                       "mountPath": f"{cfg.secrets_mount_base.rstrip('/')}/{secret}"})
    if cfg.cache_claim_name:
        volumes.append({"name": "cache", "persistentVolumeClaim": {
            "claimName": cfg.cache_claim_name, "readOnly": True}})
        mounts.append({"name": "cache", "mountPath": cfg.cache_mount_path, "readOnly": True})
    extra_volumes, extra_mounts = _tls_and_token(cfg)
    volumes += extra_volumes
    mounts += extra_mounts
    env = [{"name": "DICOMVAULT_BUS__BOOTSTRAP_SERVERS", "value": bootstrap_servers},
           *_env(spec, cfg)]
    scheme = "HTTPS" if cfg.exporter_tls_secret else "HTTP"
    probe = {"httpGet": {"path": "/healthz", "port": "http", "scheme": scheme},
             "periodSeconds": 10}
    pod_spec: dict[str, Any] = {
        "containers": [{
            "name": COMPONENT,
            "image": cfg.image,
            "imagePullPolicy": cfg.image_pull_policy,
            "args": ["dicomvault", "run", COMPONENT],
            "env": env,
            "ports": [{"name": "http", "containerPort": cfg.exporter_http_port}],
            "livenessProbe": probe,
            "readinessProbe": {**probe, "httpGet": {"path": "/readyz", "port": "http",
                                                    "scheme": scheme}},
            "resources": cfg.resources,
            "volumeMounts": mounts,
            "securityContext": {"allowPrivilegeEscalation": False,
                                "capabilities": {"drop": ["ALL"]}},
        }],
        "volumes": volumes,
        "automountServiceAccountToken": False,
    }
    if cfg.service_account:
        pod_spec["serviceAccountName"] = cfg.service_account
    if cfg.image_pull_secrets:
        pod_spec["imagePullSecrets"] = [{"name": s} for s in cfg.image_pull_secrets]
    selector = {"app.kubernetes.io/component": COMPONENT, EXPORTER_LABEL: label_value(exporter)}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": labels(exporter)},
        "spec": {
            "replicas": 0 if spec.suspended else 1,
            # One consumer per exporter: never two pods of the same group during a roll.
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {"labels": labels(exporter),
                             "annotations": {HASH_ANNOTATION: config_hash(cm)}},
                "spec": pod_spec,
            },
        },
    }
