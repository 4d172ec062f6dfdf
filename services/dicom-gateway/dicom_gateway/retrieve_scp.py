"""The DIMSE side of C-MOVE and C-GET: decode the request, run the handler, send its responses.

pynetdicom's own Query/Retrieve SCP would C-STORE *decoded* datasets it re-encodes and keeps
its own counts; the gateway sends the stored bytes as they are, waits for recalls while
sending Pending responses and says why instances failed. So the association threads of our
listener are ``RetrieveAssociation``s: C-MOVE and C-GET requests go to ``dimse.handle_move``
/ ``handle_get`` (bound per server, like evt_handlers), everything else to pynetdicom as usual.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from io import BytesIO

from pydicom.dataset import Dataset
from pynetdicom.association import Association
from pynetdicom.dimse_primitives import C_GET, C_MOVE
from pynetdicom.dsutils import decode, encode
from pynetdicom.transport import RequestHandler

from dicom_gateway import statuses as st
from dicom_gateway.message_limit import LimitedDIMSE, limit
from dicom_gateway.request_guard import answer_refused
from dicom_gateway.retrieve import Response, RetrieveEvent

log = logging.getLogger(__name__)

Handler = Callable[[RetrieveEvent], Iterator[Response]]


class RetrieveAssociation(Association):
    """An acceptor association whose C-MOVE / C-GET requests go to the gateway's handlers."""

    def _serve_request(self, msg, context_id: int) -> None:
        if answer_refused(self, msg, context_id):  # what pynetdicom would leave unanswered
            return
        handlers: dict[type, Handler] = getattr(self._server, "retrieve_handlers", {})
        handler = handlers.get(type(msg))
        context = self._accepted_cx.get(context_id)
        if handler is None or context is None or self._sent_release \
                or not msg.is_valid_request:
            super()._serve_request(msg, context_id)  # pynetdicom's own answer (or abort)
            return
        self.dimse.cancel_req = {}
        self._is_paused = True  # the C-STORE responses of a C-GET are read by send_c_store
        try:
            serve(self, msg, context, handler)
        except Exception:  # noqa: BLE001 - never kill the association thread
            log.exception("retrieve failed unexpectedly")
            if self.is_established:
                send_response(self, msg, context, Response(
                    st.PROCESSING_FAILURE, comment="unexpected gateway error"))
        finally:
            self._is_paused = False
            self.dimse.cancel_req = {}


class RetrieveRequestHandler(RequestHandler):
    """Makes every accepted association a RetrieveAssociation."""

    def _create_association(self) -> Association:
        assoc = super()._create_association()
        assoc.__class__ = RetrieveAssociation  # same state, one overridden method
        limit(assoc, getattr(self.server, "max_dataset_bytes", LimitedDIMSE.max_bytes))
        return assoc


def serve(assoc: Association, req, context, handler: Handler) -> None:
    ts = context.transfer_syntax[0]
    try:
        identifier = decode(req.Identifier, ts.is_implicit_VR, ts.is_little_endian,
                            ts.is_deflated)
    except Exception:  # noqa: BLE001 - the handler answers "cannot decode"
        identifier = None
    message_id = req.MessageID

    def is_cancelled() -> bool:
        return message_id in assoc.dimse.cancel_req

    event = RetrieveEvent("move" if isinstance(req, C_MOVE) else "get", assoc, req,
                          identifier, is_cancelled)
    for response in handler(event):
        if not assoc.is_established:
            return
        send_response(assoc, req, context, response)
        if response.status != st.PENDING:
            return


def send_response(assoc: Association, req, context, r: Response) -> None:
    rsp = C_MOVE() if isinstance(req, C_MOVE) else C_GET()
    rsp.MessageIDBeingRespondedTo = req.MessageID
    rsp.AffectedSOPClassUID = req.AffectedSOPClassUID
    rsp.Status = r.status
    if r.remaining is not None and r.status in (st.PENDING, st.CANCEL):
        rsp.NumberOfRemainingSuboperations = r.remaining
    for name, value in (("NumberOfCompletedSuboperations", r.completed),
                        ("NumberOfFailedSuboperations", r.failed),
                        ("NumberOfWarningSuboperations", r.warning)):
        if value is not None:
            setattr(rsp, name, value)
    if r.comment and r.status != st.PENDING:
        rsp.ErrorComment = r.comment[:64]
    if r.failed_uids is not None and r.status != st.PENDING:
        ds = Dataset()
        ds.FailedSOPInstanceUIDList = r.failed_uids
        ts = context.transfer_syntax[0]
        rsp.Identifier = BytesIO(encode(ds, ts.is_implicit_VR, ts.is_little_endian,
                                        ts.is_deflated))
    assoc.dimse.send_msg(rsp, context.context_id)
