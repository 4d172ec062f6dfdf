"""The DIMSE listener: one pynetdicom AE with C-ECHO, C-STORE (every storage SOP class) and
C-FIND (Patient Root, Study Root). With ``reuse_port`` the socket gets SO_REUSEPORT before
bind, so several worker processes can share the port (the kernel spreads connections)."""

from __future__ import annotations

import logging
import socket
import threading
import time

from pydicom import config as pydicom_config
from pynetdicom import AE, AllStoragePresentationContexts, evt
from pynetdicom.sop_class import (
    PatientRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelFind,
    Verification,
)
from pynetdicom.transport import ThreadedAssociationServer

from dicom_gateway import handlers as h
from dicom_gateway.bridge import Bridge
from dicom_gateway.catalogue import CatalogueClient
from dicom_gateway.ingest import Ingest
from dicom_gateway.settings import GatewaySection

log = logging.getLogger(__name__)

TRANSFER_SYNTAXES = [
    "1.2.840.10008.1.2.1",  # Explicit VR Little Endian
    "1.2.840.10008.1.2",  # Implicit VR Little Endian
    "1.2.840.10008.1.2.2",  # Explicit VR Big Endian (retired, still sent by old modalities)
    "1.2.840.10008.1.2.1.99",  # Deflated Explicit VR Little Endian
    "1.2.840.10008.1.2.4.50",  # JPEG Baseline (Process 1)
    "1.2.840.10008.1.2.4.51",  # JPEG Extended (Process 2 & 4)
    "1.2.840.10008.1.2.4.57",  # JPEG Lossless (Process 14)
    "1.2.840.10008.1.2.4.70",  # JPEG Lossless SV1
    "1.2.840.10008.1.2.4.80",  # JPEG-LS Lossless
    "1.2.840.10008.1.2.4.81",  # JPEG-LS Near-Lossless
    "1.2.840.10008.1.2.4.90",  # JPEG 2000 Lossless
    "1.2.840.10008.1.2.4.91",  # JPEG 2000
    "1.2.840.10008.1.2.5",  # RLE Lossless
]
QUERY_SYNTAXES = ["1.2.840.10008.1.2.1", "1.2.840.10008.1.2", "1.2.840.10008.1.2.2"]
# pynetdicom treats an empty require_calling_aet as "anyone": keep an empty allowlist closed.
NOBODY = "-NO-AE-ALLOWED-"


class ReusePortServer(ThreadedAssociationServer):
    """An association server whose socket has SO_REUSEPORT set before bind."""

    def server_bind(self) -> None:
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        super().server_bind()


class Dimse:
    def __init__(self, cfg: GatewaySection, ingest: Ingest, catalogue: CatalogueClient,
                 bridge: Bridge, reuse_port: bool = False) -> None:
        # We validate every value we use ourselves; pydicom's warnings about odd values in a
        # peer's dataset would only be noise (and errors under warnings-as-errors).
        pydicom_config.settings.reading_validation_mode = pydicom_config.IGNORE
        self.cfg = cfg
        self.reuse_port = reuse_port
        ae = AE(ae_title=cfg.ae_title)
        ae.maximum_pdu_size = cfg.max_pdu
        ae.maximum_associations = cfg.max_associations
        ae.acse_timeout = cfg.acse_timeout_s
        ae.dimse_timeout = cfg.dimse_timeout_s
        ae.network_timeout = cfg.network_timeout_s
        for cx in AllStoragePresentationContexts:
            ae.add_supported_context(cx.abstract_syntax, TRANSFER_SYNTAXES)
        ae.add_supported_context(Verification, QUERY_SYNTAXES)
        ae.add_supported_context(PatientRootQueryRetrieveInformationModelFind, QUERY_SYNTAXES)
        ae.add_supported_context(StudyRootQueryRetrieveInformationModelFind, QUERY_SYNTAXES)
        allowed = None
        if cfg.accept_any_calling_ae:
            ae.require_calling_aet = []
        else:
            allowed = [a.strip() for a in cfg.allowed_calling_aes if a.strip()]
            ae.require_calling_aet = allowed or [NOBODY]
        self.ae = ae
        self.handlers = [
            (evt.EVT_C_ECHO, h.handle_echo),
            (evt.EVT_C_STORE, h.handle_store, [ingest]),
            (evt.EVT_C_FIND, h.handle_find, [catalogue, bridge, cfg.ae_title]),
            (evt.EVT_ACCEPTED, h.handle_accepted),
            (evt.EVT_REJECTED, h.handle_rejected, [allowed]),
        ]
        self.server: ThreadedAssociationServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> int:
        """Bind and serve in a thread; return the bound port."""
        server_class = ReusePortServer if self.reuse_port else ThreadedAssociationServer
        self.server = self.ae.make_server((self.cfg.dimse_host, self.cfg.dimse_port),
                                          evt_handlers=self.handlers, server_class=server_class)
        self.ae._servers.append(self.server)  # so that ae.shutdown() also stops it
        self._thread = threading.Thread(target=self.server.serve_forever,
                                        name="dimse-acceptor", daemon=True)
        self._thread.start()
        return self.port

    @property
    def port(self) -> int:
        return self.server.server_address[1] if self.server else 0

    def stop(self, grace_s: float = 5.0) -> None:
        """Stop accepting; let running associations finish for ``grace_s``, then abort them."""
        if self.server is not None:
            self.server.shutdown()
            self.server = None
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline and any(
                a.is_established for a in self._acceptors()):
            time.sleep(0.05)
        for assoc in self._acceptors():
            assoc.abort()

    def _acceptors(self) -> list:
        # active_associations lists every Association thread of the process: keep ours.
        return [a for a in self.ae.active_associations if a.is_acceptor and a.ae is self.ae]
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
