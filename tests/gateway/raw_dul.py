"""A requestor that writes upper-layer PDUs by hand, to send what a well-behaved SCU never
would (wrong contexts, broken command sets, idle associations). PDUs are encoded with
pynetdicom's codecs and command sets with pydicom, independently of the gateway's own parser.
"""

from __future__ import annotations

import socket
import struct
from io import BytesIO

from pydicom.dataset import Dataset
from pynetdicom.dsutils import decode, encode
from pynetdicom.pdu import A_ASSOCIATE_RQ
from pynetdicom.pdu_primitives import (
    A_ASSOCIATE,
    ImplementationClassUIDNotification,
    MaximumLengthNotification,
)
from pynetdicom.presentation import build_context

EXPLICIT_LE = "1.2.840.10008.1.2.1"


class RawAssociation:
    def __init__(self, port: int, calling_ae: str, called_ae: str,
                 contexts: list[tuple[str, list[str]]]) -> None:
        rq = A_ASSOCIATE()
        rq.application_context_name = "1.2.840.10008.3.1.1.1"
        rq.calling_ae_title = calling_ae
        rq.called_ae_title = called_ae
        items = []
        for i, (abstract, syntaxes) in enumerate(contexts):
            cx = build_context(abstract, syntaxes)
            cx.context_id = 2 * i + 1
            items.append(cx)
        rq.presentation_context_definition_list = items
        max_len = MaximumLengthNotification()
        max_len.maximum_length_received = 16384
        impl = ImplementationClassUIDNotification()
        impl.implementation_class_uid = "1.2.826.0.1.3680043.9.7433.1.1"
        rq.user_information = [max_len, impl]
        pdu = A_ASSOCIATE_RQ()
        pdu.from_primitive(rq)
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock.sendall(pdu.encode())
        self.answer_type, self.answer = self.read_pdu()

    def read_pdu(self) -> tuple[int, bytes]:
        """(type, body) of the next PDU; (0, b"") when the peer closed the connection."""
        head = self._read(6)
        if len(head) < 6:
            return 0, b""
        kind, length = struct.unpack(">BxL", head)
        return kind, self._read(length)

    def _read(self, n: int) -> bytes:
        out = b""
        while len(out) < n:
            chunk = self.sock.recv(n - len(out))
            if not chunk:
                break
            out += chunk
        return out

    def send_pdv(self, context_id: int, control: int, data: bytes) -> None:
        item = struct.pack(">LBB", len(data) + 2, context_id, control) + data
        self.sock.sendall(struct.pack(">BxL", 0x04, len(item)) + item)

    def send_command(self, context_id: int, **elements: object) -> None:
        ds = Dataset()
        for name, value in elements.items():
            setattr(ds, name, value)
        body = encode(ds, True, True)
        ds.CommandGroupLength = len(body)
        self.send_pdv(context_id, 0x03, encode(ds, True, True))

    def response(self) -> Dataset:
        """The next P-DATA-TF, decoded as a command set."""
        kind, body = self.read_pdu()
        assert kind == 0x04, f"expected P-DATA-TF, got PDU type {kind:#04x}"
        length, _cx, control = struct.unpack(">LBB", body[:6])
        assert control & 0x01, "expected a command fragment"
        return decode(BytesIO(body[6:4 + length]), True, True)

    def release(self) -> int:
        self.sock.sendall(struct.pack(">BxL", 0x05, 4) + b"\x00" * 4)
        kind, _ = self.read_pdu()
        return kind

    def close(self) -> None:
        self.sock.close()
