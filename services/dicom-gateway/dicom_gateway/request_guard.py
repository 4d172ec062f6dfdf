"""Every DIMSE request on a pynetdicom association gets an answer (issue 13 item 4).

Associations that propose more than storage (Query/Retrieve, Verification with storage, …)
are served by pynetdicom, whose acceptor drops what it cannot serve without a word: in
``Association._serve_request`` (pynetdicom 3.0) a request whose required parameters are
missing is only logged ("Received unexpected C-STORE service message") — an empty Affected
SOP Class or Instance UID decodes to None, so ``is_valid_request`` is False — and the
modality waits for its own timeout. A SOP class with no pynetdicom service class made it
A-ABORT; one of another presentation context reached the handler.

``answer_refused`` runs first in our association class (``retrieve_scp.RetrieveAssociation``)
and answers those requests the way the storage fast path does:
- a request without a Message ID cannot be answered: A-ABORT at once;
- an Affected (or Requested) SOP Class UID that is missing or not the presentation
  context's: 0x0122 SOP Class Not Supported;
- a missing data set or identifier: 0xC000; any other missing parameter (Affected SOP
  Instance UID, Priority, Move Destination): 0xA900 — each with an Error Comment.

A command set pynetdicom cannot even convert (a UID over 64 characters) fails earlier, in
``DIMSEServiceProvider.receive_primitive`` on the DUL thread; pynetdicom then A-ABORTs the
association at once (state machine event 19), which the modality notices immediately.
"""

from __future__ import annotations

import logging

from pynetdicom.association import Association
from pynetdicom.dimse_primitives import C_CANCEL, C_FIND, C_GET, C_MOVE, C_STORE

from dicom_gateway import metrics
from dicom_gateway import statuses as st

log = logging.getLogger(__name__)

_PAYLOAD = {"DataSet", "Identifier", "ActionInformation", "EventInformation",
            "ModificationList", "AttributeList"}
_CLASS = ("AffectedSOPClassUID", "RequestedSOPClassUID")


def answer_refused(assoc: Association, msg, context_id: int) -> bool:
    """Answer (or abort) a request pynetdicom would leave unanswered; True if it did."""
    context = assoc._accepted_cx.get(context_id)
    if context is None or assoc._sent_release or isinstance(msg, C_CANCEL) \
            or getattr(msg, "MessageIDBeingRespondedTo", None) is not None:
        return False  # pynetdicom aborts (unknown context) or ignores (responses, cancels)
    if msg.MessageID is None:
        log.warning("DIMSE request without a Message ID: aborting",
                    extra={"request": msg.msg_type, "calling_ae": _calling(assoc)})
        assoc.abort()
        return True
    refusal = _refusal(msg, str(context.abstract_syntax))
    if refusal is None:
        return False
    status, comment = refusal
    if isinstance(msg, C_STORE):
        metrics.CSTORE_REQUESTS.labels(st.label(status)).inc()
    log.warning("DIMSE request refused", extra={
        "request": msg.msg_type, "status": st.label(status), "reason": comment,
        "calling_ae": _calling(assoc)})
    rsp = type(msg)()
    rsp.MessageIDBeingRespondedTo = msg.MessageID
    if hasattr(rsp, "AffectedSOPClassUID"):
        rsp.AffectedSOPClassUID = _class_uid(msg) or None
    if isinstance(msg, C_STORE) and msg.AffectedSOPInstanceUID:
        rsp.AffectedSOPInstanceUID = msg.AffectedSOPInstanceUID
    rsp.Status = status
    rsp.ErrorComment = comment[:64]
    assoc.dimse.send_msg(rsp, context_id)
    return True


def _refusal(msg, abstract_syntax: str) -> tuple[int, str] | None:
    sop_class = _class_uid(msg)
    if not sop_class:
        return st.SOP_CLASS_NOT_SUPPORTED, "SOP Class UID is missing"
    if sop_class != abstract_syntax:
        return st.SOP_CLASS_NOT_SUPPORTED, "SOP Class UID is not the presentation context's"
    missing = [k for k in msg.REQUEST_KEYWORDS if getattr(msg, k) is None and k not in _CLASS]
    if not missing:
        return None
    if missing[0] in _PAYLOAD:
        return st.CANNOT_UNDERSTAND, f"{missing[0]} is missing"
    # DIMSE-C services name 0xA900 ("does not match SOP Class") for this; DIMSE-N ones
    # 0x0115 "invalid argument value" (PS3.7 C.4)
    return (st.DATASET_DOES_NOT_MATCH if isinstance(msg, (C_STORE, C_FIND, C_MOVE, C_GET))
            else st.INVALID_ARGUMENT), f"{missing[0]} is missing or invalid"


def _class_uid(msg) -> str:
    for keyword in _CLASS:
        value = getattr(msg, keyword, None)
        if value:
            return str(value)
    return ""


def _calling(assoc: Association) -> str:
    return assoc.requestor.ae_title.strip()
