"""Helpers shared by the archivers' tests: a stand-in for the gateway as a C-MOVE destination."""

from __future__ import annotations

import threading

from pynetdicom import AE, StoragePresentationContexts, evt

from dicomvault.bus.broker import free_port

SUCCESS = 0x0000


class GatewayStandIn:
    """A pynetdicom storage SCP standing in for OUR gateway as the C-MOVE destination (until
    the gateway's recall support exists). It keeps the data set bytes exactly as received."""

    def __init__(self, aet: str = "VAULTGW") -> None:
        self.aet, self.port = aet, free_port()
        self.received: dict[str, bytes] = {}
        self._lock = threading.Lock()
        self._server = None

    def _on_store(self, event) -> int:
        with self._lock:
            self.received[str(event.request.AffectedSOPInstanceUID)] = bytes(
                event.encoded_dataset(include_meta=False))
        return SUCCESS

    def start(self) -> GatewayStandIn:
        ae = AE(ae_title=self.aet)
        ae.supported_contexts = StoragePresentationContexts
        self._server = ae.start_server(("127.0.0.1", self.port), block=False,
                                       evt_handlers=[(evt.EVT_C_STORE, self._on_store)])
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
