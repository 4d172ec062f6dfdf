"""The DIMSE operations we start towards peers (blocking: callers run them with
``asyncio.to_thread``): N-EVENT-REPORT to a modality (we are the SCP reporting), N-ACTION to a
remote archive (we are the SCU asking) and C-STORE of cache files (re-sending what it refused)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from pydicom import dcmread
from pynetdicom import AE, build_context
from pynetdicom.sop_class import StorageCommitmentPushModel

from commitment.settings import CommitmentSection
from dicomvault.dicom import commitment as sc

log = logging.getLogger(__name__)


class DimseError(RuntimeError):
    """The peer could not be reached or did not answer with Success."""


@dataclass(frozen=True)
class Peer:
    ae_title: str
    host: str
    port: int


def make_ae(cfg: CommitmentSection) -> AE:
    """An AE with our title and the section's timeouts (the listener's and each outgoing one)."""
    ae = AE(ae_title=cfg.ae_title)
    ae.acse_timeout = cfg.acse_timeout_s
    ae.dimse_timeout = cfg.dimse_timeout_s
    ae.network_timeout = cfg.network_timeout_s
    return ae


class Peers:
    """Outgoing associations, one per operation (or the requester's own, still open)."""

    def __init__(self, cfg: CommitmentSection) -> None:
        self.cfg = cfg

    def _associate(self, peer: Peer, contexts):
        ae = make_ae(self.cfg)
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
            info, event_type, StorageCommitmentPushModel, sc.STORAGE_COMMITMENT_INSTANCE)
        code = status.get("Status") if status else None
        if code is None:
            raise DimseError("no N-EVENT-REPORT response (timeout or abort)")
        if code != sc.SUCCESS:
            raise DimseError(f"N-EVENT-REPORT answered 0x{code:04X}")

    def send_request(self, peer: Peer, transaction_uid: str, refs: list[sc.SopRef]) -> None:
        """N-ACTION Request Storage Commitment (we are the SCU); the report comes later."""
        assoc = self._associate(peer, [build_context(StorageCommitmentPushModel)])
        try:
            status, _reply = assoc.send_n_action(
                sc.build_request(transaction_uid, refs), sc.REQUEST_STORAGE_COMMITMENT,
                StorageCommitmentPushModel, sc.STORAGE_COMMITMENT_INSTANCE)
            code = status.get("Status") if status else None
            if code is None:
                raise DimseError("no N-ACTION response (timeout or abort)")
            if code != sc.SUCCESS:
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
