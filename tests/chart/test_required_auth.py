"""Bearer tokens are on by default (auth.enabled), and a service that verifies tokens without
the issuer's keys refuses every API request, a caller of the catalogue without its own token
has every call refused: the render fails instead, naming every missing value at once and the
way out (auth.enabled=false). With the values README's install command sets it renders."""

from __future__ import annotations

import helm_python as helm
import pytest

from tests.chart.conftest import (
    INSTALL_VALUES,
    NAMESPACE,
    RELEASE,
    ROOT,
    install_values,
    manifests,
)

TOKENS = ("gateway.tokenSecret", "hsmArchiver.tokenSecret", "opticalBurner.tokenSecret",
          "stowExporter.tokenSecret", "commitment.tokenSecret", "operator.tokenSecret")


def _refusal(chart, values: dict) -> str:
    with pytest.raises(helm.HelmError) as err:
        chart.render(values, name=RELEASE, namespace=NAMESPACE)
    return str(err.value)


def _env(rendered) -> dict[str, dict[str, str]]:
    out = {}
    for _, o in manifests(rendered):
        if o["kind"] == "Deployment":
            (c,) = o["spec"]["template"]["spec"]["containers"]
            out[o["metadata"]["name"].removeprefix("dicomvault-")] = {
                e["name"]: e.get("value") for e in c["env"]}
    return out


def test_default_values_alone_fail_naming_the_key_every_token_and_auth_off(chart):
    message = _refusal(chart, {})
    assert "Bearer tokens are required (auth.enabled, true by default)" in message
    # The keys, with the services that would refuse every request without them.
    assert "- auth.keySecret: an existing Secret with the identity provider's keys" in message
    for verifier in ("gateway", "catalogue", "hsm-archiver", "optical-burner", "commitment",
                     "audit", "the exporter pods the operator creates"):
        assert verifier in message
    # Every enabled caller's token (the stow-exporter's serves the operator's exporter pods).
    for token in TOKENS:
        assert token in message
    assert "also the token of the exporter pods the operator creates" in message
    assert "or set auth.enabled=false" in message
    # docs/security.md quotes it, line by line.
    docs = (ROOT / "docs" / "security.md").read_text()
    for line in message.split(": ", 1)[1].splitlines():
        assert line in docs, line


def test_the_key_alone_still_needs_the_tokens(chart):
    message = _refusal(chart, {"auth": {"keySecret": "idp"}})
    assert "auth.keySecret:" not in message
    assert all(token in message for token in TOKENS)


def test_the_tokens_alone_still_need_the_key(chart):
    values = install_values()
    del values["auth"]
    message = _refusal(chart, values)
    assert "- auth.keySecret:" in message and "tokenSecret" not in message


def test_with_the_key_and_the_tokens_the_default_install_renders(chart):
    env = _env(chart.render(INSTALL_VALUES, name=RELEASE, namespace=NAMESPACE))
    assert set(env) == {"gateway", "catalogue", "hsm-archiver", "optical-burner", "commitment",
                        "operator", "audit"}
    for service, e in env.items():
        if service != "operator":
            assert e["DICOMVAULT_AUTH__JWKS_FILE"].endswith("/auth/jwks.json"), service
        if service not in ("catalogue", "audit"):  # the audit service calls no catalogue
            assert e["DICOMVAULT_CLIENT__TOKEN_FILE"].endswith("/token/token"), service


def test_auth_off_needs_neither_key_nor_tokens(chart):
    env = _env(chart.render({"auth": {"enabled": False}, "stowExporter": {"enabled": True}},
                            name=RELEASE, namespace=NAMESPACE))
    assert env["catalogue"]["DICOMVAULT_AUTH__ENABLED"] == "false"
    assert not any("DICOMVAULT_CLIENT__TOKEN_FILE" in e for e in env.values())


def test_only_enabled_callers_need_a_token(chart):
    # No hsm-archiver, commitment or operator: neither their tokens nor the exporter pods'.
    values = {"auth": {"keySecret": "idp"}, "gateway": {"tokenSecret": "tg"},
              "opticalBurner": {"tokenSecret": "to"}, "hsmArchiver": {"enabled": False},
              "commitment": {"enabled": False}, "operator": {"enabled": False}}
    chart.render(values, name=RELEASE, namespace=NAMESPACE)
    # The operator alone asks for the exporter pods' token (stowExporter.tokenSecret).
    values["operator"] = {"enabled": True, "tokenSecret": "top"}
    message = _refusal(chart, values)
    assert "- stowExporter.tokenSecret:" in message
    assert "hsmArchiver" not in message and "commitment" not in message


def test_a_catalogue_without_token_checks_needs_no_caller_tokens(chart):
    values = {"auth": {"keySecret": "idp"},
              "catalogue": {"settings": {"auth": {"enabled": False}}}}
    env = _env(chart.render(values, name=RELEASE, namespace=NAMESPACE))
    assert env["catalogue"]["DICOMVAULT_AUTH__ENABLED"] == "false"
    assert env["gateway"]["DICOMVAULT_AUTH__ENABLED"] == "true"


def test_keys_and_tokens_given_through_settings_or_extra_env_count(chart):
    # A service whose files come from its own volumes (settings, extraEnv) is not refused.
    values = install_values(
        auth={"keySecret": ""},
        settings={"auth": {"jwks_file": "/keys/jwks.json"}},
        gateway={"tokenSecret": "",
                 "extraEnv": [{"name": "DICOMVAULT_CLIENT__TOKEN_FILE", "value": "/t/token"}]},
        operator={"settings": {"operator": {"exporter_auth_key_secret": "idp"}}})
    env = _env(chart.render(values, name=RELEASE, namespace=NAMESPACE))
    assert env["catalogue"]["DICOMVAULT_AUTH__JWKS_FILE"] == "/keys/jwks.json"
    assert "DICOMVAULT_CLIENT__TOKEN_FILE" in env["gateway"]
    # Without the operator's exporter key the exporter pods alone are named.
    del values["operator"]["settings"]
    message = _refusal(chart, values)
    assert "every API request to the exporter pods the operator creates is refused" in message
    assert "tokenSecret" not in message
