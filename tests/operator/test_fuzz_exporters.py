"""Fuzzing the Exporter CR door (issue 13): hostile specs created through the Kubernetes API
emulator (which, like kubectl apply --validate=false, does not check the CRD schema). Every
Exporter gets a Ready condition with a defined reason and a bounded message, the operator
keeps running, no literal secret leaks into a status, and a valid Exporter afterwards works.

Through kopf's watch and the emulator an input costs ~0.75 s: `make fuzz` sends at most
``API_EXAMPLES`` (100) this way; the full 10,000 go through the operator's reconcile code in
process (test_fuzz_exporters_in_process.py), with the same specs and checks."""

from __future__ import annotations

import copy
import json
from collections import Counter

import httpx
import yaml
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz.budget import COUNTS, FUZZ_EXAMPLES, budget
from tests.operator.conftest import NAMESPACE, Kubectl, OperatorThread, eventually
from tests.operator.emulator import EmulatorThread
from tests.operator.helpers import EXAMPLE, condition

REASONS = {"InvalidSpec", "Progressing", "Available", "Ready", "Suspended", "Degraded",
           "RolloutStuck", "Failed"}
SECRET = "s3cr3t-fuzz-t0ken"
API_EXAMPLES = 100  # at most, through the emulator and kopf (make fuzz): kmock keeps every
# deleted object and walks them on each request, so that way slows down as it goes (500: timeouts)
LEAF = st.one_of(st.none(), st.booleans(), st.integers(-2**40, 2**40),
                 st.text(max_size=30), st.just(SECRET), st.just("x" * 5000),
                 st.sampled_from(["stowrs:orthanc", "dicom:ERPACS", "hour=25", "../../etc",
                                  "Export1", "", "ORTHANC_STOW"]))
VALUE = st.recursive(LEAF, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=12), inner, max_size=3)),
    max_leaves=6)


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, (*prefix, i))


@st.composite
def spec(draw) -> dict:
    """The example's spec with a few leaves replaced or removed."""
    doc = copy.deepcopy(yaml.safe_load(EXAMPLE.read_text())["spec"])
    for _ in range(draw(st.integers(1, 4))):
        paths = [p for p in _paths(doc) if p]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        if draw(st.booleans()) and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(VALUE)
    return doc


def _literal_token(one: dict) -> bool:
    """The spec holds SECRET as a literal bearer token, and nowhere else."""
    app = one.get("webApplication")
    props = app.get("properties") if isinstance(app, dict) else None
    return (isinstance(props, dict) and props.get("bearer-token") == SECRET
            and json.dumps(one).count(SECRET) == 1)


def _generate(at_most: int | None = None) -> list[dict]:
    """The fuzzed specs, drawn at import (collection) time: hypothesis refuses draws while
    other threads (the operator's) touch the global ``random`` state."""
    specs: list[dict] = []

    @budget(in_suite=20, at_most=at_most)
    @given(one=spec())
    def collect(one) -> None:
        specs.append(one)

    collect()
    return specs


SPECS = _generate(API_EXAMPLES)


def test_exporter_spec_fuzz(operator: OperatorThread, kubectl: Kubectl,
                            kube_api: EmulatorThread) -> None:
    counts = COUNTS.setdefault("Exporter CR", Counter())
    specs = SPECS
    base = f"{kube_api.url}/apis/dicomvault.io/v1/namespaces/{NAMESPACE}/exporters"
    batch = 50
    with httpx.Client(timeout=30) as http:
        for start in range(0, len(specs), batch):
            names = [f"fz-{start + i}" for i in range(len(specs[start:start + batch]))]
            spec_of = dict(zip(names, specs[start:start + batch], strict=True))
            for name, one in zip(names, specs[start:start + batch], strict=True):
                # POSTed as kubectl apply --validate=false would (faster for 10,000)
                r = http.post(base, json={"apiVersion": "dicomvault.io/v1", "kind": "Exporter",
                                          "metadata": {"name": name, "namespace": NAMESPACE},
                                          "spec": one})
                assert r.status_code in (200, 201), r.text
            def all_ready(names=names) -> dict[str, dict]:
                items = {i["metadata"]["name"]: i for i in http.get(base).json()["items"]}
                got = {n: items[n] for n in names if condition(items.get(n), "Ready")}
                return got if len(got) == len(names) else {}

            ready_all = eventually(all_ready, timeout=60 + len(names), what="every status")
            for name, exporter in ready_all.items():
                ready = condition(exporter, "Ready")
                assert ready["reason"] in REASONS, ready
                assert len(ready.get("message") or "") <= 1100, ready
                counts[ready["reason"]] += 1
                if _literal_token(spec_of[name]):  # never echoed (a spec field may be)
                    status = json.dumps(exporter.get("status"))
                    assert SECRET not in status, status[:300]
            assert operator.error is None
            kubectl("delete", "exporter", *names, "--wait=false")
    # A valid Exporter afterwards is reconciled as usual.
    valid = yaml.safe_load(EXAMPLE.read_text())
    valid["metadata"]["name"] = "fz-valid"
    kubectl("apply", "--validate=false", "-f", "-", input=yaml.safe_dump(valid))
    eventually(lambda: condition(kubectl.json("exporter", "fz-valid"), "Ready")
               .get("reason") in ("Progressing", "Available", "Ready"), what="valid exporter")
    kubectl("delete", "exporter", "fz-valid", "--wait=false")
    assert len(specs) >= min(20, FUZZ_EXAMPLES or 20)
    print(f"\nfuzz Exporter CR: {sum(counts.values())} inputs ("
          + ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())) + ")")
