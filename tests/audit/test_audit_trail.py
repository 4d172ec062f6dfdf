"""The audit trail end to end: a modality stores and queries, a viewer queries and retrieves
with its token, an AI node uploads over STOW-RS, an unknown AE and a request without a token
are refused; a real rsyslog (Debian) receives one DICOM audit message per action (one per
study per association or request for stores), the audit API serves them to administrators,
and what the receiver missed while it was down arrives once it is back."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx

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
from tests.peers.wait import wait_until_blocking

TRANSFERRED, BEGIN, QUERY, SECURITY_ALERT, AUTHENTICATION, ACTIVITY = (
    "110104", "110102", "110112", "110113", "110114", "110100")


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
    archive = Archive(tmp_path, bus_settings, sqlite_url, env=auth_env(issuer))
    audit = audit_service(tmp_path, bus_settings, issuer, receiver.url)
    api = f"http://127.0.0.1:{audit.env['DICOMVAULT_HTTP__PORT']}/api/v1/audit"
    qido = f"http://127.0.0.1:{archive.gateway_port}/dicomweb/studies"
    try:
        audit.start()  # starts meanwhile: waited for below
        archive.start()
        audit.ready_url = api.replace("/api/v1/audit", "/readyz")
        audit.wait_ready()
        # A modality stores a study of 6 instances in one association, then queries for it.
        study = write_study(tmp_path / "study1", series=2, per_series=3)
        done = archive.storescu(study.files)
        assert done.returncode == 0, done.stdout + done.stderr
        # Findable once catalogued (tens of ms after the last C-STORE response).
        found = wait_until_blocking(lambda: (lambda r: r if r[0] == 0 and len(r[1]) == 1
                                             else None)(archive.findscu(
            "STUDY", "QueryRetrieveLevel=STUDY", f"StudyInstanceUID={study.study_uid}")),
            "the stored study found by C-FIND", timeout=30, interval=0.1)
        code, answers, out = found
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

        # rsyslog received one message per action, each with PS3.15's required fields.
        def everything() -> list:
            got = received(receiver)
            return got if (of(got, TRANSFERRED, study.study_uid)
                           and of(got, QUERY, study.study_uid, MODALITY)
                           and of(got, QUERY, user="dr-house")
                           and of(got, BEGIN, study.study_uid, "dr-house")
                           and of(got, TRANSFERRED, results.study_uid, "ai-node")
                           and len(of(got, SECURITY_ALERT, user="INTRUDER")) == 2
                           and of(got, AUTHENTICATION) and of(got, ACTIVITY)) else []

        got = wait_for("the audit messages in rsyslog", everything)
        [stored] = of(got, TRANSFERRED, study.study_uid)  # one per study per association
        assert stored.find("EventIdentification").get("EventActionCode") == "C"
        assert outcome(stored) == "0"
        assert requestor(stored).get("UserID") == MODALITY
        assert requestor(stored).get("NetworkAccessPointID") == "127.0.0.1"
        assert sum(int(s.get("NumberOfInstances")) for s in stored.iter("SOPClass")) == 6
        find = of(got, QUERY, study.study_uid, MODALITY)[-1]  # one per C-FIND sent
        assert find.find(".//ParticipantObjectQuery").text  # the identifier, base64
        for alert in of(got, SECURITY_ALERT, user="INTRUDER"):
            assert outcome(alert) == "4"
            assert requestor(alert).get("NetworkAccessPointID") == "127.0.0.1"
        [login] = of(got, AUTHENTICATION)
        assert outcome(login) == "4"
        assert login.find("EventIdentification/EventTypeCode").get("csd-code") == "110122"
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
    finally:
        audit.stop()
        archive.stop()
        receiver.stop()
