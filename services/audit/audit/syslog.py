"""RFC 5424 syslog over TCP or TLS with RFC 5425/6587 octet-counted framing (IHE ATNA).

Each audit message is one syslog message: ``<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID
- BOM+XML``, facility 10 (security/authorization), severity notice (5) for a success, warning
(4) for a failure; framed as ``LENGTH SP MESSAGE``. ``SyslogSender.send`` writes a batch and
returns when the bytes are written and drained to the socket; any failure raises OSError and
drops the connection (the next send reconnects). Syslog over TCP has no application-level
acknowledgement: a receiver that dies after it took bytes off the socket may lose them.
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlparse

FACILITY = 10  # security/authorization messages (authpriv)
BOM = b"\xef\xbb\xbf"


def frame(xml: bytes, *, success: bool, hostname: str, app_name: str, msg_id: str,
          when: datetime | None = None) -> bytes:
    """One octet-counted RFC 5424 message carrying ``xml``."""
    pri = FACILITY * 8 + (5 if success else 4)
    stamp = (when or datetime.now(UTC)).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")
    head = f"<{pri}>1 {stamp} {hostname[:255] or '-'} {app_name[:48] or '-'} {os.getpid()} " \
           f"{msg_id[:32] or '-'} - "
    message = head.encode("ascii", "replace") + BOM + xml
    return str(len(message)).encode() + b" " + message


class SyslogSender:
    """A reconnecting client of one receiver: ``tcp://host:port`` or ``tls://host:port``."""

    def __init__(self, url: str, ca_file: Path | None = None, cert_file: Path | None = None,
                 key_file: Path | None = None, timeout_s: float = 10.0) -> None:
        parsed = urlparse(url)
        if parsed.scheme not in ("tcp", "tls") or not parsed.hostname:
            raise ValueError(f"syslog URL must be tcp://host:port or tls://host:port: {url!r}")
        self.host = parsed.hostname
        self.port = parsed.port or (6514 if parsed.scheme == "tls" else 514)
        self.tls: ssl.SSLContext | None = None
        if parsed.scheme == "tls":
            self.tls = ssl.create_default_context(
                cafile=str(ca_file) if ca_file else None)
            if cert_file and key_file:
                self.tls.load_cert_chain(str(cert_file), str(key_file))
        self.timeout_s = timeout_s
        self._writer: asyncio.StreamWriter | None = None
        self._reader: asyncio.StreamReader | None = None

    @property
    def where(self) -> str:
        return f"{'tls' if self.tls else 'tcp'}://{self.host}:{self.port}"

    async def _connect(self) -> asyncio.StreamWriter:
        if self._writer is not None and not self._writer.is_closing() and not (
                self._reader is not None and self._reader.at_eof()):
            return self._writer
        await self.close()
        self._reader, self._writer = await asyncio.wait_for(
            asyncio.open_connection(self.host, self.port, ssl=self.tls,
                                    server_hostname=self.host if self.tls else None),
            timeout=self.timeout_s)
        sock = self._writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return self._writer

    async def send(self, frames: list[bytes]) -> None:
        """Write every frame; OSError (and a closed connection) when that fails."""
        try:
            writer = await self._connect()
            writer.write(b"".join(frames))
            await asyncio.wait_for(writer.drain(), timeout=self.timeout_s)
        except (OSError, TimeoutError, ssl.SSLError) as exc:
            await self.close()
            raise OSError(f"syslog receiver {self.where}: {exc!r}") from exc

    async def close(self) -> None:
        writer, self._writer, self._reader = self._writer, None, None
        if writer is not None:
            writer.close()
            try:
                await asyncio.wait_for(writer.wait_closed(), timeout=2)
            except (OSError, TimeoutError, ssl.SSLError):
                pass
