"""Storage Commitment Push Model (PS3.4 Annex J) datasets and the checks of an N-ACTION.

Both DIMSE listeners that take a modality's request — the gateway's (port 11112) and the
commitment service's own (11113, deprecated for modalities) — answer with the same statuses
because both call ``check_request``; the commitment service also builds and reads reports
with ``build_report`` / ``parse_report``.

N-ACTION statuses (PS3.7 10.1.4.1.10, Annex C), in the order they are checked:
- NO_SUCH_ACTION_TYPE 0x0123: Action Type ID is not 1 (Request Storage Commitment).
- INVALID_OBJECT_INSTANCE 0x0117: Requested SOP Instance is not the well-known instance
  1.2.840.10008.1.20.1.1.
- NOT_AUTHORIZED 0x0124: the calling AE is known but may not request storage commitment.
- INVALID_ARGUMENT_VALUE 0x0115: the Action Information cannot be decoded, Transaction UID is
  missing or not a UID, Referenced SOP Sequence is missing, empty, or an item lacks a valid
  Referenced SOP Class / Instance UID.
- SUCCESS 0x0000 (the caller's, once the request is durably recorded) or
  RESOURCE_LIMITATION 0x0213 when it could not be recorded (broker unreachable).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from pydicom.dataset import Dataset

from dicomvault.store import is_valid_uid

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


@dataclass(frozen=True)
class Verdict:
    """What ``check_request`` decided: a refusal status, or the request to record.

    ``outcome`` is the metrics label: ``invalid``, ``refused`` or ``accepted`` (the caller
    still has to record it); ``reason`` says why, for the log."""

    status: int
    outcome: str
    request: CommitRequest | None = None
    reason: str = ""


def _uid(value: object) -> str:
    return str(value or "").rstrip("\x00 ")


def check_request(action_type: int | None, requested_instance_uid: object,
                  action_information: Callable[[], Dataset], permitted: bool) -> Verdict:
    """The checks of a Storage Commitment N-ACTION, in PS3.7's order (see the module doc).

    ``action_information`` is called only once the cheaper checks passed (pynetdicom decodes
    the dataset when it is read; a decoding error is an invalid argument)."""
    if action_type != REQUEST_STORAGE_COMMITMENT:
        return Verdict(NO_SUCH_ACTION_TYPE, "invalid", reason=f"action type {action_type}")
    if _uid(requested_instance_uid) != STORAGE_COMMITMENT_INSTANCE:
        return Verdict(INVALID_OBJECT_INSTANCE, "invalid",
                       reason=f"requested SOP instance {_uid(requested_instance_uid)!r}")
    if not permitted:
        return Verdict(NOT_AUTHORIZED, "refused", reason="may not request storage commitment")
    try:
        request = parse_request(action_information())
    except Exception as exc:  # noqa: BLE001 - undecodable or invalid: the same answer
        return Verdict(INVALID_ARGUMENT_VALUE, "invalid", reason=str(exc)[:200])
    return Verdict(SUCCESS, "accepted", request)


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
