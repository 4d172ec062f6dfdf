"""pynetdicom handlers of our DIMSE listener: N-ACTION (we are SCP), N-EVENT-REPORT (we are
SCU), C-ECHO. Every exit returns a named status; the work happens in asyncio, reached only
through ``Bridge.call`` (the one place that crosses from pynetdicom's threads).

The N-ACTION checks and their statuses are shared with the gateway's listener
(``dicomvault.dicom.commitment.check_request``; statuses listed there). An AE that is not in
the modalities table never gets this far: its association is rejected, "calling AE title not
recognized". This listener's modalities table is deprecated for requests from modalities
(the gateway's port and table take them); it stays for one release.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from dicomvault.dicom.commitment import (  # noqa: F401 - the service's names for them
    ALL_SUCCESS,
    CLASS_INSTANCE_CONFLICT,
    INVALID_ARGUMENT_VALUE,
    INVALID_OBJECT_INSTANCE,
    NO_SUCH_ACTION_TYPE,
    NO_SUCH_EVENT_TYPE,
    NO_SUCH_OBJECT_INSTANCE,
    NOT_AUTHORIZED,
    PROCESSING_FAILURE,
    REQUEST_STORAGE_COMMITMENT,
    RESOURCE_LIMITATION,
    SOME_FAILURES,
    STORAGE_COMMITMENT_INSTANCE,
    STORAGE_COMMITMENT_PUSH,
    SUCCESS,
    CommitReport,
    CommitRequest,
    FailedRef,
    InvalidRequest,
    SopRef,
    build_report,
    build_request,
    check_request,
    parse_report,
    parse_request,
)

log = logging.getLogger(__name__)


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
    verdict = check_request(event.action_type, event.request.RequestedSOPInstanceUID,
                            lambda: event.action_information,
                            bridge.service.may_request(calling))
    if verdict.request is None:
        log.warning("storage commitment request refused",
                    extra={"calling_ae": calling, "status": f"0x{verdict.status:04X}",
                           "error": verdict.reason})
        bridge.service.count_refused(verdict.outcome)
        return verdict.status, None
    try:
        bridge.call(bridge.service.accept_request(calling, verdict.request, event.assoc,
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
