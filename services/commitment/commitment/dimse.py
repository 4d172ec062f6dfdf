"""Our DIMSE side: the listener (one pynetdicom AE, both roles of the Push Model) and the
blocking outgoing operations, which callers run with ``asyncio.to_thread``."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from pydicom import dcmread
from pynetdicom import AE, build_context, evt
from pynetdicom.sop_class import StorageCommitmentPushModel, Verification

from commitment import handlers as h
from commitment.settings import CommitmentSection
from dicomvault.dicom.bridge import Bridge

log = logging.getLogger(__name__)


class DimseError(RuntimeError):
    """The peer could not be reached or did not answer with Success."""


@dataclass(frozen=True)
class Peer:
    ae_title: str
    host: str
    port: int


class Dimse:
    def __init__(self, cfg: CommitmentSection, bridge: Bridge, requests: h.Requests,
                 reports: h.Reports) -> None:
        self.cfg = cfg
        self.ae = self._make_ae()
        self.ae.add_supported_context(StorageCommitmentPushModel, scu_role=True, scp_role=True)
        self.ae.add_supported_context(Verification)
        known = [ae for ae in cfg.modalities]
        # pynetdicom treats an empty list as "anyone": keep it closed with a title no one has.
        self.ae.require_calling_aet = known or ["-NO-MODALITIES-"]
        self.bridge = bridge
        self.requests = requests
        self.reports = reports
        self.server = None

    def _make_ae(self) -> AE:
        ae = AE(ae_title=self.cfg.ae_title)
        ae.acse_timeout = self.cfg.acse_timeout_s
        ae.dimse_timeout = self.cfg.dimse_timeout_s
        ae.network_timeout = self.cfg.network_timeout_s
        return ae

    # --- the listener -------------------------------------------------------------------
    def start(self) -> int:
        b = self.bridge
        self.server = self.ae.start_server(
            (self.cfg.dimse_host, self.cfg.dimse_port), block=False,
            evt_handlers=[(evt.EVT_N_ACTION, h.handle_n_action, [b, self.requests]),
                          (evt.EVT_N_EVENT_REPORT, h.handle_n_event_report, [b, self.reports]),
                          (evt.EVT_DIMSE_SENT, h.handle_dimse_sent, [self.requests]),
                          (evt.EVT_C_ECHO, h.handle_echo)])
        return self.port

    @property
    def port(self) -> int:
        return self.server.server_address[1] if self.server else 0

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server = None

    # --- outgoing (blocking) ------------------------------------------------------------
    def _associate(self, peer: Peer, contexts):
        ae = self._make_ae()
        assoc = ae.associate(peer.host, peer.port, contexts=contexts, ae_title=peer.ae_title)
        if not assoc.is_established:
            raise DimseError(f"association to {peer.ae_title}@{peer.host}:{peer.port} "
                             f"{'rejected' if assoc.is_rejected else 'failed'}")
        return assoc

    def send_report(self, peer: Peer, event_type: int, info) -> None:
        """N-EVENT-REPORT on a new association (we are the SCP reporting to the modality)."""
        assoc = self._associate(peer, [build_context(StorageCommitmentPushModel)])
        try:
            self._report_on(assoc, event_type, info)
        finally:
            assoc.release()

    def send_report_on(self, assoc, event_type: int, info) -> None:
        """N-EVENT-REPORT on the modality's own association, still open."""
        if not assoc.is_established:
            raise DimseError("the requesting association is closed")
        self._report_on(assoc, event_type, info)

    @staticmethod
    def _report_on(assoc, event_type: int, info) -> None:
        status, _reply = assoc.send_n_event_report(
            info, event_type, StorageCommitmentPushModel, h.STORAGE_COMMITMENT_INSTANCE)
        code = status.get("Status") if status else None
        if code is None:
            raise DimseError("no N-EVENT-REPORT response (timeout or abort)")
        if code != h.SUCCESS:
            raise DimseError(f"N-EVENT-REPORT answered 0x{code:04X}")

    def send_request(self, peer: Peer, transaction_uid: str, refs: list[h.SopRef]) -> None:
        """N-ACTION Request Storage Commitment (we are the SCU); the report comes later."""
        assoc = self._associate(peer, [build_context(StorageCommitmentPushModel)])
        try:
            status, _reply = assoc.send_n_action(
                h.build_request(transaction_uid, refs), h.REQUEST_STORAGE_COMMITMENT,
                StorageCommitmentPushModel, h.STORAGE_COMMITMENT_INSTANCE)
            code = status.get("Status") if status else None
            if code is None:
                raise DimseError("no N-ACTION response (timeout or abort)")
            if code != h.SUCCESS:
                raise DimseError(f"N-ACTION answered 0x{code:04X}")
        finally:
            assoc.release()

    def send_files(self, peer: Peer, files: list[Path]) -> list[str]:
        """C-STORE Part 10 files as they are; returns the SOP Instance UIDs that failed."""
        if not files:
            return []
        datasets = [dcmread(f) for f in files]
        pairs = sorted({(str(ds.SOPClassUID), str(ds.file_meta.TransferSyntaxUID))
                        for ds in datasets})
        contexts = [build_context(cls, ts) for cls, ts in pairs][:128]
        assoc = self._associate(peer, contexts)
        failed: list[str] = []
        try:
            for ds in datasets:
                status = assoc.send_c_store(ds)
                code = status.get("Status") if status else None
                if code is None or (code != 0 and not (code & 0xF000) == 0xB000):
                    failed.append(str(ds.SOPInstanceUID))
        finally:
            assoc.release()
        return failed
