"""The exporter pod the operator renders mounts every referenced Secret under its own, valid
volume name: Secret names that differ only where a DNS label cannot (``a.b``, ``a-b``) do not
collide, which Kubernetes would refuse as a duplicate volume."""

from __future__ import annotations

import re

from dicomvault.exporters import ExporterSpec
from vault_operator import render
from vault_operator.settings import OperatorSettings

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def spec_with(token_secret: str, auth_secret: str) -> ExporterSpec:
    return ExporterSpec.model_validate({
        "exporterID": "X1", "uri": "stowrs:pacs",
        "webApplication": {"name": "pacs", "url": "https://pacs.example.org/dicom-web",
                           "properties": {
                               "bearer-token": {"secretKeyRef": {"name": token_secret,
                                                                 "key": "t"}},
                               "basic-auth": {"secretRef": {"name": auth_secret}}}}})


def test_secrets_whose_names_sanitize_alike_get_distinct_volumes() -> None:
    long = "pacs-" + "x" * 70
    cfg = OperatorSettings().operator
    for s, names in ((spec_with("a.b", "a-b"), {"a.b", "a-b"}),
                     (spec_with("a.b", long), {"a.b", long})):
        dep = render.deployment("x1", "vault", s, cfg, "kafka:9092",
                                render.config_map("x1", "vault", s))
        pod = dep["spec"]["template"]["spec"]
        volumes = [v for v in pod["volumes"] if "secret" in v and
                   v["secret"]["secretName"] in names]
        assert sorted(v["secret"]["secretName"] for v in volumes) == sorted(names)
        all_names = [v["name"] for v in pod["volumes"]]
        assert len(all_names) == len(set(all_names)), all_names
        assert all(DNS_LABEL.match(v["name"]) for v in volumes), volumes
        mounts = {m["name"]: m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
        assert {mounts[v["name"]] for v in volumes} == {
            f"{cfg.secrets_mount_base.rstrip('/')}/{n}" for n in names}
    # A plain name keeps its readable volume name (existing pods do not change).
    assert render._volume_name("orthanc-stow") == "secret-orthanc-stow"  # noqa: SLF001
