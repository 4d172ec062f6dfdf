"""gateway.viewer.enabled: the gateway is told where the image's OHIF build is, and only then."""

from __future__ import annotations

from tests.chart.conftest import manifests


def _gateway_env(rendered: dict[str, str]) -> dict[str, str]:
    (dep,) = [o for _, o in manifests(rendered)
              if o["kind"] == "Deployment" and o["metadata"]["name"].endswith("-gateway")]
    (c,) = dep["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e.get("value", "") for e in c["env"]}


def test_viewer_value_points_the_gateway_at_the_ohif_build(renders) -> None:
    assert _gateway_env(renders["dev"])["DICOMVAULT_VIEWER__DIST_DIR"] == "/opt/dicomvault/ohif"
    assert "DICOMVAULT_VIEWER__DIST_DIR" not in _gateway_env(renders["default"])
