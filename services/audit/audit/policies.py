"""The audit service's policy: events in, audit messages kept (one transaction per batch).

Which fact makes which message (PS3.15 A.5.3):
- InstanceStored (C-STORE, STOW-RS, recall): DICOM Instances Transferred, action C, one
  message per study per association / STOW-RS request (``Store.aggregate``).
- StudyExported / ExportFailed, StudyArchived: DICOM Instances Transferred, action R (sent by
  an exporter or archiver to its destination).
- StudyEvicted: DICOM Instances Accessed, action D (the administrator who asked for an
  on-demand evict is the requestor).
- JobCommandIssued (job-commands topic) and an administrator's CommitmentRequested (over the
  commitment REST API): Security Alert with our own EventTypeCode (``99DICOMVAULT``), the
  token's subject as requestor (as dcm4chee-arc audits task commands).
- VolumeBurned: Export (optical media), with the studies of its VolumeClosed.
- AuditRecorded (the audit topic): Query, Begin Transferring DICOM Instances, Security Alert,
  User Authentication, Application Activity; refused C-STOREs of an association: DICOM
  Instances Transferred, failure.
Reconciliation re-announcements (InstanceStored source "reconcile") are no transfer.
"""

from __future__ import annotations

import base64
import logging
from collections import OrderedDict
from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp

from audit import metrics
from audit.record import Record, iso
from audit.store import Store
from dicomvault.audit import SERIOUS_FAILURE, SUCCESS, Action
from dicomvault.bus import RecentIds, TransientError
from dicomvault.events import Event
from dicomvault.events.v1 import (
    audit_pb2,
    commitment_pb2,
    events_pb2,
    exports_pb2,
    jobs_pb2,
    optical_pb2,
)

log = logging.getLogger(__name__)

FACTS = {
    Action.QUERY: ("query", "E", ""),
    Action.RETRIEVE_STARTED: ("begin-transfer", "E", ""),
    Action.ASSOCIATION_REFUSED: ("security-alert", "E", "node-authentication"),
    Action.AUTHENTICATION: ("authentication", "E", "login"),
    Action.APPLICATION_START: ("application-activity", "E", "start"),
    Action.APPLICATION_STOP: ("application-activity", "E", "stop"),
    Action.STORE_REFUSED: ("transferred", "C", ""),
}
LOCAL = "local:"  # an EventTypeCode of our own scheme (messages.LOCAL_SCHEME)
Command = jobs_pb2.JobCommandIssued.Command


def _api_user(who: str) -> str:
    """The actor of an ``api:<subject>`` value: the token's subject."""
    return who[4:] if who.startswith("api:") else who


def _time(ts: Timestamp, fallback: datetime) -> str:
    if ts.seconds or ts.nanos:
        return iso(ts.ToDatetime(tzinfo=UTC))
    return iso(fallback)


class Policy:
    """``batch(events)``: every message of a fetch kept in one transaction."""

    def __init__(self, store: Store, source_id: str) -> None:
        self.store = store
        self.source_id = source_id
        self.recent = RecentIds(100_000)
        self.volumes: OrderedDict[str, list[str]] = OrderedDict()  # label -> studies

    async def __call__(self, event: Event) -> None:
        await self.batch([event])

    async def batch(self, events: list[Event]) -> None:
        keep: list[Record] = []
        stored: dict[str, Record] = {}  # aggregate key -> instances of this batch
        fresh = [e for e in events if _seen_key(e) not in self.recent]
        for event in fresh:
            self._translate(event, keep, stored)
        if not keep and not stored:
            for event in fresh:
                self.recent.first_time(_seen_key(event))
            return
        try:
            async with self.store.engine.begin() as conn:
                for rec in keep:
                    await self.store.keep(conn, rec)
                for key, rec in stored.items():
                    await self.store.aggregate(conn, key, rec)
        except OSError as exc:
            raise TransientError(f"audit store unavailable: {exc!r}") from exc
        except Exception as exc:
            if _connectivity(exc):
                raise TransientError(f"audit store unavailable: {exc!r}") from exc
            raise
        for event in fresh:
            self.recent.first_time(_seen_key(event))
        for rec in [*keep, *stored.values()]:
            metrics.MESSAGES.labels(rec.event).inc()

    def _translate(self, event: Event, keep: list[Record], stored: dict[str, Record]) -> None:
        msg = event.payload
        if isinstance(msg, events_pb2.InstanceStored):
            if msg.source == "reconcile":
                return
            who = msg.association_id or f"{msg.calling_ae}|{msg.peer_address}|{msg.user_id}"
            key = f"transferred|{msg.study_instance_uid}|{who}"[:200]
            rec = stored.get(key)
            if rec is None:
                rec = stored[key] = Record(
                    "transferred", "C", SUCCESS, _time(msg.received_time, event.time),
                    user_id=msg.user_id or msg.calling_ae, peer_address=msg.peer_address,
                    calling_ae=msg.calling_ae, called_ae=msg.called_ae,
                    studies=[msg.study_instance_uid], patient_id=msg.patient_id,
                    service={"dimse": "C-STORE", "recall": "C-STORE"}.get(msg.source,
                                                                         "STOW-RS"),
                    application="dicom-gateway")
            rec.sop_classes[msg.sop_class_uid] = rec.sop_classes.get(msg.sop_class_uid, 0) + 1
        elif isinstance(msg, exports_pb2.StudyExported):
            keep.append(Record(
                "transferred", "R", 4 if msg.failed_sop_instance_uids else SUCCESS,
                _time(msg.exported_time, event.time), user_id=f"exporter:{msg.exporter_id}",
                destination=msg.destination or msg.uri, studies=[msg.study_instance_uid],
                service=msg.uri.split(":", 1)[0],
                description=f"{msg.number_of_instances} instances sent to {msg.uri}"
                + (f", {len(msg.failed_sop_instance_uids)} refused"
                   if msg.failed_sop_instance_uids else ""),
                application="stow-exporter"))
        elif isinstance(msg, exports_pb2.ExportFailed):
            keep.append(Record(
                "transferred", "R", SERIOUS_FAILURE, _time(msg.failed_time, event.time),
                user_id=f"exporter:{msg.exporter_id}", destination=msg.destination or msg.uri,
                studies=[msg.study_instance_uid], description=msg.reason[:1000],
                application="stow-exporter"))
        elif isinstance(msg, events_pb2.StudyArchived):
            keep.append(Record(
                "transferred", "R", SUCCESS, iso(event.time), user_id=f"archive:{msg.archive_id}",
                destination=f"{msg.tier}:{msg.location}"[:256], studies=[msg.study_instance_uid],
                description=f"{msg.number_of_instances} instances archived to {msg.tier}",
                application=event.source.rsplit("/", 1)[-1]))
        elif isinstance(msg, events_pb2.StudyEvicted):
            keep.append(Record(
                "accessed", "D", SUCCESS, iso(event.time),
                user_id=_api_user(msg.requested_by) or (f"{msg.tier}:{msg.archive_id}"
                                                        if msg.archive_id else msg.tier),
                peer_address=msg.peer_address, studies=[msg.study_instance_uid],
                description=f"removed from the {msg.tier} tier: {msg.reason}"[:1000],
                application=event.source.rsplit("/", 1)[-1]))
        elif isinstance(msg, optical_pb2.VolumeClosed):
            self.volumes[msg.label] = list(msg.study_instance_uids)
            while len(self.volumes) > 10_000:
                self.volumes.popitem(last=False)
        elif isinstance(msg, optical_pb2.VolumeBurned):
            keep.append(Record(
                "export", "R", SUCCESS if msg.exit_status == 0 else SERIOUS_FAILURE,
                iso(event.time), user_id=f"archive:{msg.archive_id}",
                destination=f"{msg.label} copy {msg.copy} ({msg.backend})",
                studies=self.volumes.get(msg.label, []),
                description=f"volume {msg.label} burned to {msg.target}"[:1000],
                application="optical-burner"))
        elif isinstance(msg, jobs_pb2.JobCommandIssued):
            name = Command.Name(msg.command)
            what = f"job {msg.job_id} of queue {msg.queue}" if msg.job_id else \
                f"queue {msg.queue}"
            keep.append(Record(
                "security-alert", "E", SUCCESS, iso(event.time),
                user_id=_api_user(msg.issued_by), peer_address=msg.peer_address,
                studies=[event.subject] if event.subject else [], event_type=LOCAL + name,
                service=name, description=f"{name} {what}"
                + (f": {msg.reason}" if msg.reason else "")[:1000],
                application=event.source.rsplit("/", 1)[-1]))
        elif isinstance(msg, commitment_pb2.CommitmentRequested):
            if not msg.requested_by.startswith("api:"):
                return  # an archiver's or exporter's own request: no one's action
            keep.append(Record(
                "security-alert", "E", SUCCESS, iso(event.time),
                user_id=_api_user(msg.requested_by), peer_address=msg.peer_address,
                destination=msg.remote_ae, studies=[msg.study_instance_uid],
                event_type=LOCAL + "REQUEST_COMMITMENT", service="N-ACTION",
                description=f"storage commitment of {len(msg.instances)} instances asked of "
                f"{msg.remote_ae}" + (", then evict the cache copy"
                                      if msg.delete_after_commit else ""),
                application="commitment"))
        elif isinstance(msg, audit_pb2.AuditRecorded):
            kind = FACTS.get(msg.action)
            if kind is None:
                return
            event_name, action, event_type = kind
            keep.append(Record(
                event_name, action, msg.outcome, _time(msg.time, event.time),
                user_id=msg.user_id, peer_address=msg.peer_address, calling_ae=msg.calling_ae,
                called_ae=msg.called_ae, destination=msg.destination,
                studies=list(msg.study_instance_uids), event_type=event_type,
                query=base64.b64encode(msg.query).decode() if msg.query else "",
                query_sop_class=msg.sop_class_uid, service=msg.service,
                description=msg.description, application=msg.application))


def _seen_key(event: Event) -> str:
    """What makes a record a redelivery: its ce_id, and for InstanceStored the association
    too (an identical resend in a new association republishes the same ce_id, and is a new
    transfer to audit)."""
    msg = event.payload
    if isinstance(msg, events_pb2.InstanceStored):
        return f"{event.id}|{msg.association_id}"
    return event.id


def _connectivity(exc: BaseException) -> bool:
    from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

    if isinstance(exc, (OperationalError, InterfaceError)):
        return True
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)
