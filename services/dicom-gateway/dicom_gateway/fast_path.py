"""Which listener serves an association: the storage fast path or pynetdicom.

pynetdicom's server accepts every connection and hands it to a thread. There,
``FastPath.take`` peeks at the A-ASSOCIATE-RQ without consuming it (MSG_PEEK): if the fast
path can serve all the request proposes (``negotiation.storage_only``), it consumes the PDU
and hands the socket to the node's asyncio loop (``storage_scp.StorageAssociation``);
otherwise it leaves the socket untouched and pynetdicom serves the association as before.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import socket
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor

from dicom_gateway import pdu
from dicom_gateway.ingest import Outcome
from dicom_gateway.negotiation import Negotiator, read_request, storage_only
from dicom_gateway.storage_scp import StorageAssociation, StorageNode
from dicomvault.audit import AuditTrail

log = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 1024 * 1024  # a larger A-ASSOCIATE-RQ is left to pynetdicom


class FastPath:
    """The fast path of one DIMSE node (one process): adopts storage associations."""

    def __init__(self, loop: asyncio.AbstractEventLoop, negotiator: Negotiator,
                 store: Callable[..., Awaitable[Outcome]], ae_title: str, max_associations: int,
                 others_active: Callable[[], int], acse_timeout_s: float,
                 network_timeout_s: float, dimse_timeout_s: float,
                 audit: AuditTrail | None = None, max_dataset_bytes: int = 2 * 1024**3) -> None:
        self.loop = loop
        self.acse_timeout_s = acse_timeout_s
        self.executor = ThreadPoolExecutor(max_workers=max(4, min(max_associations, 64)),
                                           thread_name_prefix="store")
        self.node = StorageNode(negotiator, functools.partial(store, executor=self.executor),
                                ae_title, max_associations, others_active, network_timeout_s,
                                dimse_timeout_s, audit, max_dataset_bytes)

    def take(self, sock: socket.socket, address: tuple) -> bool:
        """Adopt ``sock`` if its association is storage-only; False leaves it to pynetdicom.

        Runs in the connection's own thread (blocking reads, bounded by the ACSE timeout).
        """
        if not isinstance(sock, socket.socket) or hasattr(sock, "cipher"):
            return False  # TLS sockets stay with pynetdicom
        previous = sock.gettimeout()
        try:
            sock.settimeout(self.acse_timeout_s)
            head = sock.recv(6, socket.MSG_PEEK | socket.MSG_WAITALL)
            if not head:  # closed without a word (a port probe): nothing to serve
                sock.close()
                return True
            if len(head) < 6 or head[0] != pdu.ASSOCIATE_RQ:
                return self._decline(sock, previous)
            _kind, length = pdu.HEADER.unpack(head)
            if length > MAX_REQUEST_BYTES:
                return self._decline(sock, previous)
            data = sock.recv(6 + length, socket.MSG_PEEK | socket.MSG_WAITALL)
            if len(data) < 6 + length:
                return self._decline(sock, previous)
            try:
                request = read_request(data)
            except Exception:  # noqa: BLE001 - pynetdicom answers a malformed request itself
                return self._decline(sock, previous)
            if not storage_only(request):
                return self._decline(sock, previous)
            consumed = sock.recv(6 + length, socket.MSG_WAITALL)
            if len(consumed) != 6 + length:
                sock.close()
                return True
        except OSError:
            return self._decline(sock, previous)
        sock.setblocking(False)
        peer = f"{address[0]}:{address[1]}" if isinstance(address, tuple) else str(address)
        try:
            asyncio.run_coroutine_threadsafe(self._adopt(sock, request, peer), self.loop)
        except RuntimeError:  # the node's loop is gone: we are stopping
            sock.close()
        return True

    @staticmethod
    def _decline(sock: socket.socket, previous: float | None) -> bool:
        try:
            sock.settimeout(previous)
        except OSError:
            pass
        return False

    async def _adopt(self, sock: socket.socket, request, peer: str) -> None:
        try:
            await self.loop.connect_accepted_socket(
                lambda: StorageAssociation(self.node, request, peer), sock)
        except OSError as exc:
            log.info("association lost before it started", extra={"peer": peer,
                                                                  "error": repr(exc)})
            sock.close()

    def established(self) -> int:
        """Fast-path associations still running (read from any thread: a snapshot)."""
        return self.node.established()

    def abort_all(self) -> None:
        """Abort every fast-path association (from any thread)."""
        try:
            self.loop.call_soon_threadsafe(self.node.abort_all)
        except RuntimeError:
            pass

    def close(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=False)
