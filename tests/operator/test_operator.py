"""The operator against the Kubernetes API emulator, driven by the real kubectl: an
administrator applies the CRD and an Exporter, watches it with `kubectl get exporters`,
changes, suspends, breaks and deletes it. The queue numbers come from the real catalogue,
which projects the export queue's job facts published by the real jobs engine."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from datetime import UTC, datetime, timedelta

import httpx
import yaml
from pydicom.uid import generate_uid

from dicomvault.bus import Publisher
from dicomvault.exporters import ExporterSpec, load_exporters_file
from dicomvault.jobs import Job, JobQueue, Outcome, ProgressReporter, RetryPolicy
from dicomvault.settings import BusSettings
from tests.operator.helpers import EXAMPLE, condition
from tests.peers.catalogue import CatalogueService

from .conftest import ROOT, Kubectl, OperatorThread, eventually

DEPLOYMENT = "dicomvault-exporter-orthanc-stow"


def env_of(deployment: dict) -> dict[str, str]:
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e["value"] for e in container["env"]}


def config_hash(deployment: dict) -> str:
    return deployment["spec"]["template"]["metadata"]["annotations"]["dicomvault.io/config-hash"]


REFUSED = "HTTP 409 from http://orthanc:8042/dicom-web/studies: 2 instances refused"


async def run_export_queue(bus: BusSettings) -> None:
    """The example Exporter's queue ``Export1`` as the jobs engine runs it, publishing every
    change on the jobs topic: two studies exported, one refused by the destination, one to
    retry in an hour (the destination was down), two scheduled for tomorrow night."""
    outcomes = {generate_uid(): Outcome.done(completed=4), generate_uid(): Outcome.done(completed=2),
                generate_uid(): Outcome.failed_permanently(REFUSED),
                generate_uid(): Outcome.retry("connection refused")}

    async def execute(job: Job, _report: ProgressReporter) -> Outcome:
        return outcomes[job.study_uid]

    async with Publisher(bus, client_id="test-stow-exporter") as publisher:
        queue = JobQueue(name="Export1", kind="EXPORT", owner="stow-exporter",
                         publisher=publisher, topics=bus.topics, execute=execute,
                         retry=RetryPolicy(max_retries=3, initial_delay_s=3600))
        for study in outcomes:
            await queue.submit(study, target="stowrs:orthanc", dedupe_key=study)
        tomorrow = datetime.now(UTC) + timedelta(days=1)
        for study in (generate_uid(), generate_uid()):
            await queue.submit(study, target="stowrs:orthanc", dedupe_key=study,
                               not_before=tomorrow)
        stop = asyncio.Event()
        task = asyncio.create_task(queue.run(stop))
        try:
            async with asyncio.timeout(60):
                while [queue.counts()[s] for s in ("DONE", "FAILED", "RETRY", "NEW")] != [
                        2, 1, 1, 2]:
                    await asyncio.sleep(0.05)
        finally:
            stop.set()
            await task


def test_exporter_lifecycle(operator: OperatorThread, kubectl: Kubectl,
                            catalogue: CatalogueService, bus: BusSettings, tmp_path) -> None:
    # The export queue has worked for a while; the catalogue has projected its jobs.
    asyncio.run(run_export_queue(bus))
    # Job facts travel on several partitions, so the catalogue may apply them in any order
    # across jobs: wait until every job's last fact is in, then check the whole picture.
    expected = {"DONE": 2, "FAILED": 1, "RETRY": 1, "NEW": 2}
    queue = eventually(lambda: (q := catalogue.queues.get("Export1"))
                       and {k: n for k, n in q["counts"].items() if n} == expected
                       and q, what="queue in the catalogue")
    assert queue["depth"] == 3

    # The administrator applies the example Exporter.
    kubectl("apply", "--validate=false", "-f", str(EXAMPLE))
    exporter = kubectl.json("exporter", "orthanc-stow")
    assert exporter is not None and exporter["metadata"]["generation"] == 1

    # The operator renders a ConfigMap with the spec and a Deployment running the stow-exporter.
    deployment = eventually(lambda: kubectl.json("deployment", DEPLOYMENT), what="deployment")
    cm = kubectl.json("configmap", DEPLOYMENT)
    assert cm is not None
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "dicomvault:test"
    assert container["args"] == ["dicomvault", "run", "stow-exporter"]
    env = env_of(deployment)
    assert env["DICOMVAULT_EXPORTER__SPEC_FILE"] == "/etc/dicomvault/exporter/exporter.yaml"
    assert env["DICOMVAULT_EXPORTER__SECRETS_DIR"] == "/var/run/secrets/dicomvault"
    assert env["DICOMVAULT_EXPORTER__CONSUMER_GROUP"] == "dicomvault-exporter-ORTHANC_STOW"
    assert env["DICOMVAULT_BUS__BOOTSTRAP_SERVERS"] == "kafka.vault.svc:9092"
    assert env["DICOMVAULT_CACHE__ROOT"] == "/var/lib/dicomvault/cache"
    assert deployment["spec"]["replicas"] == 1

    # The bearer-token Secret is mounted where the exporter reads it; the spec from the ConfigMap.
    pod = deployment["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    assert volumes["secret-orthanc-stow"]["secret"]["secretName"] == "orthanc-stow"
    assert mounts["secret-orthanc-stow"]["mountPath"] == "/var/run/secrets/dicomvault/orthanc-stow"
    assert volumes["spec"]["configMap"]["name"] == DEPLOYMENT
    assert mounts["spec"]["mountPath"] == "/etc/dicomvault/exporter"
    assert volumes["cache"]["persistentVolumeClaim"]["claimName"] == "dicomvault-cache"
    spec_file = tmp_path / "exporter.yaml"
    spec_file.write_text(cm["data"]["exporter.yaml"])
    (spec,) = load_exporters_file(spec_file)
    applied = yaml.safe_load(EXAMPLE.read_text())["spec"]
    assert spec == ExporterSpec.model_validate(applied)

    # Both children belong to the Exporter (garbage-collected with it).
    for child in (deployment, cm):
        (ref,) = child["metadata"]["ownerReferences"]
        assert (ref["kind"], ref["name"], ref["uid"], ref["controller"]) == (
            "Exporter", "orthanc-stow", exporter["metadata"]["uid"], True)
    first_hash = config_hash(deployment)
    assert first_hash == hashlib.sha256(
        yaml.safe_dump(cm["data"], sort_keys=True).encode()).hexdigest()[:16]

    # Status: reconciled generation 1, not ready until the Deployment is available.
    exporter = eventually(lambda: (e := kubectl.json("exporter", "orthanc-stow"))
                          and condition(e, "Ready") and e, what="status")
    assert exporter["status"]["observedGeneration"] == 1
    assert exporter["status"]["deployment"] == DEPLOYMENT
    assert condition(exporter, "Ready")["reason"] == "Progressing"
    assert not exporter["metadata"].get("finalizers")

    # The Deployment controller's part: the pod becomes available → the Exporter is Ready.
    kubectl("patch", "deployment", DEPLOYMENT, "--subresource=status", "--type=merge", "-p",
            json.dumps({"status": {"replicas": 1, "availableReplicas": 1, "conditions": [
                {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"}]}}))
    eventually(lambda: condition(kubectl.json("exporter", "orthanc-stow"), "Ready")
               .get("status") == "True", what="Ready=True")

    # Queue counts come from the catalogue; failures make it Degraded.
    exporter = eventually(lambda: (e := kubectl.json("exporter", "orthanc-stow"))
                          and e["status"].get("queued") == 3 and e, what="queue counts")
    st = exporter["status"]
    assert st["failed"] == 1
    assert condition(exporter, "Degraded")["reason"] == "ExportFailures"
    # The last export is when the queue's latest export succeeded, as an RFC 3339 UTC time.
    last_success = datetime.fromisoformat(queue["last_success"].replace("Z", "+00:00"))
    last_success = last_success.replace(tzinfo=last_success.tzinfo or UTC)
    assert st["lastExport"] == st["lastSuccess"] == last_success.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert abs(datetime.now(UTC) - last_success) < timedelta(minutes=5)
    assert st["lastFailureReason"] == REFUSED
    assert st["lastFailure"].endswith("Z")

    # `kubectl get exporters` (and the short name) shows health at a glance.
    table = kubectl("get", "exp")
    header, row = table.splitlines()
    assert header.split() == ["NAME", "URI", "READY", "QUEUED", "FAILED", "LAST", "EXPORT",
                              "COMMITMENT", "AGE"]
    assert row.split()[:5] == ["orthanc-stow", "stowrs:orthanc", "True", "3", "1"]
    assert re.fullmatch(r"\d+s|\d+m\d*s?", row.split()[5]), row  # "12s" ago, not <none>
    wide = kubectl("get", "exporters", "-o", "wide").splitlines()[0].split()
    assert "REASON" in wide

    # A spec change rolls the pods: new ConfigMap content, new hash, observed generation 2.
    kubectl("patch", "exporter", "orthanc-stow", "--type=merge", "-p", json.dumps(
        {"spec": {"webApplication": {"properties": {"concurrency": 8}}}}))
    deployment = eventually(lambda: (d := kubectl.json("deployment", DEPLOYMENT))
                            and config_hash(d) != first_hash and d, what="new hash")
    cm = kubectl.json("configmap", DEPLOYMENT)
    assert "concurrency: 8" in cm["data"]["exporter.yaml"]
    exporter = eventually(lambda: (e := kubectl.json("exporter", "orthanc-stow"))
                          and e["status"].get("observedGeneration") == 2 and e, what="gen 2")
    assert exporter["metadata"]["generation"] == 2

    # Suspended: scaled to zero, and `Ready` says why.
    kubectl("patch", "exporter", "orthanc-stow", "--type=merge", "-p",
            json.dumps({"spec": {"suspended": True}}))
    eventually(lambda: kubectl.json("deployment", DEPLOYMENT)["spec"]["replicas"] == 0,
               what="replicas 0")
    eventually(lambda: condition(kubectl.json("exporter", "orthanc-stow"), "Ready")
               .get("reason") == "Suspended", what="Suspended")

    # A Deployment deleted by hand comes back (level-triggered).
    kubectl("delete", "deployment", DEPLOYMENT)
    eventually(lambda: kubectl.json("deployment", DEPLOYMENT), what="deployment re-created")

    # Deleting the Exporter takes its children with it; nothing blocks the deletion.
    kubectl("delete", "exporter", "orthanc-stow", "--wait=false")
    eventually(lambda: kubectl.json("exporter", "orthanc-stow") is None, what="exporter gone")
    eventually(lambda: kubectl.json("deployment", DEPLOYMENT) is None, what="deployment gone")
    assert kubectl.json("configmap", DEPLOYMENT) is None


DICOM_EXAMPLE = ROOT / "examples/exporter-dicom.yaml"


async def run_commitment_jobs(bus: BusSettings, outcome: Outcome) -> None:
    """One COMMIT_SCU job of the commitment service's queue, asked for by the example dicom:
    exporter after an export, ending with ``outcome`` (facts on the jobs topic)."""
    async def execute(_job: Job, _report: ProgressReporter) -> Outcome:
        return outcome

    async with Publisher(bus, client_id="test-commitment") as publisher:
        queue = JobQueue(name="commitment-scu", kind="COMMIT_SCU", owner="commitment",
                         publisher=publisher, topics=bus.topics, execute=execute,
                         retry=RetryPolicy(max_retries=0))
        job = await queue.submit(generate_uid(), target="ERPACS", dedupe_key=generate_uid(),
                                 created_by="exporter:ER_PACS")
        stop = asyncio.Event()
        task = asyncio.create_task(queue.run(stop))
        try:
            async with asyncio.timeout(60):
                while job.state.value not in ("DONE", "FAILED"):
                    await asyncio.sleep(0.05)
        finally:
            stop.set()
            await task


def test_exporter_status_shows_the_commitment_outcome(
        operator: OperatorThread, kubectl: Kubectl, bus: BusSettings) -> None:
    # The dicom: example asks for storage commitment after each export.
    kubectl("apply", "--validate=false", "-f", str(DICOM_EXAMPLE))
    eventually(lambda: condition(kubectl.json("exporter", "er-pacs"), "Ready"), what="status")
    # Orthanc (the remote AE) committed every instance of the first export.
    asyncio.run(run_commitment_jobs(bus, Outcome.done(
        "2 instance(s) committed by ERPACS; eviction: not requested", completed=2)))
    st = eventually(lambda: (e := kubectl.json("exporter", "er-pacs"))
                    and e["status"].get("commitment") == "Committed" and e["status"],
                    what="commitment Committed")
    assert st["commitmentMessage"].startswith("2 instance(s) committed by ERPACS")
    assert st["lastCommitment"].endswith("Z")
    header, row = kubectl("get", "exporter", "er-pacs").splitlines()
    assert "COMMITMENT" in header.split()
    at = header.index("COMMITMENT")  # columns are aligned; empty cells are blank
    assert row[at:].split()[0] == "Committed"

    # The next one: the remote refused an instance and the retries ran out.
    asyncio.run(run_commitment_jobs(bus, Outcome.failed_permanently(
        "1 instance(s) not committed by ERPACS (0x0112); re-sending and asking again")))
    exporter = eventually(lambda: (e := kubectl.json("exporter", "er-pacs"))
                          and e["status"].get("commitment") == "Failed" and e,
                          what="commitment Failed")
    assert "0x0112" in exporter["status"]["commitmentMessage"]
    degraded = condition(exporter, "Degraded")
    assert (degraded["status"], degraded["reason"]) == ("True", "CommitmentFailed")
    assert "0x0112" in degraded["message"]
    kubectl("delete", "exporter", "er-pacs", "--wait=false")


def test_invalid_specs_are_reported(operator: OperatorThread, kubectl: Kubectl) -> None:
    # The web application's name differs from the URI (a rule the schema cannot express).
    mismatched = yaml.safe_load(EXAMPLE.read_text())
    mismatched["metadata"]["name"] = "mismatch"
    mismatched["spec"]["exporterID"] = "MISMATCH"
    mismatched["spec"]["webApplication"]["name"] = "elsewhere"
    # A bearer token pasted literally instead of a Secret reference.
    literal = yaml.safe_load(EXAMPLE.read_text())
    literal["metadata"]["name"] = "literal-token"
    literal["spec"]["exporterID"] = "LITERAL"
    literal["spec"]["webApplication"]["properties"]["bearer-token"] = "s3cr3t-t0ken"
    kubectl("apply", "--validate=false", "-f", "-",
            input=yaml.safe_dump_all([mismatched, literal]))

    ready = eventually(lambda: condition(kubectl.json("exporter", "mismatch"), "Ready"),
                       what="mismatch status")
    assert (ready["status"], ready["reason"]) == ("False", "InvalidSpec")
    assert "webApplication.name 'elsewhere' must equal" in ready["message"]
    assert kubectl.json("deployment", "dicomvault-exporter-mismatch") is None

    ready = eventually(lambda: condition(kubectl.json("exporter", "literal-token"), "Ready"),
                       what="literal status")
    assert ready["reason"] == "InvalidSpec"
    assert "bearer-token must reference a Secret" in ready["message"]
    assert "s3cr3t" not in json.dumps(kubectl.json("exporter", "literal-token")["status"])
    assert kubectl.json("deployment", "dicomvault-exporter-literal-token") is None

    # Fixing the spec brings the exporter up.
    kubectl("patch", "exporter", "mismatch", "--type=merge", "-p",
            json.dumps({"spec": {"webApplication": {"name": "orthanc"}}}))
    eventually(lambda: kubectl.json("deployment", "dicomvault-exporter-mismatch"),
               what="deployment after fix")
    eventually(lambda: condition(kubectl.json("exporter", "mismatch"), "Ready")
               .get("reason") == "Progressing", what="valid again")
    kubectl("delete", "exporter", "mismatch", "literal-token", "--wait=false")


def test_operator_serves_metrics_and_health(operator: OperatorThread) -> None:
    base = f"http://127.0.0.1:{operator.settings.http.port}"
    assert httpx.get(f"{base}/healthz").status_code == 200
    assert httpx.get(f"{base}/readyz").status_code == 200
    metrics = httpx.get(f"{base}/metrics/").text
    assert "dicomvault_operator_reconciliations_total" in metrics
