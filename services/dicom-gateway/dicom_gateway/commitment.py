"""Storage Commitment requests on the gateway's DIMSE port: handed over, verified elsewhere.

A modality configured with the archive's one AE title, host and port sends its N-ACTION
(Storage Commitment Push Model, PS3.4 J.3.2) here. The gateway's handler
(``dimse.handle_n_action``) checks it as the commitment service's own listener does
(``dicomvault.dicom.commitment.check_request``: same statuses) against the gateway's modalities table (``may_request_commitment``), then hands it over as
``CommitmentRequestReceived`` on the studies topic, keyed by the Transaction UID. Success is
answered only once the broker has acknowledged that fact; otherwise 0x0213 (ask again).
The commitment service turns the fact into a COMMIT_SCP job, verifies, and sends the
N-EVENT-REPORT on a new association to the host/port this table gives for the modality.

Why the bus and not the commitment service's HTTP API: the gateway already holds a
publisher and answers C-STOREs on broker acknowledgements (one failure mode, one status);
the fact is in the catalogue's journal like every other; and the gateway needs neither the
commitment service's URL nor its token to take a request.
"""

from __future__ import annotations

from dicom_gateway.modalities import Modalities
from dicomvault.bus import Publisher
from dicomvault.dicom import commitment as sc
from dicomvault.dicom.bridge import Bridge
from dicomvault.events import Event
from dicomvault.events.v1 import commitment_pb2 as cpb

SOURCE = "dicomvault/dicom-gateway"


class CommitmentHandOff:
    """Publishes checked requests for the commitment service (from pynetdicom's threads)."""

    def __init__(self, publisher: Publisher, topic: str, modalities: Modalities, bridge: Bridge,
                 timeout_s: float) -> None:
        self.publisher = publisher
        self.topic = topic
        self.modalities = modalities
        self.bridge = bridge
        self.timeout_s = timeout_s

    def fact(self, calling_ae: str, called_ae: str, peer: str,
             request: sc.CommitRequest) -> Event:
        entry = self.modalities.destination(calling_ae)
        return Event(payload=cpb.CommitmentRequestReceived(
            transaction_uid=request.transaction_uid, calling_ae=calling_ae, called_ae=called_ae,
            instances=[cpb.SopReference(sop_class_uid=r.sop_class_uid,
                                        sop_instance_uid=r.sop_instance_uid)
                       for r in request.refs],
            reply_host=entry.host if entry else "", reply_port=entry.port if entry else 0,
            peer_address=peer, received_by="gateway"), source=SOURCE, subject="")

    def hand_over(self, event: Event, transaction_uid: str) -> None:
        """Publish and wait for the broker's acknowledgement (raises when it does not come)."""
        self.bridge.call(self.publisher.publish(self.topic, event, key=transaction_uid),
                         timeout_s=self.timeout_s)

