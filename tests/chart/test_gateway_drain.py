"""The gateway pod drains before it is killed: a preStop pause, then SIGTERM starts the drain,
and the grace period covers both plus a margin; both follow the values."""

from __future__ import annotations

from tests.chart.conftest import NAMESPACE, RELEASE, install_values, manifests


def _pod(rendered: dict[str, str]) -> dict:
    (dep,) = [o for _, o in manifests(rendered)
              if o["kind"] == "Deployment" and o["metadata"]["name"].endswith("-gateway")]
    return dep["spec"]["template"]["spec"]


def test_default_drain(renders) -> None:
    pod = _pod(renders["default"])
    (c,) = pod["containers"]
    env = {e["name"]: e.get("value", "") for e in c["env"]}
    assert float(env["DICOMVAULT_GATEWAY__DRAIN_S"]) == 60
    assert c["lifecycle"]["preStop"]["exec"]["command"] == ["sleep", "5"]
    assert pod["terminationGracePeriodSeconds"] == 60 + 5 + 15


def test_drain_follows_the_values(chart) -> None:
    values = install_values(gateway={"preStopSeconds": 10,
                                     "settings": {"gateway": {"drain_s": 120}}})
    pod = _pod(chart.render(values, name=RELEASE, namespace=NAMESPACE))
    assert pod["terminationGracePeriodSeconds"] == 120 + 10 + 15
    (c,) = pod["containers"]
    assert c["lifecycle"]["preStop"]["exec"]["command"] == ["sleep", "10"]
    # Other services keep the plain grace period and no preStop.
    for other in [o for _, o in manifests(chart.render(values, name=RELEASE,
                                                       namespace=NAMESPACE))
                  if o["kind"] == "Deployment" and not o["metadata"]["name"].endswith("-gateway")]:
        spec = other["spec"]["template"]["spec"]
        assert spec["terminationGracePeriodSeconds"] == 60
        assert "lifecycle" not in spec["containers"][0]
