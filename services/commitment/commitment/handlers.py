"""pynetdicom handlers of our DIMSE listener: N-ACTION (we are SCP), N-EVENT-REPORT (we are
SCU), C-ECHO. Every exit returns a named status; the work happens in asyncio, reached only
through ``Bridge.call`` (the one place that crosses from pynetdicom's threads).

N-ACTION statuses (PS3.7 10.1.4.1.10, Annex C):
- SUCCESS 0x0000: the request is recorded as a COMMIT_SCP job; the report follows.
- NOT_AUTHORIZED 0x0124: the calling AE is known but may not request storage commitment.
  (An AE that is not in the modalities table never gets this far: its association is
  rejected, "calling AE title not recognized".)
- NO_SUCH_ACTION_TYPE 0x0123: Action Type ID is not 1 (Request Storage Commitment).
- INVALID_OBJECT_INSTANCE 0x0117: Requested SOP Instance is not the well-known instance
  1.2.840.10008.1.20.1.1.
- INVALID_ARGUMENT_VALUE 0x0115: the Action Information cannot be decoded, Transaction UID is
  missing or not a UID, Referenced SOP Sequence is missing, empty, or an item lacks a valid
  Referenced SOP Class / Instance UID.
- RESOURCE_LIMITATION 0x0213: the job could not be recorded (broker unreachable); ask again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from pydicom.dataset import Dataset

from dicomvault.store import is_valid_uid

log = logging.getLogger(__name__)

STORAGE_COMMITMENT_PUSH = "1.2.840.10008.1.20.1"
STORAGE_COMMITMENT_INSTANCE = "1.2.840.10008.1.20.1.1"  # the well-known SOP Instance
REQUEST_STORAGE_COMMITMENT = 1  # Action Type ID
ALL_SUCCESS = 1  # Event Type IDs of the report
SOME_FAILURES = 2

SUCCESS = 0x0000
PROCESSING_FAILURE = 0x0110
NO_SUCH_OBJECT_INSTANCE = 0x0112
NO_SUCH_EVENT_TYPE = 0x0113
INVALID_ARGUMENT_VALUE = 0x0115
INVALID_OBJECT_INSTANCE = 0x0117
CLASS_INSTANCE_CONFLICT = 0x0119
NO_SUCH_ACTION_TYPE = 0x0123
NOT_AUTHORIZED = 0x0124
RESOURCE_LIMITATION = 0x0213


class InvalidRequest(ValueError):
    """A Storage Commitment request or report that does not follow PS3.4 J.3."""


@dataclass(frozen=True)
class SopRef:
    sop_class_uid: str
    sop_instance_uid: str


@dataclass(frozen=True)
class FailedRef:
    sop_class_uid: str
    sop_instance_uid: str
    failure_reason: int
    description: str = ""


@dataclass
class CommitRequest:
    transaction_uid: str
    refs: list[SopRef]


@dataclass
class CommitReport:
    transaction_uid: str
    event_type: int
    calling_ae: str
    committed: list[SopRef] = field(default_factory=list)
    failed: list[FailedRef] = field(default_factory=list)


def _uid(value: object) -> str:
    return str(value or "").rstrip("\x00 ")


def parse_request(info: Dataset) -> CommitRequest:
    txn = _uid(info.get("TransactionUID"))
    if not is_valid_uid(txn):
        raise InvalidRequest(f"missing or invalid Transaction UID {txn!r}")
    seq = info.get("ReferencedSOPSequence")
    if not seq:
        raise InvalidRequest("missing or empty Referenced SOP Sequence")
    refs = []
    for item in seq:
        cls, inst = _uid(item.get("ReferencedSOPClassUID")), _uid(item.get("ReferencedSOPInstanceUID"))
        if not (is_valid_uid(cls) and is_valid_uid(inst)):
            raise InvalidRequest(f"bad Referenced SOP item ({cls!r}, {inst!r})")
        refs.append(SopRef(cls, inst))
    return CommitRequest(txn, refs)


def parse_report(info: Dataset, event_type: int, calling_ae: str) -> CommitReport:
    txn = _uid(info.get("TransactionUID"))
    if not is_valid_uid(txn):
        raise InvalidRequest(f"missing or invalid Transaction UID {txn!r}")
    report = CommitReport(txn, event_type, calling_ae)
    for item in info.get("ReferencedSOPSequence") or []:
        report.committed.append(SopRef(_uid(item.get("ReferencedSOPClassUID")),
                                       _uid(item.get("ReferencedSOPInstanceUID"))))
    for item in info.get("FailedSOPSequence") or []:
        report.failed.append(FailedRef(_uid(item.get("ReferencedSOPClassUID")),
                                       _uid(item.get("ReferencedSOPInstanceUID")),
                                       int(item.get("FailureReason", PROCESSING_FAILURE))))
    return report


def build_request(transaction_uid: str, refs: list[SopRef]) -> Dataset:
    ds = Dataset()
    ds.TransactionUID = transaction_uid
    ds.ReferencedSOPSequence = [_ref_item(r.sop_class_uid, r.sop_instance_uid) for r in refs]
    return ds


def build_report(transaction_uid: str, committed: list[SopRef],
                 failed: list[FailedRef]) -> tuple[int, Dataset]:
    """(Event Type ID, Event Information) of an N-EVENT-REPORT (PS3.4 J.3.3)."""
    ds = Dataset()
    ds.TransactionUID = transaction_uid
    if committed:
        ds.ReferencedSOPSequence = [_ref_item(r.sop_class_uid, r.sop_instance_uid)
                                    for r in committed]
    if failed:
        items = []
        for f in failed:
            item = _ref_item(f.sop_class_uid, f.sop_instance_uid)
            item.FailureReason = f.failure_reason
            items.append(item)
        ds.FailedSOPSequence = items
    return (SOME_FAILURES if failed else ALL_SUCCESS), ds


def _ref_item(cls: str, inst: str) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID = cls
    item.ReferencedSOPInstanceUID = inst
    return item


class Bridge:
    """What the handlers need from the service; ``call`` runs a coroutine on its loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, service: Any, timeout_s: float) -> None:
        self.loop = loop
        self.service = service  # has may_request(), accept_request(), report_received()
        self.timeout_s = timeout_s

    def call(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(self.timeout_s)


def handle_n_action(event, bridge: Bridge):
    """Storage Commitment request from a modality (we are the SCP)."""
    calling = str(event.assoc.requestor.ae_title).strip()
    if event.action_type != REQUEST_STORAGE_COMMITMENT:
        bridge.service.count_refused("invalid")
        return NO_SUCH_ACTION_TYPE, None
    if _uid(event.request.RequestedSOPInstanceUID) != STORAGE_COMMITMENT_INSTANCE:
        bridge.service.count_refused("invalid")
        return INVALID_OBJECT_INSTANCE, None
    if not bridge.service.may_request(calling):
        log.warning("storage commitment refused: not authorized", extra={"calling_ae": calling})
        bridge.service.count_refused("refused")
        return NOT_AUTHORIZED, None
    try:
        request = parse_request(event.action_information)
    except Exception as exc:  # noqa: BLE001 - undecodable or invalid: the same answer
        log.warning("invalid storage commitment request",
                    extra={"calling_ae": calling, "error": str(exc)})
        bridge.service.count_refused("invalid")
        return INVALID_ARGUMENT_VALUE, None
    try:
        bridge.call(bridge.service.accept_request(calling, request, event.assoc,
                                                  event.message_id))
    except Exception as exc:  # noqa: BLE001 - the job is not recorded: the modality asks again
        log.exception("storage commitment request not recorded",
                  extra={"calling_ae": calling, "error": repr(exc)})
        return RESOURCE_LIMITATION, None
    return SUCCESS, None


def handle_n_event_report(event, bridge: Bridge):
    """The answer to one of our requests (we are the SCU)."""
    calling = str(event.assoc.requestor.ae_title).strip()
    if event.event_type not in (ALL_SUCCESS, SOME_FAILURES):
        return NO_SUCH_EVENT_TYPE, None
    try:
        report = parse_report(event.event_information, event.event_type, calling)
    except Exception as exc:  # noqa: BLE001
        log.warning("invalid storage commitment report",
                    extra={"calling_ae": calling, "error": str(exc)})
        return INVALID_ARGUMENT_VALUE, None
    try:
        return bridge.call(bridge.service.report_received(report)), None
    except Exception as exc:  # noqa: BLE001
        log.error("storage commitment report not recorded", extra={"error": repr(exc)})
        return PROCESSING_FAILURE, None


def handle_dimse_sent(event, bridge: Bridge) -> None:
    """Note when our N-ACTION response has left, so a report on the same association follows it."""
    if type(event.message).__name__ == "N_ACTION_RSP":
        msg_id = event.message.command_set.get("MessageIDBeingRespondedTo")
        bridge.service.n_action_answered(event.assoc, msg_id)


def handle_echo(event) -> int:
    return SUCCESS
