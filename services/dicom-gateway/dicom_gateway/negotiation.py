"""Association negotiation for the storage fast path, with pynetdicom's own PDU codecs and
presentation-context negotiation (so both paths accept and reject exactly alike).

``read_request`` decodes an A-ASSOCIATE-RQ PDU; ``storage_only`` says whether the fast path
may take the association (every proposed abstract syntax a storage SOP class or
Verification, no role selection, no user identity: anything else goes to pynetdicom);
``Negotiator.answer`` returns the A-ASSOCIATE-AC or -RJ bytes and the accepted contexts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pydicom.uid import UID
from pynetdicom import AllStoragePresentationContexts
from pynetdicom.pdu import A_ASSOCIATE_AC, A_ASSOCIATE_RQ
from pynetdicom.pdu_primitives import (
    A_ASSOCIATE,
    ImplementationClassUIDNotification,
    ImplementationVersionNameNotification,
    MaximumLengthNotification,
    SCP_SCU_RoleSelectionNegotiation,
    UserIdentityNegotiation,
)
from pynetdicom.presentation import PresentationContext, negotiate_as_acceptor
from pynetdicom.sop_class import Verification

from dicom_gateway import pdu

APPLICATION_CONTEXT = UID("1.2.840.10008.3.1.1.1")
STORAGE_SOP_CLASSES = frozenset(cx.abstract_syntax for cx in AllStoragePresentationContexts)
FAST_SOP_CLASSES = STORAGE_SOP_CLASSES | {Verification}

# A-ASSOCIATE-RJ (result, source, reason) as PS3.8 Table 9-21 and pynetdicom use them
CALLING_AE_NOT_RECOGNISED = (0x01, 0x01, 0x03)
LOCAL_LIMIT_EXCEEDED = (0x02, 0x03, 0x02)


def read_request(pdu_bytes: bytes) -> A_ASSOCIATE:
    """The A-ASSOCIATE (request) primitive of a whole A-ASSOCIATE-RQ PDU."""
    rq = A_ASSOCIATE_RQ()
    rq.decode(pdu_bytes)
    return rq.to_primitive()


def storage_only(rq: A_ASSOCIATE) -> bool:
    """True when the fast path can serve every part of this request."""
    contexts = rq.presentation_context_definition_list
    if not contexts or any(cx.abstract_syntax not in FAST_SOP_CLASSES for cx in contexts):
        return False
    return not any(isinstance(item, (SCP_SCU_RoleSelectionNegotiation, UserIdentityNegotiation))
                   for item in rq.user_information)


def peer_max_pdu(rq: A_ASSOCIATE) -> int:
    """The requestor's Maximum Length Received (0: unlimited)."""
    for item in rq.user_information:
        if isinstance(item, MaximumLengthNotification):
            return int(item.maximum_length_received or 0)
    return 0


@dataclass
class Answer:
    """What to send back and, when accepted, the contexts by id."""

    pdu: bytes
    accepted: dict[int, PresentationContext] = field(default_factory=dict)
    reject_reason: str = ""  # the metrics label of a rejection


class Negotiator:
    """Our side of the negotiation: supported contexts, AE title checks and limits."""

    def __init__(self, supported: list[PresentationContext], allowed: list[str] | None,
                 max_pdu: int, implementation_uid: str, implementation_version: str) -> None:
        self.supported = supported
        self.allowed = None if allowed is None else {a.strip() for a in allowed}
        self.max_pdu = max_pdu
        self.implementation_uid = implementation_uid
        self.implementation_version = implementation_version

    def answer(self, rq: A_ASSOCIATE, over_limit: bool) -> Answer:
        calling = (rq.calling_ae_title or "").strip()
        if self.allowed is not None and calling not in self.allowed:
            return Answer(pdu.associate_rj(*CALLING_AE_NOT_RECOGNISED),
                          reject_reason="calling_ae_not_recognised")
        if over_limit:
            return Answer(pdu.associate_rj(*LOCAL_LIMIT_EXCEEDED),
                          reject_reason="local_limit_exceeded")
        result, _roles = negotiate_as_acceptor(
            rq.presentation_context_definition_list, self.supported, {})
        ac = A_ASSOCIATE()
        ac.application_context_name = APPLICATION_CONTEXT
        ac.calling_ae_title = rq.calling_ae_title
        ac.called_ae_title = rq.called_ae_title
        ac.result = 0x00
        ac.result_source = 0x01
        ac.presentation_context_definition_results_list = result
        max_len = MaximumLengthNotification()
        max_len.maximum_length_received = self.max_pdu
        impl_uid = ImplementationClassUIDNotification()
        impl_uid.implementation_class_uid = UID(self.implementation_uid)
        impl_version = ImplementationVersionNameNotification()
        impl_version.implementation_version_name = self.implementation_version
        ac.user_information = [max_len, impl_uid, impl_version]
        encoded = A_ASSOCIATE_AC()
        encoded.from_primitive(ac)
        accepted = {int(cx.context_id): cx for cx in result if cx.result == 0x00}
        return Answer(encoded.encode(), accepted)
