"""A pynetdicom modality for what Orthanc cannot play: keeping its association open for the
report, sending malformed requests, listening for reports on its own port."""

from __future__ import annotations

import threading

from pydicom.dataset import Dataset
from pynetdicom import AE, evt
from pynetdicom.sop_class import StorageCommitmentPushModel

WELL_KNOWN = "1.2.840.10008.1.20.1.1"


def request_info(transaction_uid: str | None, pairs: list[tuple[str, str]]) -> Dataset:
    ds = Dataset()
    if transaction_uid:
        ds.TransactionUID = transaction_uid
    items = []
    for cls, inst in pairs:
        item = Dataset()
        item.ReferencedSOPClassUID = cls
        item.ReferencedSOPInstanceUID = inst
        items.append(item)
    ds.ReferencedSOPSequence = items
    return ds


class Modality:
    def __init__(self, ae_title: str) -> None:
        self.ae = AE(ae_title=ae_title)
        self.ae.add_requested_context(StorageCommitmentPushModel)
        self.ae.add_supported_context(StorageCommitmentPushModel, scu_role=True, scp_role=True)
        self.ae.acse_timeout = self.ae.dimse_timeout = self.ae.network_timeout = 30
        self.reports: list[tuple[int, Dataset, str]] = []  # (event type, info, how)
        self.got_report = threading.Event()
        self.server = None

    def _on_report(self, event, how: str):
        self.reports.append((event.event_type, event.event_information, how))
        self.got_report.set()
        return 0x0000, None

    def listen(self, port: int) -> None:
        self.server = self.ae.start_server(("127.0.0.1", port), block=False, evt_handlers=[
            (evt.EVT_N_EVENT_REPORT, self._on_report, ["new association"])])

    def close(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server = None

    def request(self, port: int, info: Dataset, action_type: int = 1,
                wait_report_s: float = 0.0):
        """Send one N-ACTION; optionally keep the association open for the report.

        Returns the N-ACTION status (None if the association was rejected)."""
        assoc = self.ae.associate("127.0.0.1", port, ae_title="DICOMVAULT", evt_handlers=[
            (evt.EVT_N_EVENT_REPORT, self._on_report, ["same association"])])
        if not assoc.is_established:
            return None
        try:
            status, _ = assoc.send_n_action(info, action_type, StorageCommitmentPushModel,
                                            WELL_KNOWN)
            if wait_report_s:
                self.got_report.wait(wait_report_s)
            return status.get("Status") if status else None
        finally:
            assoc.release()
