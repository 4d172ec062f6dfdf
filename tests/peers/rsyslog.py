"""A real syslog receiver: rsyslogd from Debian (scripts/install-peers.sh), started by the test
on a free loopback port with its own configuration and work folder: imtcp (RFC 6587/5425
octet-counted framing), every message written to a file as rsyslog parsed it (APP-NAME,
MSGID, facility, severity, MSG), one line each."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from dicomvault.bus.broker import free_port

RSYSLOGD = Path("/usr/sbin/rsyslogd")

CONFIG = """\
global(workDirectory="{work}" maxMessageSize="256k"
       parser.escapeControlCharactersOnReceive="off" {tls_global})
module(load="imtcp" {tls_module})
template(name="fields" type="string"
         string="%app-name%\\t%msgid%\\t%syslogfacility%\\t%syslogseverity%\\t%msg%\\n")
ruleset(name="audit") {{
  action(type="omfile" file="{out}" template="fields" flushOnTXEnd="on" asyncWriting="off")
}}
input(type="imtcp" port="{port}" address="127.0.0.1" ruleset="audit"
      supportOctetCountedFraming="on")
"""


@dataclass
class SyslogMessage:
    app_name: str
    msg_id: str
    facility: int
    severity: int
    msg: str  # the audit XML


class Rsyslog:
    """One rsyslogd process (``-n``: in the foreground, stopped by ``stop``)."""

    def __init__(self, folder: Path, tls: tuple[Path, Path, Path] | None = None) -> None:
        if not RSYSLOGD.exists():
            raise RuntimeError("rsyslogd missing: run `make peers` (apt-get install rsyslog)")
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.out = folder / "audit.log"
        self.config = folder / "rsyslog.conf"
        tls_global = tls_module = ""
        self.tls = tls is not None
        if tls is not None:  # (CA, certificate, key): TLS only, clients not authenticated
            ca, cert, key = tls
            tls_global = (f'defaultNetstreamDriver="gtls" defaultNetstreamDriverCAFile="{ca}" '
                          f'defaultNetstreamDriverCertFile="{cert}" '
                          f'defaultNetstreamDriverKeyFile="{key}"')
            tls_module = ('streamDriver.name="gtls" streamDriver.mode="1" '
                          'streamDriver.authMode="anon"')
        self.config.write_text(CONFIG.format(work=folder, out=self.out, port=self.port,
                                             tls_global=tls_global, tls_module=tls_module))
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"{'tls' if self.tls else 'tcp'}://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 15.0) -> Rsyslog:
        log = open(self.folder / "rsyslogd.out", "ab")  # noqa: SIM115 - closed below
        self.process = subprocess.Popen(
            [str(RSYSLOGD), "-n", "-f", str(self.config), "-i", str(self.folder / "pid")],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"rsyslogd exited ({self.process.returncode}): "
                                   f"{(self.folder / 'rsyslogd.out').read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"rsyslogd did not listen on {self.port}")

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def messages(self) -> list[SyslogMessage]:
        if not self.out.exists():
            return []
        found = []
        for line in self.out.read_text(encoding="utf-8", errors="replace").splitlines():
            parts = line.split("\t", 4)
            if len(parts) == 5:
                found.append(SyslogMessage(parts[0], parts[1], int(parts[2]), int(parts[3]),
                                           parts[4].lstrip("\ufeff").strip()))
        return found
