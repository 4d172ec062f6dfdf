"""Our DIMSE listener: one pynetdicom AE, both roles of the Storage Commitment Push Model and
Verification, serving the handlers of ``dimse.py`` (outgoing operations: ``peers.py``)."""

from __future__ import annotations

from pynetdicom import evt
from pynetdicom.sop_class import StorageCommitmentPushModel, Verification

from commitment import dimse
from commitment.peers import make_ae
from commitment.settings import CommitmentSection
from dicomvault.dicom.bridge import Bridge


class Listener:
    """The AE, its handlers bound to what they need, and its server once started."""

    def __init__(self, cfg: CommitmentSection, bridge: Bridge, requests: dimse.Requests,
                 reports: dimse.Reports) -> None:
        self.cfg = cfg
        self.ae = make_ae(cfg)
        self.ae.add_supported_context(StorageCommitmentPushModel, scu_role=True, scp_role=True)
        self.ae.add_supported_context(Verification)
        known = [ae for ae in cfg.modalities]
        # pynetdicom treats an empty list as "anyone": keep it closed with a title no one has.
        self.ae.require_calling_aet = known or ["-NO-MODALITIES-"]
        self.handlers = [
            (evt.EVT_N_ACTION, dimse.handle_n_action, [bridge, requests]),
            (evt.EVT_N_EVENT_REPORT, dimse.handle_n_event_report, [bridge, reports]),
            (evt.EVT_DIMSE_SENT, dimse.handle_dimse_sent, [requests]),
            (evt.EVT_C_ECHO, dimse.handle_echo),
        ]
        self.server = None

    def start(self) -> int:
        self.server = self.ae.start_server((self.cfg.dimse_host, self.cfg.dimse_port),
                                           block=False, evt_handlers=self.handlers)
        return self.port

    @property
    def port(self) -> int:
        return self.server.server_address[1] if self.server else 0

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server = None
