"""The DIMSE handlers of our listener (``listener.py``): N-ACTION (we are SCP),
N-EVENT-REPORT (we are SCU), C-ECHO. Every exit returns a named status; the work happens in
asyncio, reached only through ``Bridge.call`` (the one place that crosses from pynetdicom's
threads), on what the handlers need (``Requests``, ``Reports``).

The N-ACTION checks and their statuses are shared with the gateway's listener
(``dicomvault.dicom.commitment.check_request``; statuses listed there). An AE that is not in
the modalities table never gets this far: its association is rejected, "calling AE title not
recognized". This listener's modalities table is deprecated for requests from modalities
(the gateway's port and table take them); it stays for one release.
"""

from __future__ import annotations

import logging
from typing import Protocol

from dicomvault.dicom.bridge import Bridge
from dicomvault.dicom.commitment import (
    ALL_SUCCESS,
    INVALID_ARGUMENT_VALUE,
    NO_SUCH_EVENT_TYPE,
    PROCESSING_FAILURE,
    RESOURCE_LIMITATION,
    SOME_FAILURES,
    SUCCESS,
    CommitReport,
    CommitRequest,
    check_request,
    parse_report,
)

log = logging.getLogger(__name__)


class Requests(Protocol):
    """What the N-ACTION handlers need from the SCP side (``scp.ScpJobs``)."""

    def may_request(self, calling_ae: str) -> bool:
        """Whether the modalities table lets ``calling_ae`` request storage commitment."""

    def refused(self, outcome: str) -> None:
        """Count a request refused by ``check_request`` (its ``outcome``)."""

    async def accept(self, calling_ae: str, request: CommitRequest, assoc,
                     message_id: int) -> object:
        """Record the request as a job (before the N-ACTION is answered)."""

    def answered(self, assoc, message_id: int | None) -> None:
        """Our N-ACTION response on ``assoc`` has left."""


class Reports(Protocol):
    """What the N-EVENT-REPORT handler needs from the SCU side (``scu.ScuJobs``)."""

    async def report_received(self, report: CommitReport) -> int:
        """Hand a report to the job waiting for it; the status to answer with."""


def handle_n_action(event, bridge: Bridge, requests: Requests):
    """Storage Commitment request from a modality (we are the SCP)."""
    calling = str(event.assoc.requestor.ae_title).strip()
    verdict = check_request(event.action_type, event.request.RequestedSOPInstanceUID,
                            lambda: event.action_information,
                            requests.may_request(calling))
    if verdict.request is None:
        log.warning("storage commitment request refused",
                    extra={"calling_ae": calling, "status": f"0x{verdict.status:04X}",
                           "error": verdict.reason})
        requests.refused(verdict.outcome)
        return verdict.status, None
    try:
        bridge.call(requests.accept(calling, verdict.request, event.assoc, event.message_id))
    except Exception as exc:  # noqa: BLE001 - the job is not recorded: the modality asks again
        log.exception("storage commitment request not recorded",
                      extra={"calling_ae": calling, "error": repr(exc)})
        return RESOURCE_LIMITATION, None
    return SUCCESS, None


def handle_n_event_report(event, bridge: Bridge, reports: Reports):
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
        return bridge.call(reports.report_received(report)), None
    except Exception as exc:  # noqa: BLE001
        log.error("storage commitment report not recorded", extra={"error": repr(exc)})
        return PROCESSING_FAILURE, None


def handle_dimse_sent(event, requests: Requests) -> None:
    """Note when our N-ACTION response has left, so a report on the same association follows it."""
    if type(event.message).__name__ == "N_ACTION_RSP":
        msg_id = event.message.command_set.get("MessageIDBeingRespondedTo")
        requests.answered(event.assoc, msg_id)


def handle_echo(event) -> int:
    return SUCCESS
