"""The syslog sender against a real rsyslog (Debian): RFC 5424 messages with octet-counted
framing over TCP and TLS arrive whole, parsed as the IHE ATNA profile asks (APP-NAME, MSGID,
facility 10), in order."""

from __future__ import annotations

import time
from pathlib import Path

import trustme

from audit.messages import to_xml
from audit.record import Record
from audit.syslog import SyslogSender, frame
from tests.audit.validate import audit_message, studies
from tests.peers.rsyslog import Rsyslog


def _wait(receiver: Rsyslog, count: int, timeout_s: float = 15.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        got = receiver.messages()
        if len(got) >= count:
            return got
        time.sleep(0.05)
    raise AssertionError(f"rsyslog got {len(receiver.messages())} of {count} messages")


def _frames(n: int) -> list[bytes]:
    out = []
    for i in range(n):
        rec = Record("transferred", "C", 0 if i % 2 == 0 else 8, "2026-12-04T04:00:00.000Z",
                     user_id="CT1", peer_address="127.0.0.1:40112", called_ae="DICOMVAULT",
                     studies=[f"1.2.826.0.1.3680043.8.498.{i + 1}"],
                     sop_classes={"1.2.840.10008.5.1.4.1.1.2": 3 + i})
        out.append(frame(to_xml(rec, "dicomvault"), success=rec.outcome == 0, hostname="pacs1",
                         app_name="dicomvault", msg_id="DICOM+RFC3881"))
    return out


async def test_messages_arrive_over_tcp_and_tls(tmp_path: Path) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    ca_file, cert_file, key_file = (tmp_path / "ca.pem", tmp_path / "cert.pem",
                                    tmp_path / "key.pem")
    ca.cert_pem.write_to_path(str(ca_file))
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    for receiver in (Rsyslog(tmp_path / "tcp"),
                     Rsyslog(tmp_path / "tls", tls=(ca_file, cert_file, key_file))):
        receiver.start()
        sender = SyslogSender(receiver.url, ca_file=ca_file)
        try:
            await sender.send(_frames(3))
            await sender.send(_frames(5)[3:])
            got = _wait(receiver, 5)
        finally:
            await sender.close()
            receiver.stop()
        assert len(got) == 5, receiver.url
        for i, message in enumerate(got):
            # RFC 5424 header as rsyslog parsed it; facility 10 (authpriv); notice or warning
            assert (message.app_name, message.msg_id, message.facility) == (
                "dicomvault", "DICOM+RFC3881", 10), message
            assert message.severity == (5 if i % 2 == 0 else 4), message
            root = audit_message(message.msg)
            assert studies(root) == [f"1.2.826.0.1.3680043.8.498.{i + 1}"]
            assert root.find(".//SOPClass").get("NumberOfInstances") == str(3 + i)


async def test_an_unreachable_receiver_is_an_error(tmp_path: Path) -> None:
    receiver = Rsyslog(tmp_path / "down")  # configured, never started: nobody listens
    sender = SyslogSender(receiver.url, timeout_s=2)
    try:
        await sender.send(_frames(1))
    except OSError as exc:
        assert str(receiver.port) in str(exc)
    else:
        raise AssertionError("a send to nobody succeeded")
    finally:
        await sender.close()
