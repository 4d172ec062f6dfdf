"""The DIMSE listener: one pynetdicom AE with C-ECHO, C-STORE (every storage SOP class, SCP
and — for C-GET — SCU role), C-FIND, C-MOVE and C-GET (Patient Root, Study Root) and Storage
Commitment Push Model N-ACTION (handed to the commitment service: ``commitment.py``), served
by the handlers of ``dimse.py``, on the DIMSE port and, with ``tls_port``, on a DICOM TLS port with the same handlers. With ``reuse_port``
the sockets get SO_REUSEPORT before bind, so several worker processes can share the ports
(the kernel spreads connections)."""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import socket
import socketserver
import ssl
import threading
import time

from pydicom import config as pydicom_config
from pynetdicom import AE, AllStoragePresentationContexts, _config, evt
from pynetdicom.dimse_primitives import C_GET, C_MOVE
from pynetdicom.sop_class import (
    PatientRootQueryRetrieveInformationModelFind,
    PatientRootQueryRetrieveInformationModelGet,
    PatientRootQueryRetrieveInformationModelMove,
    StorageCommitmentPushModel,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
    Verification,
)
from pynetdicom.transport import ThreadedAssociationServer

from dicom_gateway import dimse
from dicom_gateway.balance import NOT_ACCEPTING, Balancer
from dicom_gateway.commitment import CommitmentHandOff
from dicom_gateway.fast_path import FastPath
from dicom_gateway.ingest import Ingest
from dicom_gateway.modalities import Modalities
from dicom_gateway.negotiation import Negotiator
from dicom_gateway.retrieve import Retriever
from dicom_gateway.retrieve_scp import RetrieveRequestHandler
from dicom_gateway.settings import GatewaySection
from dicomvault.audit import AuditTrail
from dicomvault.dicom.bridge import Bridge
from dicomvault.query import CatalogueClient

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


class FastPathServer(ThreadedAssociationServer):
    """pynetdicom's threaded server, offering each connection to the storage fast path first
    (``fast_path`` is set by ``Listener``; None: pynetdicom serves every association)."""

    fast_path: FastPath | None = None

    def shutdown(self) -> None:
        """Stop accepting without dropping what already connected: pynetdicom's shutdown
        closes the socket with connections still in its backlog (reset, and with workers
        sharing the port they would have been served by another worker)."""
        socketserver.BaseServer.shutdown(self)  # serve_forever has returned
        self.socket.setblocking(False)
        while True:
            try:
                request, client_address = self.get_request()
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                break
            request.setblocking(True)  # as accept() on the listening (blocking) socket gives
            self.process_request(request, client_address)
        self.server_close()
        self.ae._servers.remove(self)

    def process_request_thread(self, request, client_address) -> None:
        # Nagle off: every DIMSE response is a small write that would otherwise wait ~40 ms
        # for the peer's delayed ACK (C-FIND answers: p50 70 -> 23 ms, measured here).
        with contextlib.suppress(OSError, AttributeError):
            request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        fast = self.fast_path
        if fast is not None:
            try:
                if fast.take(request, client_address):
                    return
            except Exception:  # noqa: BLE001 - pynetdicom still serves it
                log.exception("storage fast path failed to take a connection")
        super().process_request_thread(request, client_address)


class SharedListenerServer(FastPathServer):
    """Accepts from the service process's listening socket (``listener_fd``, inherited), which
    every worker shares: the least busy worker takes each connection (``balancer``)."""

    listener_fd: int = -1
    balancer: Balancer | None = None

    def server_bind(self) -> None:
        self.socket.close()
        self.socket = socket.socket(fileno=os.dup(self.listener_fd))
        # Non-blocking: every worker is woken by a connection and only one gets it; the others'
        # accept must come back empty at once, not wait for the next connection.
        self.socket.setblocking(False)
        self.server_address = self.socket.getsockname()

    def server_activate(self) -> None:
        """Already listening (the service process did)."""

    def server_close(self) -> None:
        """Close this worker's descriptor only. pynetdicom's ``server_close`` first calls
        shutdown(SHUT_RDWR), which on a listening socket stops it for every process holding
        it: the other workers' accepts would fail (connection refused)."""
        self.socket.close()

    def get_request(self):
        if self.balancer is not None:
            self.balancer.wait_turn()
        request, address = super().get_request()  # BlockingIOError: another worker took it
        request.setblocking(True)  # as from a blocking listener
        if self.balancer is not None:
            self.balancer.accepted(request)
        return request, address

    def service_actions(self) -> None:
        super().service_actions()
        if self.balancer is not None:
            self.balancer.publish()  # associations that ended since the last accept

    def shutdown(self) -> None:
        """Stop accepting. The backlog is shared: what waits in it is left to the workers that
        go on accepting; the last one to stop takes it along (``FastPathServer.shutdown``)."""
        if self.balancer is None:
            return super().shutdown()
        self.balancer.stop_accepting()
        if self.balancer.table.least_other(self.balancer.index) != NOT_ACCEPTING:
            socketserver.BaseServer.shutdown(self)
            self.server_close()
            self.ae._servers.remove(self)
            return None
        return super().shutdown()


class ReusePortServer(FastPathServer):
    """An association server whose socket has SO_REUSEPORT set before bind."""

    def server_bind(self) -> None:
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        super().server_bind()


def server_tls(cfg: GatewaySection) -> ssl.SSLContext:
    """The TLS listener's context: our certificate; client certificates verified by the CA."""
    if not cfg.tls_cert_file or not cfg.tls_key_file:
        raise ValueError("tls_port needs tls_cert_file and tls_key_file")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(str(cfg.tls_cert_file), str(cfg.tls_key_file))
    if cfg.tls_ca_file:
        ctx.load_verify_locations(str(cfg.tls_ca_file))
    if cfg.tls_require_client_cert:
        if not cfg.tls_ca_file:
            raise ValueError("tls_require_client_cert needs tls_ca_file")
        ctx.verify_mode = ssl.CERT_REQUIRED
    else:
        ctx.verify_mode = ssl.CERT_OPTIONAL if cfg.tls_ca_file else ssl.CERT_NONE
    return ctx


class Listener:
    """The gateway's pynetdicom AE and its association servers (DIMSE port, TLS port),
    with the handlers of ``dimse.py`` bound to what they use."""

    def __init__(self, cfg: GatewaySection, ingest: Ingest, catalogue: CatalogueClient,
                 bridge: Bridge, reuse_port: bool = False,
                 retriever: Retriever | None = None, audit: AuditTrail | None = None,
                 listener_fd: int | None = None, balancer: Balancer | None = None,
                 commitment: CommitmentHandOff | None = None) -> None:
        # We validate every value we use ourselves; pydicom's warnings about odd values in a
        # peer's dataset would only be noise (and errors under warnings-as-errors).
        pydicom_config.settings.reading_validation_mode = pydicom_config.IGNORE
        # C-MOVE/C-GET sub-operations send a cache file's dataset bytes as stored (chunks read
        # from the file), never a decoded and re-encoded copy. Affects only send_c_store(path).
        _config.STORE_SEND_CHUNKED_DATASET = True
        # pynetdicom's "standard" handlers format every PDU and DIMSE message for a DEBUG line
        # whatever the log level, and raise (an ERROR with a traceback per request) on a
        # command whose Affected SOP Class UID is empty: our handlers log what matters.
        _config.LOG_HANDLER_LEVEL = "none"
        self.cfg = cfg
        self.reuse_port = reuse_port
        self.listener_fd = listener_fd
        self.balancer = balancer
        ae = AE(ae_title=cfg.ae_title)
        ae.maximum_pdu_size = cfg.max_pdu
        ae.maximum_associations = cfg.max_associations
        ae.acse_timeout = cfg.acse_timeout_s
        ae.dimse_timeout = cfg.dimse_timeout_s
        ae.network_timeout = cfg.network_timeout_s
        for cx in AllStoragePresentationContexts:
            # SCU role accepted too: a C-GET requester is the storage SCP on its association.
            ae.add_supported_context(cx.abstract_syntax, TRANSFER_SYNTAXES,
                                     scu_role=True, scp_role=True)
        ae.add_supported_context(Verification, QUERY_SYNTAXES)
        for model in (PatientRootQueryRetrieveInformationModelFind,
                      StudyRootQueryRetrieveInformationModelFind,
                      PatientRootQueryRetrieveInformationModelMove,
                      StudyRootQueryRetrieveInformationModelMove,
                      PatientRootQueryRetrieveInformationModelGet,
                      StudyRootQueryRetrieveInformationModelGet):
            ae.add_supported_context(model, QUERY_SYNTAXES)
        if commitment is not None:
            # Never storage-only: such an association goes to pynetdicom (negotiation.py).
            ae.add_supported_context(StorageCommitmentPushModel, QUERY_SYNTAXES,
                                     scu_role=True, scp_role=True)
        modalities = retriever.modalities if retriever is not None else Modalities(cfg)
        allowed = modalities.calling_aes()
        ae.require_calling_aet = [] if allowed is None else (allowed or [NOBODY])
        self.ae = ae
        self.retrieve_handlers = {} if retriever is None else {
            C_MOVE: lambda e: dimse.handle_move(e, retriever, audit),
            C_GET: lambda e: dimse.handle_get(e, retriever, audit)}
        self.handlers = [
            (evt.EVT_C_ECHO, dimse.handle_echo),
            (evt.EVT_C_STORE, dimse.handle_store, [ingest, modalities]),
            (evt.EVT_C_FIND, dimse.handle_find, [catalogue, bridge, cfg.ae_title, modalities,
                                             audit]),
            (evt.EVT_ACCEPTED, dimse.handle_accepted),
            (evt.EVT_REJECTED, dimse.handle_rejected, [allowed, audit]),
        ]
        if commitment is not None:
            self.handlers.append((evt.EVT_N_ACTION, dimse.handle_n_action, [commitment]))
        self.fast_path = FastPath(
            bridge.loop,
            Negotiator(ae.supported_contexts, None if allowed is None else (allowed or [NOBODY]),
                       cfg.max_pdu, ae.implementation_class_uid,
                       ae.implementation_version_name or ""),
            functools.partial(dimse.store_async, ingest=ingest, modalities=modalities),
            cfg.ae_title, cfg.max_associations, lambda: len(self._acceptors()),
            cfg.acse_timeout_s, cfg.network_timeout_s, cfg.dimse_timeout_s, audit,
            max_dataset_bytes=cfg.max_dataset_bytes,
        ) if cfg.fast_storage else None
        self.server: ThreadedAssociationServer | None = None
        self.tls_server: ThreadedAssociationServer | None = None

    def _serve(self, port: int, ssl_context: ssl.SSLContext | None, name: str
               ) -> ThreadedAssociationServer:
        server_class = ReusePortServer if self.reuse_port else FastPathServer
        if ssl_context is None and self.listener_fd is not None:
            server_class = type("SharedListener", (SharedListenerServer,),
                                {"listener_fd": self.listener_fd, "balancer": self.balancer})
        server = self.ae.make_server((self.cfg.dimse_host, port), evt_handlers=self.handlers,
                                     server_class=server_class, ssl_context=ssl_context,
                                     request_handler=RetrieveRequestHandler)
        server.retrieve_handlers = self.retrieve_handlers  # read by RetrieveAssociation
        server.max_dataset_bytes = self.cfg.max_dataset_bytes  # read by RetrieveRequestHandler
        server.fast_path = None if ssl_context is not None else self.fast_path
        self.ae._servers.append(server)  # so that ae.shutdown() also stops it
        threading.Thread(target=server.serve_forever, name=name, daemon=True).start()
        return server

    def start(self) -> int:
        """Bind and serve in threads (DIMSE and, with tls_port, DICOM TLS); return the port."""
        self.server = self._serve(self.cfg.dimse_port, None, "dimse-acceptor")
        if self.cfg.tls_port:
            self.tls_server = self._serve(self.cfg.tls_port, server_tls(self.cfg),
                                          "dimse-tls-acceptor")
        return self.port

    @property
    def port(self) -> int:
        return self.server.server_address[1] if self.server else 0

    def stop(self, grace_s: float = 5.0) -> None:
        """Stop accepting; let running associations finish for ``grace_s``, then abort them."""
        for server in (self.server, self.tls_server):
            if server is not None:
                server.shutdown()
        self.server = self.tls_server = None
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline and (
                any(a.is_established for a in self._acceptors())
                or (self.fast_path is not None and self.fast_path.established())):
            time.sleep(0.05)
        for assoc in self._acceptors():
            assoc.abort()
        if self.fast_path is not None:
            self.fast_path.abort_all()
            self.fast_path.close()

    def _acceptors(self) -> list:
        # active_associations lists every Association thread of the process: keep ours.
        return [a for a in self.ae.active_associations if a.is_acceptor and a.ae is self.ae]
