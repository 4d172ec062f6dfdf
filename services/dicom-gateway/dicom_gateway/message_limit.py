"""How much of one DIMSE message a pynetdicom association may hold: ``gateway.max_dataset_bytes``.

pynetdicom collects every P-DATA fragment of a message in memory (``DIMSEMessage.decode_msg``)
until the last one comes, whatever its size: a peer streaming fragments without end on an
association pynetdicom serves (storage proposed with Query/Retrieve, the TLS port) fills the
worker's memory. ``LimitedDIMSE`` (the ``DIMSEServiceProvider`` of every association the
listener accepts, ``retrieve_scp.RetrieveRequestHandler``) counts the fragments of the message
under way; past the limit it drops them and aborts the association (A-ABORT, service
provider: state machine event 19, what pynetdicom does with a message it cannot decode).
pynetdicom cannot answer a message before its last fragment, so a status, as the storage fast
path gives (``storage_scp``), is not possible here.
"""

from __future__ import annotations

import logging

from pynetdicom.dimse import DIMSEServiceProvider

log = logging.getLogger(__name__)


class LimitedDIMSE(DIMSEServiceProvider):
    """pynetdicom's DIMSE provider with a ceiling on the message it holds (set ``max_bytes``)."""

    max_bytes: int = 2 * 1024**3
    _held: int = 0

    def receive_primitive(self, primitive) -> None:  # runs on the association's DUL thread
        if self.message is None:
            self._held = 0
        self._held += sum(len(value) for _cx, value in primitive.presentation_data_value_list)
        if self._held > self.max_bytes:
            calling = str(self.assoc.requestor.ae_title or "").strip()
            log.warning("DIMSE message over the limit: aborting",
                        extra={"calling_ae": calling, "limit_bytes": self.max_bytes})
            self.message, self._held = None, 0
            self.dul.event_queue.put("Evt19")
            return
        super().receive_primitive(primitive)


def limit(assoc, max_bytes: int) -> None:
    """Make ``assoc``'s DIMSE provider a ``LimitedDIMSE`` holding at most ``max_bytes``."""
    assoc.dimse.__class__ = LimitedDIMSE
    assoc.dimse.max_bytes = max_bytes
