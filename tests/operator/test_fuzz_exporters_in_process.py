"""The Exporter CR door fuzzed at full budget (`make fuzz`: 10,000 specs): every spec goes
through the operator's own reconcile code in process — the validation, the rendering of the
ConfigMap and Deployment, their server-side apply to the Kubernetes API emulator and the
status computed for the Exporter — without kopf's watch loop, which costs ~0.75 s an input
(test_fuzz_exporters.py sends the first of the same specs that way). Same checks: a Ready
condition with a defined reason and a bounded message, no literal token in the status, no
exception out of reconcile, and a valid Exporter afterwards reconciles as usual."""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from collections.abc import Callable, Iterator

import kopf
import pytest
import yaml

from dicomvault.bus.broker import free_port
from dicomvault.settings import HttpSettings, LogSettings
from tests.fuzz.budget import COUNTS
from tests.operator.conftest import NAMESPACE
from tests.operator.emulator import EmulatorThread
from tests.operator.test_fuzz_exporters import (
    REASONS,
    SECRET,
    _generate,
    _literal_token,
    condition,
)
from tests.operator.test_operator import EXAMPLE
from vault_operator.kube import Kube
from vault_operator.reconcile import reconcile
from vault_operator.settings import OperatorSection, OperatorSettings

SPECS = _generate()
log = logging.getLogger("fuzz-exporter")


EMULATOR_SPECS = 500  # a fresh emulator after this many: kmock keeps every deleted object


@pytest.fixture
def api() -> Iterator[Callable[[], EmulatorThread]]:
    """Start an emulator, stopping the previous one (the test asks for a new one every
    EMULATOR_SPECS specs: kmock's store keeps deleted objects, which each request walks)."""
    started: list[EmulatorThread] = []

    def start() -> EmulatorThread:
        if started:
            started.pop().stop()
        started.append(EmulatorThread().start())
        return started[-1]

    yield start
    for emulator in started:
        emulator.stop()


def _settings(api: EmulatorThread) -> OperatorSettings:
    settings = OperatorSettings(
        log=LogSettings(level="INFO", json_format=False),
        http=HttpSettings(host="127.0.0.1", port=free_port()),
        operator=OperatorSection(namespace=NAMESPACE, api_server=api.url,
                                 image="dicomvault:test", catalogue_url="http://127.0.0.1:9",
                                 cache_claim_name="dicomvault-cache", request_timeout_s=5))
    settings.bus.bootstrap_servers = "kafka.vault.svc:9092"
    return settings


def _exporter(name: str, spec: object) -> dict:
    return {"apiVersion": "dicomvault.io/v1", "kind": "Exporter",
            "metadata": {"name": name, "namespace": NAMESPACE, "uid": str(uuid.uuid4()),
                         "generation": 1},
            "spec": spec}


async def test_exporter_spec_fuzz_in_process(api: Callable[[], EmulatorThread]) -> None:
    counts = COUNTS.setdefault("Exporter CR (reconcile in process)", Counter())
    kubes: list[Kube] = []
    try:
        for i, one in enumerate(SPECS):
            if i % EMULATOR_SPECS == 0:
                emulator = api()
                settings = _settings(emulator)
                if kubes:
                    await kubes.pop().close()
                # (30 s: a loaded machine under nice -n 19; a hang still fails)
                kubes.append(Kube(kopf.ConnectionInfo(server=emulator.url), 30))
            status = await reconcile(_exporter(f"fzp-{i}", one), kubes[-1], settings, "create",
                                     log)
            ready = condition({"status": status}, "Ready")
            assert ready.get("reason") in REASONS, (one, status)
            assert len(ready.get("message") or "") <= 1100, ready
            counts[ready["reason"]] += 1
            if _literal_token(one):  # never echoed (a spec field may be)
                assert SECRET not in str(status), str(status)[:300]
        # A valid Exporter afterwards is reconciled as usual: its children are applied (the
        # emulator's garbage collector removes them again: these Exporters exist only here).
        valid = yaml.safe_load(EXAMPLE.read_text())
        status = await reconcile(_exporter("fzp-valid", valid["spec"]), kubes[-1], settings,
                                 "create", log)
        assert condition({"status": status}, "Ready").get("reason") in (
            "Progressing", "Available", "Ready"), status
        assert status["deployment"] == "dicomvault-exporter-fzp-valid", status
    finally:
        for kube in kubes:
            await kube.close()
    print(f"\nfuzz Exporter CR (reconcile in process): {sum(counts.values())} inputs ("
          + ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())) + ")")
