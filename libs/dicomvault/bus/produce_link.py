"""ProduceLink: a plaintext broker connection that carries one-record ProduceRequests only.

aiokafka sends a request through a StreamReader, a reader task that wakes on every answer and
decodes it with its generic schema classes, and an ``async_timeout`` per request: ~0.12 ms of
CPU per acknowledged record here, and one more loop turn between the answer and the waiting
publisher. This link is a bare ``asyncio.Protocol``: the request (ProduceRequest v3, the
record batch already built by the caller) is packed with ``struct``, and the answer resolves
its request's future in ``data_received`` itself (~0.07 ms, measured against the embedded
broker; see docs/performance.md).

Only what ``Publisher._produce`` needs: ApiVersions once at connect (the broker must accept
ProduceRequest v3, or the link refuses to open and the publisher keeps aiokafka's path), then
any number of concurrent ProduceRequests, matched to their answers by correlation id. Any
failure (connect, a lost connection, an answer that cannot be parsed) fails the requests in
flight with ``LinkError`` and closes the link; the caller falls back to the producer.
"""

from __future__ import annotations

import asyncio
import struct

API_PRODUCE, PRODUCE_VERSION = 0, 3
API_VERSIONS = 18
ACKS_ALL = -1
MAX_ANSWER_BYTES = 16 * 1024 * 1024  # answers to one-record requests are a few dozen bytes

_I16, _I32 = struct.Struct(">h"), struct.Struct(">i")
_FRAME = struct.Struct(">ii")  # answer size, correlation id
_HEADER = struct.Struct(">ihhi")  # request size, api key, api version, correlation id
_PRODUCE = struct.Struct(">hhii")  # transactional id (null), acks, timeout ms, topic count
_PARTITION = struct.Struct(">iii")  # partition count (1), partition, record bytes length
_PARTITION_ANSWER = struct.Struct(">ihqq")  # partition, error, base offset, log append time
_VERSION_RANGE = struct.Struct(">hhh")  # api key, min, max


class LinkError(ConnectionError):
    """The link cannot carry the request (closed, refused, or an unreadable answer)."""


class Unsupported(LinkError):
    """The broker does not take ProduceRequest v3: no link to it, ever."""


class _Reader:
    """Sequential reads from one answer body; LinkError when it is shorter than announced."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, fmt: struct.Struct) -> tuple:
        if self.pos + fmt.size > len(self.data):
            raise LinkError("truncated answer")
        values = fmt.unpack_from(self.data, self.pos)
        self.pos += fmt.size
        return values

    def text(self) -> str:
        (length,) = self.take(_I16)
        if length < 0 or self.pos + length > len(self.data):
            raise LinkError("bad string in answer")
        value = self.data[self.pos:self.pos + length].decode("utf-8", "replace")
        self.pos += length
        return value


class ProduceLink(asyncio.Protocol):
    def __init__(self, client_id: str) -> None:
        self._client_id = client_id.encode()
        self._transport: asyncio.Transport | None = None
        self._buf = bytearray()
        self._pending: dict[int, asyncio.Future] = {}
        self._next_id = 0
        self.closed = False

    @classmethod
    async def open(cls, host: str, port: int, client_id: str, timeout_s: float) -> ProduceLink:
        """Connect and check that the broker takes ProduceRequest v3; LinkError if not."""
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout_s):
                _transport, link = await loop.create_connection(lambda: cls(client_id),
                                                                host, port)
                try:
                    await link._check_versions()
                except BaseException:
                    link.close()
                    raise
        except LinkError:
            raise
        except (OSError, TimeoutError) as exc:
            raise LinkError(f"cannot open a produce link to {host}:{port}: {exc!r}") from exc
        return link

    async def _check_versions(self) -> None:
        reader = _Reader(await self._request(API_VERSIONS, 0, b""))
        (error,) = reader.take(_I16)
        (count,) = reader.take(_I32)
        if error != 0 or count < 0:
            raise LinkError(f"ApiVersions answered error {error}")
        for _ in range(count):
            key, low, high = reader.take(_VERSION_RANGE)
            if key == API_PRODUCE and low <= PRODUCE_VERSION <= high:
                return
        raise Unsupported(f"the broker does not take ProduceRequest v{PRODUCE_VERSION}")

    # --- requests ---------------------------------------------------------------------------
    async def produce(self, topic: str, partition: int, batch: bytes,
                      timeout_ms: int) -> tuple[int, int]:
        """Send one record batch (acks=all) and return (error code, base offset) from the
        broker's answer for that topic and partition."""
        name = topic.encode()
        body = b"".join((_PRODUCE.pack(-1, ACKS_ALL, timeout_ms, 1), _I16.pack(len(name)), name,
                         _PARTITION.pack(1, partition, len(batch)), batch))
        return _produce_answer(await self._request(API_PRODUCE, PRODUCE_VERSION, body),
                               topic, partition)

    def _request(self, api_key: int, version: int, body: bytes) -> asyncio.Future:
        """Send a request; the future gets the answer's body (after its correlation id)."""
        if self.closed or self._transport is None or self._transport.is_closing():
            raise LinkError("produce link closed")  # (is_closing: lost, not yet told)
        self._next_id = (self._next_id + 1) & 0x7FFFFFFF
        correlation = self._next_id
        head = _HEADER.pack(8 + 2 + len(self._client_id) + len(body), api_key, version,
                            correlation)
        future = asyncio.get_running_loop().create_future()
        self._pending[correlation] = future
        self._transport.write(b"".join((head, _I16.pack(len(self._client_id)), self._client_id,
                                        body)))
        return future

    # --- asyncio.Protocol -------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        buf = self._buf
        buf += data
        pos = 0
        while len(buf) - pos >= 8:
            size, correlation = _FRAME.unpack_from(buf, pos)
            if size < 4 or size > MAX_ANSWER_BYTES:
                self._fail(LinkError(f"answer of {size} bytes"))
                return
            if len(buf) - pos - 4 < size:
                break
            future = self._pending.pop(correlation, None)
            if future is not None and not future.done():  # done: the caller gave up on it
                future.set_result(bytes(buf[pos + 8:pos + 4 + size]))
            pos += 4 + size
        if pos:
            del buf[:pos]

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(LinkError(f"produce link lost: {exc!r}" if exc else "produce link closed"))

    def _fail(self, exc: LinkError) -> None:
        self.closed = True
        pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(exc)
        if self._transport is not None and not self._transport.is_closing():
            self._transport.close()

    def close(self) -> None:
        self._fail(LinkError("produce link closed"))


def _produce_answer(answer: bytes, topic: str, partition: int) -> tuple[int, int]:
    """(error code, base offset) for ``topic``/``partition`` in a ProduceResponse v3 body."""
    reader = _Reader(answer)
    (topics,) = reader.take(_I32)
    for _ in range(max(topics, 0)):
        name = reader.text()
        (count,) = reader.take(_I32)
        for _ in range(max(count, 0)):
            index, error, offset, _append_time = reader.take(_PARTITION_ANSWER)
            if name == topic and index == partition:
                return error, offset
    raise LinkError("the answer does not name the partition sent to")
