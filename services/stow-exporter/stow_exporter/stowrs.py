"""STOW-RS delivery with the dcm4chee web-application properties.

- ``chunked``: the multipart body streams with ``Transfer-Encoding: chunked``; otherwise it
  is sent whole with ``Content-Length``.
- ``concurrency``: with 1, the whole study is one request; with N > 1, every instance is its
  own request and at most N are in flight (as dcm4chee's STOW-RS exporter does).
- ``bearer-token`` / ``basic-auth``: read from the Secret files at each request, so a
  rotated Secret is used without a restart.
- TLS: certificates are verified against the system store (plus ``exporter.ca_file``);
  ``allow-any-hostname`` skips only the host-name check, ``disable-trust-manager`` skips
  certificate verification altogether.
"""

from __future__ import annotations

import asyncio
import base64
import ssl
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx

from dicomvault.exporters import WebApplication
from stow_exporter import metrics
from stow_exporter.delivery import Item, Outcome
from stow_exporter.spec import Exporter, SecretNotFoundError, read_secret
from stow_exporter.stowresponse import parse

ACCEPT = "application/dicom+json, application/dicom+xml;q=0.9"
CHUNK = 256 * 1024


def ssl_context(webapp: WebApplication, ca_file: Path | None) -> ssl.SSLContext:
    props = webapp.properties
    ctx = ssl.create_default_context()
    if ca_file is not None:
        ctx.load_verify_locations(cafile=str(ca_file))
    if props.disable_trust_manager:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    elif props.allow_any_hostname:
        ctx.check_hostname = False  # the chain is still verified
    return ctx


def stow_url(base: str) -> str:
    base = base.rstrip("/")
    return base if base.endswith("/studies") else f"{base}/studies"


def _tls_error(exc: BaseException) -> ssl.SSLError | None:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


class StowRsSender:
    """Sends studies to one web application; one instance per exporter."""

    def __init__(self, exporter: Exporter, secrets_dir: Path, *, timeout_s: float,
                 ca_file: Path | None = None) -> None:
        assert exporter.web_application is not None
        self.exporter_id = exporter.exporter_id
        self.webapp = exporter.web_application
        self.props = self.webapp.properties
        self.secrets_dir = secrets_dir
        self.url = stow_url(self.webapp.url)
        self._slots = asyncio.Semaphore(self.props.concurrency)
        verify: ssl.SSLContext | bool = (ssl_context(self.webapp, ca_file)
                                         if self.url.startswith("https://") else True)
        self._client = httpx.AsyncClient(
            verify=verify, timeout=httpx.Timeout(timeout_s),
            limits=httpx.Limits(max_connections=self.props.concurrency,
                                max_keepalive_connections=self.props.concurrency),
        )

    @property
    def destination(self) -> str:
        return self.url

    async def close(self) -> None:
        await self._client.aclose()

    def _auth_header(self) -> str | None:
        if self.props.bearer_token is not None:
            ref = self.props.bearer_token.secret_key_ref
            return "Bearer " + read_secret(self.secrets_dir, ref).strip()
        if self.props.basic_auth is not None:
            b = self.props.basic_auth
            user = read_secret(self.secrets_dir, b.username)
            password = read_secret(self.secrets_dir, b.password)
            token = base64.b64encode(f"{user}:{password}".encode()).decode()
            return f"Basic {token}"
        return None

    async def send(self, items: list[Item]) -> Outcome:
        batches = ([items] if self.props.concurrency == 1 else [[i] for i in items])
        results = await asyncio.gather(*(self._request(b) for b in batches if b))
        total = Outcome()
        for r in results:
            total.merge(r)
        return total

    async def _request(self, items: list[Item]) -> Outcome:
        boundary = uuid.uuid4().hex
        head = [f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()
                for _ in items]
        tail = f"--{boundary}--\r\n".encode()
        headers = {
            "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}',
            "Accept": ACCEPT,
        }
        uids = [i.sop_instance_uid for i in items]
        try:
            auth = self._auth_header()
        except SecretNotFoundError as exc:
            return _all(uids, failed=f"credentials: {exc}", label="auth")
        if auth:
            headers["Authorization"] = auth

        if self.props.chunked:
            async def body() -> AsyncIterator[bytes]:
                for h, item in zip(head, items, strict=True):
                    yield h
                    for off in range(0, len(item.data), CHUNK):
                        yield item.data[off:off + CHUNK]
                    yield b"\r\n"
                yield tail
            content: bytes | AsyncIterator[bytes] = body()
        else:
            content = b"".join(h + i.data + b"\r\n" for h, i in zip(head, items, strict=True))
            content += tail

        async with self._slots:
            gauge = metrics.IN_FLIGHT.labels(self.exporter_id)
            gauge.inc()
            started = time.perf_counter()
            try:
                response = await self._client.post(self.url, content=content, headers=headers)
            except httpx.TimeoutException as exc:
                return _all(uids, retryable=f"timeout: {type(exc).__name__}", label="timeout")
            except httpx.TransportError as exc:
                tls = _tls_error(exc)
                if tls is not None:
                    if isinstance(tls, ssl.SSLCertVerificationError):
                        reason = f"certificate verify failed: {tls.verify_message}"
                    else:
                        reason = tls.reason or str(tls)
                    return _all(uids, failed=f"TLS {reason}", label="tls")
                return _all(uids, retryable=f"connection: {exc!r}", label="connection")
            finally:
                gauge.dec()
                metrics.REQUEST_SECONDS.labels(self.exporter_id).observe(
                    time.perf_counter() - started)
        metrics.SENT_BYTES.labels(self.exporter_id).inc(sum(len(i.data) for i in items))
        return _interpret(response, uids)


def _all(uids: list[str], *, failed: str = "", retryable: str = "", label: str) -> Outcome:
    out = Outcome(reasons=[label])
    for uid in uids:
        if failed:
            out.failed[uid] = failed
        else:
            out.retryable[uid] = retryable
    return out


def _interpret(response: httpx.Response, uids: list[str]) -> Outcome:
    status = response.status_code
    if status >= 500 or status in (408, 429):
        return _all(uids, retryable=f"HTTP {status} {response.reason_phrase}".strip(),
                    label="http_5xx" if status >= 500 else f"http_{status}")
    if status in (401, 403):
        return _all(uids, failed=f"HTTP {status} {response.reason_phrase}: not authorized",
                    label="auth")
    try:
        parsed = parse(response.headers.get("content-type", ""), response.content)
    except ValueError:
        parsed = None
    if status >= 400 and status != 409:
        detail = response.text[:200].strip()
        return _all(uids, failed=f"HTTP {status} {response.reason_phrase} {detail}".strip(),
                    label=f"http_{status}")
    out = Outcome()
    failed = parsed.failed if parsed else {}
    warnings = parsed.warnings if parsed else {}
    for uid in uids:
        if uid in failed:
            out.failed[uid] = failed[uid]
        elif status == 409 and (parsed is None or uid not in parsed.stored):
            out.failed[uid] = "HTTP 409 Conflict"
        else:
            out.stored.append(uid)
            if uid in warnings:
                out.warnings[uid] = warnings[uid]
    if out.failed:
        out.reasons.append("refused" if status != 409 else "conflict")
    return out
