"""A raw C-STORE client for fuzzing: the command set is written as given (pynetdicom's own
SCU validates UIDs and would refuse to send the hostile ones) and every request waits a
bounded time for its answer: a status, an A-ABORT, or silence (which is a failure)."""

from __future__ import annotations

import queue
import time
from dataclasses import dataclass
from io import BytesIO

from pydicom import config
from pydicom.dataelem import DataElement
from pynetdicom import AE, evt
from pynetdicom.dimse_messages import C_STORE_RQ
from pynetdicom.dimse_primitives import C_STORE

from tests.peers.hostile import EXPLICIT_LE, SC

# Generous: `make fuzz` runs under `nice -n 19` on a shared machine. Silence still fails: the
# gateway aborts an incomplete message after its dimse_timeout_s (1.5 s here).
ANSWER_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Answer:
    status: int | None  # None: no C-STORE-RSP
    aborted: bool  # the gateway aborted (or closed) the association instead

    @property
    def defined(self) -> bool:
        return self.status is not None or self.aborted


class RawStoreClient:
    """One association to the gateway, re-opened after an abort or release."""

    def __init__(self, port: int, calling_ae: str, called_ae: str) -> None:
        self.port, self.calling_ae, self.called_ae = port, calling_ae, called_ae
        self.ae = AE(ae_title=calling_ae)
        self.ae.acse_timeout = self.ae.network_timeout = 30
        self.ae.dimse_timeout = ANSWER_TIMEOUT_S
        self.ae.add_requested_context(SC, [EXPLICIT_LE])
        self.assoc = None
        self.message_id = 0
        self.answers: queue.Queue[int] = queue.Queue()

    def _received(self, event) -> None:
        """Every message as the DUL thread decodes it, whoever then takes it off the DIMSE
        queue: under load, a reactor that had just passed its checkpoint when we paused it
        took an answer first (once in ~2,500 requests: a "silence" that replayed fine)."""
        status = event.message.command_set.get("Status")
        if status is not None:
            self.answers.put(int(status))

    def _association(self):
        if self.assoc is None or not self.assoc.is_established:
            self.assoc = self.ae.associate("127.0.0.1", self.port, ae_title=self.called_ae,
                                           evt_handlers=[(evt.EVT_DIMSE_RECV, self._received)])
            assert self.assoc.is_established, "the gateway refused the association"
        return self.assoc

    def store(self, dataset: bytes, sop_class: str, sop_instance: str) -> Answer:
        assoc = self._association()
        [cx] = [c for c in assoc.accepted_contexts if c.abstract_syntax == SC]
        self.message_id = self.message_id % 65535 + 1
        req = C_STORE()
        req.MessageID = self.message_id
        req.AffectedSOPClassUID = SC
        req.AffectedSOPInstanceUID = "1.2.3"
        req.Priority = 2
        req.DataSet = BytesIO(dataset)
        msg = C_STORE_RQ()
        msg.primitive_to_message(req)
        for tag, value in ((0x00000002, sop_class), (0x00001000, sop_instance)):
            msg.command_set[tag] = DataElement(tag, "UI", value, validation_mode=config.IGNORE)
        msg.context_id = cx.context_id
        # Pause the association's reactor (as pynetdicom's release() does) so that it does
        # not take our C-STORE-RSP off the queue first.
        while not self.answers.empty():
            self.answers.get_nowait()
        assoc._reactor_checkpoint.clear()
        while not assoc._is_paused and assoc.is_alive():
            time.sleep(0.0001)
        try:
            for pdata in msg.encode_msg(cx.context_id, assoc.dimse.maximum_pdu_size):
                assoc.dul.send_pdu(pdata)
            status = self._answer(assoc)
            assoc.dimse.get_msg(block=False)  # the same answer, queued for the reactor
        finally:
            assoc._reactor_checkpoint.set()
        if status is not None:
            return Answer(status, False)
        # The reactor was paused while we waited: give it a moment to take an A-ABORT that
        # arrived meanwhile off the wire before calling it silence.
        deadline = time.monotonic() + 1.0
        while not (assoc.is_aborted or not assoc.is_alive()) and time.monotonic() < deadline:
            time.sleep(0.01)
        aborted = assoc.is_aborted or not assoc.is_alive()
        if not aborted:  # silence: give up on this association
            assoc.abort()
        self.assoc = None
        return Answer(None, aborted)

    def _answer(self, assoc) -> int | None:
        """The status within ANSWER_TIMEOUT_S; None at once when the association ends."""
        deadline = time.monotonic() + ANSWER_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                return self.answers.get(timeout=0.05)
            except queue.Empty:
                if assoc.is_aborted or not assoc.dul.is_alive():
                    return None
        return None

    def close(self) -> None:
        if self.assoc is not None and self.assoc.is_established:
            self.assoc.release()
        self.ae.shutdown()
