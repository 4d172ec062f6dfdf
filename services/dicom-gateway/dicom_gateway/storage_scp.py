"""The storage fast path: storage associations served on the node's asyncio loop.

pynetdicom runs every association in two threads that pass each PDU through queues and poll
with a fixed sleep; measured here, a bare pynetdicom storage SCP tops out near half of
Orthanc's rate with small instances, before any durable write. Modalities mostly open
associations that only store, so those are served here instead: the PDUs are parsed as they
arrive on the loop, and each complete C-STORE goes to ``dimse.store_async``: the same
permission check and ``Ingest`` steps as the pynetdicom listener (validation and durable write
on a thread of the node's store pool, then InstanceStored published from the loop and
acknowledged by the broker). The response is written
only after that returns: no Success before the file is durable and the event acknowledged.

What an association may hold here is decided before the first byte is consumed (``FastPath``
in ``fast_path.py`` peeks at the A-ASSOCIATE-RQ): storage SOP classes and Verification only, no
role selection or user identity. Every other association (C-FIND, C-MOVE, C-GET, TLS, …) is
pynetdicom's, unchanged. Protocol errors abort the association (A-ABORT); every C-STORE and
C-ECHO request gets a response with a named status.

What a peer can make an association hold is bounded: a command set (in practice a few hundred
bytes) larger than ``MAX_COMMAND_BYTES`` aborts the association, and a C-STORE data set larger
than ``gateway.max_dataset_bytes`` is read to its end without being kept, then refused with
0xA700 (Out of Resources) and a comment: never a worker's memory filled by one sender.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from pynetdicom.pdu_primitives import A_ASSOCIATE

from dicom_gateway import file_meta, metrics, pdu
from dicom_gateway import statuses as st
from dicom_gateway.ingest import Outcome, StoreRequest
from dicom_gateway.negotiation import Negotiator
from dicomvault.audit import MINOR_FAILURE, Action, AuditTrail
from dicomvault.store.uids import is_valid_uid

log = logging.getLogger(__name__)

MAX_PDU_BYTES = 256 * 1024 * 1024  # with max_pdu 0 ("unlimited"): still no 4 GiB buffers
PAUSE_AT = 2  # complete messages waiting before we stop reading (no async operations)
MAX_COMMAND_BYTES = 64 * 1024  # a command set's elements are UIDs, numbers and a short text


@dataclass
class Message:
    context_id: int
    command: dict[int, bytes]
    dataset: bytes | memoryview | None
    # A C-STORE's Part 10 file (preamble + file meta + ``dataset``) and its SHA-256, when
    # they were built while the data set arrived (``dataset`` is then a view into it).
    part10: bytes | None = None
    sha256: str = ""
    too_large: bool = False  # a data set over the node's limit: read, dropped, refused


class StorageNode:
    """What every fast-path association of one DIMSE node shares."""

    def __init__(self, negotiator: Negotiator,
                 store: Callable[[StoreRequest], Awaitable[Outcome]], ae_title: str,
                 max_associations: int,
                 others_active: Callable[[], int], network_timeout_s: float,
                 dimse_timeout_s: float, audit: AuditTrail | None = None,
                 max_dataset_bytes: int = 2 * 1024**3) -> None:
        self.negotiator = negotiator
        self.max_dataset_bytes = max_dataset_bytes
        self.audit = audit
        self.store = store
        self.ae_title = ae_title
        self.max_associations = max_associations
        self.others_active = others_active  # pynetdicom's acceptors of the same node
        self.network_timeout_s = network_timeout_s
        self.dimse_timeout_s = dimse_timeout_s  # a started message must go on within this
        self.associations: set[StorageAssociation] = set()

    def over_limit(self) -> bool:
        return len(self.associations) + self.others_active() >= self.max_associations

    def established(self) -> int:
        return len(self.associations)  # len() is safe from another thread

    def abort_all(self) -> None:
        for assoc in list(self.associations):
            assoc.abort()


class StorageAssociation(asyncio.Protocol):
    """One storage association, from the A-ASSOCIATE-AC to the release or abort."""

    def __init__(self, node: StorageNode, request: A_ASSOCIATE, peer: str) -> None:
        self.node = node
        self.request = request
        self.peer = peer
        self.calling_ae = (request.calling_ae_title or "").strip()
        self.association_id = uuid.uuid4().hex
        self.transport: asyncio.Transport | None = None
        self.established = False
        self.contexts: dict = {}
        self._buf = bytearray()
        self._command: list[bytes] = []
        self._command_bytes = 0
        self._first_fragment = 0.0
        self._dataset: list[bytes] = []
        self._dataset_bytes = 0  # of the data set under way, counted even once dropped
        self._head = b""  # a C-STORE's preamble + file meta, first of ``_dataset``
        self._hasher = None  # SHA-256 of ``_dataset`` so far, when ``_head`` is set
        self._pending_cmd: tuple[int, dict[int, bytes]] | None = None
        self._queue: asyncio.Queue[Message | None] = asyncio.Queue()
        self._worker: asyncio.Task | None = None
        self._busy = False
        self._last_read = time.monotonic()
        self._timer: asyncio.TimerHandle | None = None
        self._released = False

    # --- asyncio.Protocol -------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        over = self.node.over_limit()
        answer = self.node.negotiator.answer(self.request, over_limit=over)
        transport.write(answer.pdu)  # type: ignore[attr-defined]
        if answer.reject_reason:
            metrics.ASSOCIATIONS.labels("rejected", answer.reject_reason).inc()
            log.warning("association rejected", extra={"calling_ae": self.calling_ae,
                                                       "reason": answer.reject_reason,
                                                       "peer": self.peer})
            if self.node.audit is not None and answer.reject_reason != "local_limit_exceeded":
                self.node.audit.record(
                    Action.ASSOCIATION_REFUSED, outcome=MINOR_FAILURE, user_id=self.calling_ae,
                    peer_address=self.peer, calling_ae=self.calling_ae,
                    called_ae=(self.request.called_ae_title or "").strip(),
                    service="A-ASSOCIATE", description=answer.reject_reason)
            transport.close()
            return
        metrics.ASSOCIATIONS.labels("accepted", "").inc()
        self.contexts = answer.accepted
        self.established = True
        self.node.associations.add(self)
        self._worker = asyncio.get_running_loop().create_task(self._work())
        self._arm_timer()

    def data_received(self, data: bytes) -> None:
        self._last_read = time.monotonic()
        buf = self._buf
        buf += data
        pos = 0
        try:
            while len(buf) - pos >= 6:
                kind, length = pdu.HEADER.unpack_from(buf, pos)
                if length > self._max_pdu_bytes():
                    raise pdu.ProtocolError(f"PDU of {length} bytes over the maximum")
                if len(buf) - pos - 6 < length:
                    break
                body = memoryview(buf)[pos + 6:pos + 6 + length]
                try:
                    self._pdu(kind, body)
                finally:
                    body.release()
                pos += 6 + length
                if self.transport is None or self.transport.is_closing():
                    return
        except pdu.ProtocolError as exc:
            log.warning("DIMSE protocol error: aborting", extra={"calling_ae": self.calling_ae,
                                                                 "error": str(exc)[:200]})
            self.abort()
            return
        if pos:
            del buf[:pos]

    def connection_lost(self, exc: Exception | None) -> None:
        self.established = False
        self.node.associations.discard(self)
        if self._timer is not None:
            self._timer.cancel()
        self._queue.put_nowait(None)  # the worker finishes what it holds, then ends

    # --- PDUs ------------------------------------------------------------------------------
    def _max_pdu_bytes(self) -> int:
        ours = self.node.negotiator.max_pdu
        return min(ours, MAX_PDU_BYTES) if ours else MAX_PDU_BYTES

    def _pdu(self, kind: int, body: memoryview) -> None:
        if kind == pdu.P_DATA_TF:
            if self._released:
                raise pdu.ProtocolError("P-DATA-TF after A-RELEASE-RQ")
            for cx, control, fragment in pdu.pdvs(body):
                self._fragment(cx, control, fragment)
        elif kind == pdu.RELEASE_RQ:
            self._released = True
            self._queue.put_nowait(None)  # answered after every message before it
        elif kind == pdu.ABORT:
            log.info("association aborted by the peer", extra={"calling_ae": self.calling_ae})
            self.established = False
            if self.transport is not None:
                self.transport.close()
        elif kind in (pdu.ASSOCIATE_RQ, pdu.ASSOCIATE_AC, pdu.ASSOCIATE_RJ, pdu.RELEASE_RP):
            raise pdu.ProtocolError(f"unexpected PDU type 0x{kind:02X}")
        else:
            raise pdu.ProtocolError(f"unrecognised PDU type 0x{kind:02X}")

    def _fragment(self, cx: int, control: int, fragment: memoryview) -> None:
        if cx not in self.contexts:
            raise pdu.ProtocolError(f"presentation context {cx} was not accepted")
        is_command, last = bool(control & 0x01), bool(control & 0x02)
        if is_command:
            if self._pending_cmd is not None:
                raise pdu.ProtocolError("a command arrived before the previous dataset")
            if not self._command:
                self._first_fragment = time.perf_counter()
            self._command_bytes += len(fragment)
            if self._command_bytes > MAX_COMMAND_BYTES:
                raise pdu.ProtocolError(f"command set over {MAX_COMMAND_BYTES} bytes")
            self._command.append(bytes(fragment))
            if not last:
                return
            command = pdu.parse_command(b"".join(self._command))
            self._command, self._command_bytes = [], 0
            if pdu.us(command.get(pdu.DATASET_TYPE)) == pdu.NO_DATASET:
                self._enqueue(Message(cx, command, None))
            else:
                self._pending_cmd = (cx, command)
                self._start_part10(cx, command)
            return
        if self._pending_cmd is None or self._pending_cmd[0] != cx:
            raise pdu.ProtocolError("a dataset fragment without its command")
        self._dataset_bytes += len(fragment)
        too_large = self._dataset_bytes > self.node.max_dataset_bytes
        if too_large:
            # Over the limit: what was held goes, the rest is read and dropped; the request
            # is refused when its last fragment arrives (the peer waits for an answer then).
            self._dataset, self._head, self._hasher = [], b"", None
        else:
            self._dataset.append(bytes(fragment))
            if self._hasher is not None:
                self._hasher.update(fragment)
        if last:
            metrics.PHASE["receive"].observe(
                time.perf_counter() - self._first_fragment)
            cmd_cx, command = self._pending_cmd
            data = b"".join(self._dataset)
            if too_large:
                message = Message(cmd_cx, command, b"", too_large=True)
            elif self._hasher is not None:
                message = Message(cmd_cx, command, memoryview(data)[len(self._head):], data,
                                  self._hasher.hexdigest())
            else:
                message = Message(cmd_cx, command, data)
            self._enqueue(message)
            self._pending_cmd, self._dataset, self._head, self._hasher = None, [], b"", None
            self._dataset_bytes = 0

    def _start_part10(self, cx: int, command: dict[int, bytes]) -> None:
        """Before a C-STORE's data set arrives: its file's preamble and file meta go first,
        and the file's SHA-256 is computed fragment by fragment as the data comes (while the
        peer still sends, instead of after), so the data set is copied once, into the file.
        Left to ``_answer`` (built afterwards) when the command's UIDs are not valid: the
        request is refused then anyway."""
        if pdu.us(command.get(pdu.COMMAND_FIELD)) != pdu.C_STORE_RQ:
            return
        sop_class = pdu.text(command.get(pdu.AFFECTED_SOP_CLASS))
        sop_instance = pdu.text(command.get(pdu.AFFECTED_SOP_INSTANCE))
        if not (is_valid_uid(sop_class) and is_valid_uid(sop_instance)):
            return
        negotiator = self.node.negotiator
        self._head = file_meta.encode(sop_class, sop_instance,
                                      str(self.contexts[cx].transfer_syntax[0]),
                                      negotiator.implementation_uid,
                                      negotiator.implementation_version)
        self._dataset = [self._head]
        self._hasher = hashlib.sha256(self._head)

    def _enqueue(self, message: Message) -> None:
        self._queue.put_nowait(message)
        if self._queue.qsize() >= PAUSE_AT and self.transport is not None:
            self.transport.pause_reading()

    # --- messages --------------------------------------------------------------------------
    async def _work(self) -> None:
        while True:
            message = await self._queue.get()
            if message is None:
                break
            self._busy = True
            try:
                reply = await self._answer(message)
            except Exception:  # noqa: BLE001 - the association must not hang on a bug
                log.exception("DIMSE message failed unexpectedly")
                reply = self._reply(message, st.PROCESSING_FAILURE, "unexpected gateway error")
            finally:
                self._busy = False
            transport = self.transport
            if transport is None or transport.is_closing():
                continue  # aborted meanwhile: the effect stands, nobody to tell
            transport.write(pdu.p_data(message.context_id, reply))
            if self._queue.qsize() < PAUSE_AT:
                transport.resume_reading()
        if self._released and self.transport is not None and not self.transport.is_closing():
            self.transport.write(pdu.release_rp())
            self.transport.close()

    async def _answer(self, message: Message) -> bytes:
        command = message.command
        field = pdu.us(command.get(pdu.COMMAND_FIELD))
        context = self.contexts[message.context_id]
        sop_class = pdu.text(command.get(pdu.AFFECTED_SOP_CLASS))
        if field == pdu.C_ECHO_RQ:
            return self._reply(message, st.SUCCESS, sop_class=sop_class or str(
                context.abstract_syntax), response_field=pdu.C_ECHO_RSP)
        if field != pdu.C_STORE_RQ or message.dataset is None:
            return self._reply(message, st.UNRECOGNIZED_OPERATION,
                               "only C-STORE and C-ECHO on this association",
                               response_field=(field or 0) | 0x8000)
        if message.too_large:
            metrics.CSTORE_REQUESTS.labels(st.label(st.OUT_OF_RESOURCES)).inc()
            log.warning("C-STORE data set over the limit: refused",
                        extra={"calling_ae": self.calling_ae,
                               "limit_bytes": self.node.max_dataset_bytes})
            return self._reply(message, st.OUT_OF_RESOURCES,
                               f"data set larger than {self.node.max_dataset_bytes} bytes")
        if sop_class != str(context.abstract_syntax):
            metrics.CSTORE_REQUESTS.labels(st.label(st.SOP_CLASS_NOT_SUPPORTED)).inc()
            return self._reply(message, st.SOP_CLASS_NOT_SUPPORTED,
                               "Affected SOP Class UID is not the presentation context's")
        sop_instance = pdu.text(command.get(pdu.AFFECTED_SOP_INSTANCE))
        transfer_syntax = str(context.transfer_syntax[0])
        dataset, built = message.dataset, message.part10
        request = StoreRequest(
            affected_sop_class_uid=sop_class, affected_sop_instance_uid=sop_instance,
            transfer_syntax_uid=transfer_syntax, dataset=dataset,
            part10=(lambda: built) if built is not None else
            lambda: file_meta.encode(sop_class, sop_instance, transfer_syntax,
                                     self.node.negotiator.implementation_uid,
                                     self.node.negotiator.implementation_version)
            + dataset,
            calling_ae=self.calling_ae, called_ae=self.node.ae_title, received=time.time(),
            peer_address=self.peer, association_id=self.association_id,
            sha256=message.sha256)
        outcome = await self.node.store(request)
        return self._reply(message, outcome.status, outcome.comment)

    def _reply(self, message: Message, status: int, comment: str = "", sop_class: str = "",
               response_field: int = pdu.C_STORE_RSP) -> bytes:
        command = message.command
        # The response's Affected SOP Class/Instance UIDs are optional (PS3.7 C.4.1.1): an
        # invalid one is not echoed, or the peer could not decode the answer to its mistake.
        sop_class = sop_class or pdu.text(command.get(pdu.AFFECTED_SOP_CLASS))
        sop_instance = pdu.text(command.get(pdu.AFFECTED_SOP_INSTANCE))
        return pdu.response(
            response_field, pdu.us(command.get(pdu.MESSAGE_ID)) or 0, status,
            sop_class if is_valid_uid(sop_class) else "",
            sop_instance if is_valid_uid(sop_instance) else "", comment)

    # --- timeouts and aborts ---------------------------------------------------------------
    def _incomplete(self) -> bool:
        return bool(self._command) or self._pending_cmd is not None

    def _arm_timer(self) -> None:
        loop = asyncio.get_running_loop()
        every = min(self.node.network_timeout_s, self.node.dimse_timeout_s) / 4
        self._timer = loop.call_later(max(0.05, every), self._check_idle)

    def _check_idle(self) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        idle = time.monotonic() - self._last_read
        if self._incomplete() and idle >= self.node.dimse_timeout_s:
            # A command whose data set (or rest) never comes: the peer waits for an answer
            # we cannot give; say so now instead of waiting for its own timeout.
            log.warning("DIMSE message left incomplete: aborting",
                        extra={"calling_ae": self.calling_ae, "idle_s": round(idle, 1)})
            self.abort()
            return
        if not self._busy and self._queue.empty() and idle >= self.node.network_timeout_s:
            log.warning("association idle for too long: aborting",
                        extra={"calling_ae": self.calling_ae, "idle_s": round(idle, 1)})
            self.abort()
            return
        self._arm_timer()

    def abort(self) -> None:
        """A-ABORT (service provider) and close."""
        self.established = False
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(pdu.abort())
            self.transport.close()
