"""dicomvault.exporters: the spec model, schedules, secret resolution, the embedded file and the
examples checked against the CRD schema."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import jsonschema
import pytest
import yaml
from pydantic import ValidationError

from dicomvault.exporters import (
    ExporterConfigError,
    ExporterSpec,
    Schedule,
    SecretKeyRef,
    SecretNotFoundError,
    crd,
    describe_spec_error,
    load_exporters_file,
    openapi_schema,
    resolve_secret,
)

ROOT = Path(__file__).resolve().parents[2]
CHART_CRD = ROOT / "charts/dicomvault/crds/exporters.dicomvault.io.yaml"
EXAMPLES = sorted((ROOT / "examples").glob("exporter*.yaml"))

STOW = {"exporterID": "X1", "uri": "stowrs:pacs",
        "webApplication": {"name": "pacs", "url": "https://pacs.example.org/dicom-web"}}


def test_the_package_ships_the_charts_crd() -> None:
    assert yaml.safe_load(CHART_CRD.read_text()) == crd()


def test_defaults_aliases_and_pythonic_names() -> None:
    spec = ExporterSpec.model_validate({**STOW, "webApplication": {**STOW["webApplication"],
        "properties": {"transfer-syntax": ["1.2.840.10008.1.2.4.70"], "allow-any-hostname": True,
                       "basic-auth": {"secretRef": {"name": "pacs-auth"}}}}})
    assert (spec.queue_name, spec.ae_title, spec.suspended) == ("Export1", "DICOMVAULT", False)
    assert (spec.retry.max_retries, spec.retry.initial_delay_seconds,
            spec.retry.max_delay_seconds, spec.retry.backoff_multiplier) == (5, 10, 600, 2.0)
    assert (spec.storage_commitment.enabled, spec.storage_commitment.timeout_seconds) == (False, 300)
    props = spec.web_application.properties
    assert (props.chunked, props.concurrency, props.allow_any_hostname) == (False, 1, True)
    assert props.transfer_syntax == ["1.2.840.10008.1.2.4.70"]
    assert props.basic_auth.username == SecretKeyRef(name="pacs-auth", key="username")
    assert spec.secret_names() == ["pacs-auth"]
    assert spec.consumer_group == "dicomvault-exporter-X1"
    assert (spec.scheme, spec.target) == ("stowrs", "pacs")
    # Round trip through the CRD form.
    crd_form = spec.to_crd()
    assert crd_form["webApplication"]["properties"]["transfer-syntax"] == props.transfer_syntax
    assert ExporterSpec.model_validate(crd_form) == spec
    assert spec.retry.delay(1) == 10 and spec.retry.delay(3) == 40 and spec.retry.delay(99) == 600


@pytest.mark.parametrize(("change", "complaint"), [
    ({"uri": "ftp:pacs"}, "uri"),
    ({"exporterID": "-bad"}, "exporterID"),
    ({"aeTitle": "A" * 17}, "aeTitle"),
    ({"webApplication": None}, "needs a webApplication"),
    ({"webApplication": {"name": "other", "url": "http://h"}}, "must equal the part after"),
    ({"webApplication": {"name": "pacs", "url": "ftp://h"}}, "webApplication.url"),
    ({"webApplication": {"name": "pacs", "url": "http://h",
                         "properties": {"concurrency": 65}}}, "concurrency"),
    ({"webApplication": {"name": "pacs", "url": "http://h",
                         "properties": {"transfer-syntax": ["JPEG"]}}}, "transfer syntax"),
    ({"schedules": ["hour=25"]}, "outside 0-23"),
    ({"schedules": ["daily"]}, "schedule"),
    ({"rules": [{"delaySeconds": -1}]}, "delaySeconds"),
    ({"colour": "blue"}, "colour"),
])
def test_invalid_specs_name_the_field(change: dict, complaint: str) -> None:
    with pytest.raises(ValidationError) as err:
        ExporterSpec.model_validate({k: v for k, v in {**STOW, **change}.items()
                                     if v is not None})
    assert complaint in describe_spec_error(err.value)


def test_a_literal_secret_is_refused_without_echoing_it() -> None:
    web = {**STOW["webApplication"], "properties": {"bearer-token": "s3cr3t"}}
    with pytest.raises(ValidationError) as err:
        ExporterSpec.model_validate({**STOW, "webApplication": web})
    assert "bearer-token must reference a Secret" in describe_spec_error(err.value)
    assert "s3cr3t" not in str(err.value) and "s3cr3t" not in describe_spec_error(err.value)
    web = {**STOW["webApplication"], "properties": {"basic-auth": "user:pass"}}
    with pytest.raises(ValidationError, match="basic-auth must reference a Secret"):
        ExporterSpec.model_validate({**STOW, "webApplication": web})


def test_dicom_exporters_need_no_web_application() -> None:
    spec = ExporterSpec.model_validate({"exporterID": "ER", "uri": "dicom:ERPACS",
                                        "storageCommitment": {"enabled": True}})
    assert (spec.scheme, spec.target, spec.secret_names()) == ("dicom", "ERPACS", [])


def test_rules() -> None:
    spec = ExporterSpec.model_validate({**STOW, "rules": [
        {"modalities": ["CT", "MR"], "delaySeconds": 60},
        {"callingAETitles": ["ER_CT1"], "stationNames": ["ERCT01"]}]})
    assert spec.matching_rule(["ANY"], ["ct"], []).delay_seconds == 60
    assert spec.matching_rule(["ER_CT1"], ["US"], ["ERCT01"]).delay_seconds == 0
    assert spec.matching_rule(["ER_CT1"], ["US"], ["OTHER"]) is None
    assert ExporterSpec.model_validate(STOW).matching_rule([], ["XA"], []) is not None


# Wednesday 2024-05-01; Saturday 2024-05-04; Sunday 2024-05-05.
@pytest.mark.parametrize(("expression", "when", "inside"), [
    ("hour=18-6 dayOfWeek=*", datetime(2024, 5, 1, 18, 0), True),
    ("hour=18-6 dayOfWeek=*", datetime(2024, 5, 1, 6, 59), True),
    ("hour=18-6 dayOfWeek=*", datetime(2024, 5, 1, 7, 0), False),
    ("hour=18-6 dayOfWeek=*", datetime(2024, 5, 1, 12, 0), False),
    ("hour=* dayOfWeek=0,6", datetime(2024, 5, 4, 12, 0), True),
    ("hour=* dayOfWeek=0,6", datetime(2024, 5, 5, 0, 0), True),
    ("hour=* dayOfWeek=0,6", datetime(2024, 5, 1, 12, 0), False),
    ("dayOfWeek=1-5", datetime(2024, 5, 1, 3, 0), True),
    ("hour=8,12-13", datetime(2024, 5, 1, 13, 30), True),
    ("hour=8,12-13", datetime(2024, 5, 1, 9, 0), False),
])
def test_schedules(expression: str, when: datetime, inside: bool) -> None:
    assert Schedule.parse(expression).matches(when) is inside


def test_schedules_of_a_spec() -> None:
    spec = ExporterSpec.model_validate(
        {**STOW, "schedules": ["hour=18-6 dayOfWeek=*", "hour=* dayOfWeek=0,6"]})
    assert spec.in_schedule(datetime(2024, 5, 4, 12, 0))      # Saturday noon
    assert not spec.in_schedule(datetime(2024, 5, 1, 12, 0))  # Wednesday noon
    assert ExporterSpec.model_validate(STOW).in_schedule(datetime(2024, 5, 1, 12, 0))


@pytest.mark.parametrize("bad", ["hour=24", "dayOfWeek=7", "hour=1 hour=2", "hour=", "hour=1;",
                                 "minute=5", "hour=1  dayOfWeek=2"])
def test_bad_schedules(bad: str) -> None:
    with pytest.raises(ValueError):
        Schedule.parse(bad)


def test_resolve_secret(tmp_path: Path) -> None:
    (tmp_path / "pacs-auth").mkdir()
    (tmp_path / "pacs-auth" / "token").write_text("abc.def\n")
    (tmp_path / "pacs-auth" / "raw").write_bytes(b" spaced \r\n")
    assert resolve_secret(SecretKeyRef(name="pacs-auth", key="token"), tmp_path) == "abc.def"
    assert resolve_secret(SecretKeyRef(name="pacs-auth", key="raw"), tmp_path) == " spaced "
    with pytest.raises(SecretNotFoundError, match="pacs-auth.*missing"):
        resolve_secret(SecretKeyRef(name="pacs-auth", key="missing"), tmp_path)
    for name, key in (("../etc", "passwd"), ("ok", ".."), ("Upper", "k"), ("ok", "a/b")):
        with pytest.raises(ValidationError):
            SecretKeyRef(name=name, key=key)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_examples_validate_against_the_crd_schema(path: Path) -> None:
    docs = yaml.safe_load(path.read_text())
    for obj in docs if isinstance(docs, list) else [docs]:
        jsonschema.Draft7Validator(openapi_schema()).validate(obj)
        ExporterSpec.model_validate(obj["spec"])


def test_the_crd_schema_rejects_what_it_should() -> None:
    validator = jsonschema.Draft7Validator(openapi_schema())
    obj = {"apiVersion": "dicomvault.io/v1", "kind": "Exporter", "metadata": {"name": "x"},
           "spec": {**STOW, "webApplication": {**STOW["webApplication"],
                                                "properties": {"bearer-token": "literal"}}}}
    assert not validator.is_valid(obj)
    obj["spec"] = {**STOW, "schedules": ["every night"]}
    assert not validator.is_valid(obj)
    obj["spec"] = {"uri": "stowrs:pacs"}
    assert not validator.is_valid(obj)


def test_embedded_file_loads(tmp_path: Path) -> None:
    (spec,) = load_exporters_file(ROOT / "examples/exporters.yaml")
    assert spec.exporter_id == "LOCAL_ORTHANC"
    assert spec.web_application.properties.basic_auth.password.name == "local-orthanc"


def test_embedded_file_errors_name_exporter_and_field(tmp_path: Path) -> None:
    good = yaml.safe_load((ROOT / "examples/exporters.yaml").read_text())[0]
    typo = yaml.safe_load(yaml.safe_dump(good))
    typo["metadata"]["name"] = "typo"
    typo["spec"]["exporterID"] = "TYPO"
    typo["spec"]["webApplication"]["properties"]["concurency"] = 2
    literal = yaml.safe_load(yaml.safe_dump(good))
    literal["metadata"]["name"] = "literal"
    literal["spec"]["exporterID"] = "LITERAL"
    literal["spec"]["webApplication"]["properties"]["bearer-token"] = "s3cr3t"
    duplicate = yaml.safe_load(yaml.safe_dump(good))
    duplicate["metadata"]["name"] = "again"
    path = tmp_path / "exporters.yaml"
    path.write_text(yaml.safe_dump([good, typo, literal, duplicate]))
    with pytest.raises(ExporterConfigError) as err:
        load_exporters_file(path)
    text = str(err.value)
    assert "exporter typo (TYPO): spec.webApplication.properties.concurency" in text
    assert "exporter literal (LITERAL): spec.webApplication.properties.bearer-token: " \
           "must be of type object" in text
    assert "exporter again (LOCAL_ORTHANC): spec.exporterID: used by another exporter" in text
    assert "s3cr3t" not in text
    path.write_text("- [unclosed")
    with pytest.raises(ExporterConfigError, match="not valid YAML"):
        load_exporters_file(path)
