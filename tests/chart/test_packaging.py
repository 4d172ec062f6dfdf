"""CRDs, the example Exporters, skaffold.yaml and the Dockerfile (checked statically)."""

from __future__ import annotations

import json
import re

import jsonschema
import kubernetes_validate
import yaml

from tests.chart.conftest import CHART, ROOT, crd_files


def test_crds_in_the_chart_validate_and_examples_match_them():
    for path in crd_files():
        for crd in [d for d in yaml.safe_load_all(path.read_text()) if d]:
            kubernetes_validate.validate(crd, "1.30.0", strict=True)
            kind = crd["spec"]["names"]["kind"]
            group = crd["spec"]["group"]
            for version in crd["spec"]["versions"]:
                schema = version["schema"]["openAPIV3Schema"]
                api = f"{group}/{version['name']}"
                for example in sorted((ROOT / "examples").glob("*.y*ml")):
                    for doc in yaml.safe_load_all(example.read_text()):
                        items = doc if isinstance(doc, list) else [doc]
                        for item in items:
                            if isinstance(item, dict) and item.get("kind") == kind \
                                    and item.get("apiVersion") == api:
                                jsonschema.validate(item, schema)


def test_skaffold_builds_the_image_the_chart_deploys():
    config = yaml.safe_load((ROOT / "skaffold.yaml").read_text())
    assert config["apiVersion"].startswith("skaffold/v4") and config["kind"] == "Config"
    (artifact,) = config["build"]["artifacts"]
    assert (ROOT / artifact.get("context", ".") / artifact["docker"]["dockerfile"]).exists()
    (release,) = config["deploy"]["helm"]["releases"]
    assert (ROOT / release["chartPath"]).resolve() == CHART
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["image"]["repository"] == artifact["image"]
    templates = release["setValueTemplates"]
    assert templates["image.repository"] == f"{{{{.IMAGE_REPO_{artifact['image']}}}}}"
    assert f"{{{{.IMAGE_TAG_{artifact['image']}}}}}" in templates["image.tag"]
    profiles = {p["name"]: p for p in config["profiles"]}
    assert {"dev", "kind", "minikube"} <= set(profiles)
    for profile in profiles.values():
        for patch in profile.get("patches", []):
            for f in patch.get("value", []) if patch["path"].endswith("valuesFiles") else []:
                assert (ROOT / f).exists(), f


def _stages(text: str) -> list[dict]:
    """Dockerfile instructions per stage (line continuations joined, comments dropped)."""
    text = re.sub(r"\\\n", " ", text)
    stages: list[dict] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        op, _, rest = line.partition(" ")
        op = op.upper()
        if op == "FROM":
            m = re.match(r"(\S+)(?:\s+AS\s+(\S+))?", rest, re.I)
            stages.append({"from": m.group(1), "name": m.group(2), "ops": []})
        elif stages:
            stages[-1]["ops"].append((op, rest))
    return stages


def test_dockerfile_is_multi_stage_non_root_without_compilers():
    text = (ROOT / "Dockerfile").read_text()
    args = dict(re.findall(r"^ARG (\w+)=(\S+)", text, re.M))
    stages = _stages(text)
    assert len(stages) >= 2
    final = stages[-1]
    base = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], final["from"])
    assert re.fullmatch(r"python:3\.11-slim(-\w+)?", base), base
    ops = final["ops"]
    runs = " ".join(rest for op, rest in ops if op == "RUN")
    for compiler in ("gcc", "g++", "build-essential", "clang", "make ", "-dev "):
        assert compiler not in runs + " ", f"{compiler} in the final stage"
    assert any(op == "COPY" and "--from=" in rest for op, rest in ops)
    (user,) = [rest for op, rest in ops if op == "USER"]
    assert user.split(":")[0] == "10001"
    assert [json.loads(rest) for op, rest in ops if op == "ENTRYPOINT"] == [["dicomvault"]]
    assert [json.loads(rest) for op, rest in ops if op == "CMD"] == [["run", "gateway"]]
    builder = " ".join(rest for st in stages[:-1] for op, rest in st["ops"] if op == "RUN")
    assert "build-essential" in builder and "pip wheel" in builder
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".git", ".venv", "tests", "var"} <= set(ignored)


def test_every_values_key_is_commented():
    """Each key of values.yaml has a comment above it, except inside data maps and lists."""
    data_parents = re.compile(
        r"(^|\.)(settings|resources|exporterResources|config|requests|limits|archives|"
        r"items|exporters|nodePorts|podAnnotations|annotations|labels|exporterEnv)(\.|$)")
    lines = (CHART / "values.yaml").read_text().splitlines()
    stack: list[tuple[int, str]] = []
    missing = []
    for i, line in enumerate(lines):
        m = re.match(r"^(\s*)([A-Za-z_][\w.-]*):(\s|$)", line)
        if not m or line.lstrip().startswith("#"):
            if line.strip().startswith("- "):
                indent = len(line) - len(line.lstrip())
                stack = [s for s in stack if s[0] < indent] + [(indent, "[]")]
            continue
        indent, key = len(m.group(1)), m.group(2)
        stack = [s for s in stack if s[0] < indent]
        parent = ".".join(k for _, k in stack)
        stack.append((indent, key))
        if "[]" in parent.split(".") or data_parents.search(parent):
            continue
        above = lines[i - 1].strip() if i else ""
        if not above.startswith("#") and "#" not in line:
            missing.append(f"{i + 1}: {parent + '.' if parent else ''}{key}")
    assert not missing, missing
