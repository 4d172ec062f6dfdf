"""Administrators' actions that travel as events become audit messages that name who did it
(the token's subject and address): an evict on demand, a storage-commitment request through
the commitment API, a job command; the archivers' own commitment requests and the eviction
sweep name no one. Policy and store only, on SQLite (the end-to-end path is in
test_audit_trail.py)."""

from __future__ import annotations

from pathlib import Path

from audit.messages import to_xml
from audit.policies import Policy
from audit.store import Store, create, make_engine
from dicomvault.events import Event
from dicomvault.events.v1 import commitment_pb2 as cpb
from dicomvault.events.v1 import events_pb2 as ev
from dicomvault.events.v1 import jobs_pb2 as jb
from tests.audit.validate import audit_message, event_code, requestor, studies

STUDY = "1.2.826.0.1.3680043.8.498.7"


async def test_admin_actions_name_the_token_subject(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'audit.db'}")
    try:
        await create(engine)
        store = Store(engine, aggregate_s=3600, aggregate_max_s=7200)
        await Policy(store, "dicomvault").batch([
            Event(ev.StudyEvicted(
                study_instance_uid=STUDY, tier="cache", archive_id="cache", reason="on demand",
                requested_by="api:pacs-admin", peer_address="10.0.0.9:5000"),
                source="dicomvault/hsm-archiver", subject=STUDY),
            Event(ev.StudyEvicted(study_instance_uid=STUDY, tier="cache",
                                          archive_id="cache", reason="idle 30 days"),
                  source="dicomvault/hsm-archiver", subject=STUDY),
            Event(cpb.CommitmentRequested(
                study_instance_uid=STUDY, remote_ae="PACS1", requested_by="api:ops",
                peer_address="10.0.0.8:5001", instances=[cpb.SopReference(
                    sop_class_uid="1.2.840.10008.5.1.4.1.1.2", sop_instance_uid=STUDY + ".1")]),
                source="dicomvault/commitment", subject=STUDY),
            Event(cpb.CommitmentRequested(
                study_instance_uid=STUDY, remote_ae="PACS1", requested_by="exporter:e1"),
                source="dicomvault/stow-exporter", subject=STUDY),
            Event(jb.JobCommandIssued(
                command=jb.JobCommandIssued.CANCEL_JOB, queue="hsm1", job_id="j-1",
                issued_by="api:alice", reason="wrong study", peer_address="10.0.0.7:5002"),
                source="dicomvault/catalogue", subject=STUDY),
        ])
        kept = {(k.record.event, k.record.user_id): k.record for k in await store.find()}
        assert set(kept) == {("accessed", "pacs-admin"), ("accessed", "cache:cache"),
                             ("security-alert", "ops"), ("security-alert", "alice")}
        xml = {who: audit_message(to_xml(rec, "dicomvault").decode())
               for (_, who), rec in kept.items()}
        # The evict: DICOM Instances Accessed (delete) by the administrator, from their host.
        assert event_code(xml["pacs-admin"]) == "110103"
        assert requestor(xml["pacs-admin"]).get("NetworkAccessPointID") == "10.0.0.9"
        assert studies(xml["pacs-admin"]) == [STUDY]
        # The commitment request and the job command: Security Alerts of our own types.
        for who, code in (("ops", "REQUEST_COMMITMENT"), ("alice", "CANCEL_JOB")):
            kind = xml[who].find("EventIdentification/EventTypeCode")
            assert (kind.get("csd-code"), kind.get("codeSystemName")) == (code, "99DICOMVAULT")
            assert event_code(xml[who]) == "110113" and studies(xml[who]) == [STUDY]
        assert "wrong study" in xml["alice"].findtext(
            "EventIdentification/EventOutcomeDescription")
    finally:
        await engine.dispose()
