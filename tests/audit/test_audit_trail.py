"""The audit trail end to end: a modality stores and queries, a viewer queries and retrieves
with its token, an AI node uploads over STOW-RS, an unknown AE and a request without a token
are refused; a real rsyslog (Debian) receives one DICOM audit message per action (one per
study per association or request for stores), the audit API serves them to administrators,
and what the receiver missed while it was down arrives once it is back. The other services'
REST APIs record their 401/403 too, an administrator's job command names its token's subject,
refused C-STOREs make one message per association, and every service records its start and
stop."""

from __future__ import annotations

import json
import subprocess
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import httpx
from pydicom import dcmread

from dicomvault.bus.broker import free_port
from dicomvault.settings import BusSettings
from tests.audit.validate import audit_message, event_code, outcome, requestor, studies
from tests.conftest import dcmtk, peer_env
from tests.e2e.conftest import AE_TITLE, MODALITY, Archive
from tests.gateway.dicomweb_peers import multipart_dicom
from tests.peers.datasets import write_study
from tests.peers.rsyslog import Rsyslog
from tests.peers.services import FAST_BUS_ENV, ServiceProcess, bus_env
from tests.peers.tokens import ADMIN, READ, WRITE, Issuer, auth_env

TRANSFERRED, BEGIN, QUERY, SECURITY_ALERT, AUTHENTICATION, ACTIVITY = (
    "110104", "110102", "110112", "110113", "110114", "110100")
START, STOP = "110120", "110121"


def wait_for(what: str, check: Callable[[], object], timeout_s: float = 30.0):
    deadline = time.monotonic() + timeout_s
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def received(receiver: Rsyslog) -> list:
    """Every audit message rsyslog wrote, parsed and checked for PS3.15's required fields."""
    out = []
    for message in receiver.messages():
        assert (message.app_name, message.msg_id, message.facility) == (
            "dicomvault", "DICOM+RFC3881", 10), message
        out.append(audit_message(message.msg))
    return out


def of(messages: list, code: str, study: str = "", user: str = "") -> list:
    return [m for m in messages if event_code(m) == code
            and (not study or study in studies(m))
            and (not user or (requestor(m) is not None and requestor(m).get("UserID") == user))]


def described(messages: list, code: str, text: str) -> list:
    return [m for m in messages if event_code(m) == code
            and text in (m.findtext("EventIdentification/EventOutcomeDescription") or "")]


def activity(messages: list, application: str, kind: str) -> list:
    """Application Start/Stop messages of ``application``."""
    return [m for m in messages if event_code(m) == ACTIVITY
            and m.find("EventIdentification/EventTypeCode").get("csd-code") == kind
            and any(p.get("UserID") == application for p in m.findall("ActiveParticipant"))]


def event_type(root) -> str:
    code = root.find("EventIdentification/EventTypeCode")
    return code.get("csd-code") if code is not None else ""


def commitment_service(folder: Path, bus: BusSettings, issuer: Issuer, catalogue_url: str,
                       token_file: Path) -> ServiceProcess:
    port = free_port()
    return ServiceProcess("commitment", {
        **bus_env(bus), **FAST_BUS_ENV, **auth_env(issuer),
        "DICOMVAULT_HTTP__HOST": "127.0.0.1", "DICOMVAULT_HTTP__PORT": str(port),
        "DICOMVAULT_CACHE__ROOT": str(folder / "cache"),
        "DICOMVAULT_COMMITMENT__DIMSE_HOST": "127.0.0.1",
        "DICOMVAULT_COMMITMENT__DIMSE_PORT": str(free_port()),
        "DICOMVAULT_COMMITMENT__CATALOGUE_URL": catalogue_url,
        "DICOMVAULT_CLIENT__TOKEN_FILE": str(token_file),
        "DICOMVAULT_COMMITMENT__MODALITIES": json.dumps(
            {"PACS1": {"host": "127.0.0.1", "port": free_port()}}),
    }, folder, ready_url=f"http://127.0.0.1:{port}/readyz")


def audit_service(folder: Path, bus: BusSettings, issuer: Issuer, syslog_url: str
                  ) -> ServiceProcess:
    port = free_port()
    env = {**bus_env(bus), **FAST_BUS_ENV, **auth_env(issuer),
           "DICOMVAULT_HTTP__PORT": str(port),
           "DICOMVAULT_DATABASE__URL": f"sqlite+aiosqlite:///{folder / 'audit.db'}",
           "DICOMVAULT_AUDIT__SYSLOG_URL": syslog_url,
           "DICOMVAULT_AUDIT__AGGREGATE_S": "0.5",
           "DICOMVAULT_AUDIT__RETRY_MAX_S": "0.5"}
    return ServiceProcess("audit", env, folder)


def test_actions_become_audit_messages_in_syslog_and_the_api(
        tmp_path: Path, bus_settings: BusSettings, sqlite_url: str) -> None:
    issuer = Issuer(tmp_path)
    receiver = Rsyslog(tmp_path / "rsyslog").start()
    # Bearer tokens on every service; the gateway and commitment call the catalogue with
    # their own token.
    service_token = tmp_path / "service.jwt"
    service_token.write_text(issuer.token(READ, subject="dicomvault-services",
                                          expires_in=3600))
    archive = Archive(tmp_path, bus_settings, sqlite_url, env={
        **auth_env(issuer), "DICOMVAULT_CLIENT__TOKEN_FILE": str(service_token)})
    archive.catalogue.env.update(auth_env(issuer))
    commitment = commitment_service(tmp_path, bus_settings, issuer, archive.catalogue_url,
                                    service_token)
    commitment_api = commitment.ready_url.replace("/readyz", "/api/v1/commitments")
    audit = audit_service(tmp_path, bus_settings, issuer, receiver.url)
    api = f"http://127.0.0.1:{audit.env['DICOMVAULT_HTTP__PORT']}/api/v1/audit"
    qido = f"http://127.0.0.1:{archive.gateway_port}/dicomweb/studies"
    try:
        audit.start()  # starts meanwhile: waited for below
        archive.start()
        commitment.start(timeout_s=90)
        audit.ready_url = api.replace("/api/v1/audit", "/readyz")
        audit.wait_ready()
        # A modality stores a study of 6 instances in one association, then queries for it.
        study = write_study(tmp_path / "study1", series=2, per_series=3)
        done = archive.storescu(study.files)
        assert done.returncode == 0, done.stdout + done.stderr
        # (the catalogue projects the study a moment after the stores were acknowledged)
        code, answers, out = wait_for("the study in the catalogue", lambda: (
            lambda r: r if r[0] == 0 and len(r[1]) == 1 else None)(archive.findscu(
                "STUDY", "QueryRetrieveLevel=STUDY", f"StudyInstanceUID={study.study_uid}")))
        assert code == 0 and len(answers) == 1, out
        # An AE nobody configured knocks (refused), a viewer comes without a token (401),
        # then with one.
        knock = subprocess.run([dcmtk("echoscu"), "-aet", "INTRUDER", "-aec", AE_TITLE,
                                "127.0.0.1", str(archive.dimse_port)], env=peer_env(),
                               capture_output=True, text=True, timeout=30)
        assert knock.returncode != 0
        # (echoscu is refused by the storage fast path, findscu by pynetdicom)
        knock = subprocess.run([dcmtk("findscu"), "-aet", "INTRUDER", "-aec", AE_TITLE, "-S",
                                "-k", "QueryRetrieveLevel=STUDY", "127.0.0.1",
                                str(archive.dimse_port)], env=peer_env(),
                               capture_output=True, text=True, timeout=30)
        assert knock.returncode != 0
        assert httpx.get(qido, timeout=10).status_code == 401
        viewer = httpx.get(qido, params={"StudyInstanceUID": study.study_uid},
                           headers=issuer.bearer(READ, subject="dr-house"), timeout=10)
        assert viewer.status_code == 200, viewer.text
        metadata = httpx.get(f"{qido}/{study.study_uid}/metadata",
                             headers=issuer.bearer(READ, subject="dr-house"), timeout=10)
        assert metadata.status_code == 200, metadata.text
        # An AI node uploads its results over STOW-RS with its own token.
        results = write_study(tmp_path / "results", series=1, per_series=2, patient_id="PAT9")
        body, ctype = multipart_dicom([p.read_bytes() for p in results.files])
        stow = httpx.post(qido, content=body, timeout=30, headers={
            "Content-Type": ctype, "Accept": "application/dicom+json",
            **issuer.bearer(WRITE, subject="ai-node")})
        assert stow.status_code == 200, stow.text

        # The other services' REST APIs: no token (401), a token without the admin scope
        # (403, its subject named).
        queues = f"{archive.catalogue_url}/api/v1/queues"
        assert httpx.get(queues, timeout=10).status_code == 401
        ask = {"study_instance_uid": study.study_uid, "remote_ae": "PACS1"}
        assert httpx.post(commitment_api, json=ask, timeout=10).status_code == 401
        assert httpx.post(commitment_api, json=ask, timeout=10, headers=issuer.bearer(
            READ, subject="nurse-joy")).status_code == 403
        # An administrator pauses the commitment service's queue through the catalogue API.
        wait_for("the commitment queues in the catalogue", lambda: any(
            q["name"] == "commitment-scu" for q in httpx.get(
                queues, headers=issuer.bearer(READ), timeout=10).json()["queues"]))
        paused = httpx.post(f"{queues}/commitment-scu/pause", timeout=10, json={
            "reason": "PACS1 maintenance"}, headers=issuer.bearer(ADMIN, subject="pacs-admin"))
        assert paused.status_code == 202, paused.text
        # A modality sends two instances the gateway refuses (their SOP Instance UID is not
        # a UID) in one association: one failure message for the association.
        bad = write_study(tmp_path / "bad", series=1, per_series=2, patient_id="PAT7")
        for n, path in enumerate(bad.files):
            ds = dcmread(path)
            with warnings.catch_warnings():  # pydicom warns of the invalid UID: on purpose
                warnings.simplefilter("ignore")
                ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = f"1.2.3.bad{n}"
                ds.save_as(path)
        refused = archive.storescu(bad.files, "-nh", "-v")  # -nh: send on after a refusal
        assert (refused.stdout + refused.stderr).count("Error: DataSetDoesNotMatch") == 2, \
            refused.stdout + refused.stderr

        # rsyslog received one message per action, each with PS3.15's required fields.
        def everything() -> list:
            got = received(receiver)
            return got if (of(got, TRANSFERRED, study.study_uid)
                           and of(got, QUERY, study.study_uid, MODALITY)
                           and of(got, QUERY, user="dr-house")
                           and of(got, BEGIN, study.study_uid, "dr-house")
                           and of(got, TRANSFERRED, results.study_uid, "ai-node")
                           and len(of(got, SECURITY_ALERT, user="INTRUDER")) == 2
                           and described(got, AUTHENTICATION, "/dicomweb")
                           and described(got, AUTHENTICATION, "GET /api/v1/queues")
                           and len(described(got, AUTHENTICATION, "/api/v1/commitments")) == 2
                           and of(got, SECURITY_ALERT, user="pacs-admin")
                           and described(got, TRANSFERRED, "refused before storing")
                           and activity(got, "catalogue", START)
                           and activity(got, "commitment", START)
                           and activity(got, "dicom-gateway", START)) else []

        got = wait_for("the audit messages in rsyslog", everything)
        [stored] = of(got, TRANSFERRED, study.study_uid)  # one per study per association
        assert stored.find("EventIdentification").get("EventActionCode") == "C"
        assert outcome(stored) == "0"
        assert requestor(stored).get("UserID") == MODALITY
        assert requestor(stored).get("NetworkAccessPointID") == "127.0.0.1"
        assert sum(int(s.get("NumberOfInstances")) for s in stored.iter("SOPClass")) == 6
        for find in of(got, QUERY, study.study_uid, MODALITY):  # (asked until it matched)
            assert find.find(".//ParticipantObjectQuery").text  # the identifier, base64
        for alert in of(got, SECURITY_ALERT, user="INTRUDER"):
            assert outcome(alert) == "4"
            assert requestor(alert).get("NetworkAccessPointID") == "127.0.0.1"
        for login in of(got, AUTHENTICATION):  # /dicomweb, the catalogue, commitment (×2)
            assert outcome(login) == "4"
            assert event_type(login) == "110122"
            assert requestor(login).get("NetworkAccessPointID") == "127.0.0.1"
        [denied] = described(got, AUTHENTICATION, "HTTP 403 on POST /api/v1/commitments")
        assert requestor(denied).get("UserID") == "nurse-joy"
        [command] = of(got, SECURITY_ALERT, user="pacs-admin")  # who paused the queue
        assert event_type(command) == "PAUSE_QUEUE" and outcome(command) == "0"
        assert "commitment-scu" in command.findtext(
            "EventIdentification/EventOutcomeDescription")
        assert requestor(command).get("NetworkAccessPointID") == "127.0.0.1"
        [refusal] = described(got, TRANSFERRED, "refused before storing")
        assert outcome(refusal) != "0" and requestor(refusal).get("UserID") == MODALITY
        assert "2 instances refused" in refusal.findtext(
            "EventIdentification/EventOutcomeDescription")
        assert of(got, QUERY, study.study_uid, "dr-house")
        [uploaded] = of(got, TRANSFERRED, results.study_uid, "ai-node")  # one per request
        assert sum(int(s.get("NumberOfInstances")) for s in uploaded.iter("SOPClass")) == 2

        # The API: administrators only, filtered by study, actor and time.
        assert httpx.get(api, timeout=10).status_code == 401
        assert httpx.get(api, headers=issuer.bearer(READ), timeout=10).status_code == 403
        admin = issuer.bearer(ADMIN, subject="security-officer")
        by_study = httpx.get(api, params={"study": study.study_uid}, headers=admin, timeout=10)
        assert by_study.status_code == 200, by_study.text
        assert {m["event"] for m in by_study.json()} >= {"DICOM Instances Transferred",
                                                         "Query"}
        assert all(study.study_uid in m["studies"] for m in by_study.json())
        by_actor = httpx.get(api, params={"actor": "INTRUDER"}, headers=admin,
                             timeout=10).json()
        assert [m["event"] for m in by_actor] == ["Security Alert"] * 2
        assert all(m["outcome"] == 4 and m["delivered"] for m in by_actor)
        later = httpx.get(api, params={"since": "2999-01-01T00:00:00Z"}, headers=admin,
                          timeout=10).json()
        assert later == []

        # The receiver goes down; the archive keeps working and the audit service keeps
        # what it could not send.
        receiver.stop()
        study2 = write_study(tmp_path / "study2", series=1, per_series=4, patient_id="PAT002")
        done = archive.storescu(study2.files)
        assert done.returncode == 0, done.stdout + done.stderr
        code, _, out = archive.findscu(
            "STUDY", "QueryRetrieveLevel=STUDY", f"StudyInstanceUID={study2.study_uid}")
        assert code == 0, out
        kept = wait_for("the messages kept while rsyslog is down", lambda: [
            m for m in httpx.get(api, params={"study": study2.study_uid}, headers=admin,
                                 timeout=10).json() if not m["delivered"]] or None)
        assert kept and not of(received(receiver), TRANSFERRED, study2.study_uid)
        # Back up: they arrive, none lost.
        receiver.start()
        got = wait_for("the kept messages in rsyslog", lambda: (
            lambda g: g if of(g, TRANSFERRED, study2.study_uid)
            and of(g, QUERY, study2.study_uid) else [])(received(receiver)))
        [stored2] = of(got, TRANSFERRED, study2.study_uid)
        assert sum(int(s.get("NumberOfInstances")) for s in stored2.iter("SOPClass")) == 4
        rows = httpx.get(api, params={"limit": 1000}, headers=admin, timeout=10).json()
        wait_for("every kept message delivered", lambda: all(
            m["delivered"] for m in httpx.get(api, params={"limit": 1000}, headers=admin,
                                              timeout=10).json()))
        assert len(rows) >= 8

        # The catalogue and commitment stop: each says so.
        commitment.stop()
        archive.stop()
        wait_for("the Application Stop messages", lambda: (
            lambda g: activity(g, "catalogue", STOP) and activity(g, "commitment", STOP)
            and activity(g, "dicom-gateway", STOP))(received(receiver)))
    finally:
        audit.stop()
        commitment.stop()
        archive.stop()
        receiver.stop()
