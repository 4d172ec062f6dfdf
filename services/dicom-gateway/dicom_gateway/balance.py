"""Spreading associations over the DIMSE worker processes: the least busy worker accepts.

With ``workers: N`` the service process owns the listening socket and every worker accepts
from it (one backlog, passed down as an inherited file descriptor). Which worker takes a
connection is decided here, not by the kernel: a DICOM association is long (a CT series is
thousands of C-STOREs on one) and there are few of them, so SO_REUSEPORT's hash of the peer's
address put 3 or 4 of 4 associations on one worker in half of the runs (one core busy, the
other idle).

``LoadTable``: one 32-bit slot per worker in shared memory (a memfd the service creates and
every worker maps), each written only by its own worker: the associations it holds, or
``NOT_ACCEPTING`` while it starts, drains or is dead. ``Balancer``: before accepting, a worker
that holds more associations than the least busy accepting worker waits up to ``defer_s``
(50 ms) for that worker to take the connection (all of them are woken by it; the loser's non-blocking
accept finds nothing and goes back to waiting). A worker that does not take it in time
(busy, stuck) is passed over: the connection is never left waiting longer than ``defer_s``.
"""

from __future__ import annotations

import mmap
import os
import socket
import struct
import threading
import time
import weakref

NOT_ACCEPTING = 0xFFFFFFFF
_SLOT = struct.Struct("=I")


class LoadTable:
    """Associations held per worker, shared by the service process and its workers."""

    def __init__(self, fd: int, slots: int) -> None:
        self.fd = fd
        self.slots = slots
        self._map = mmap.mmap(fd, _SLOT.size * slots)

    @classmethod
    def create(cls, slots: int) -> LoadTable:
        fd = os.memfd_create("dicomvault-dimse-load", 0)  # not close-on-exec: workers map it
        os.ftruncate(fd, _SLOT.size * slots)
        table = cls(fd, slots)
        for i in range(slots):
            table.set(i, NOT_ACCEPTING)
        return table

    def set(self, index: int, value: int) -> None:
        _SLOT.pack_into(self._map, index * _SLOT.size, min(value, NOT_ACCEPTING))

    def get(self, index: int) -> int:
        return _SLOT.unpack_from(self._map, index * _SLOT.size)[0]

    def associations(self, index: int) -> int:
        """What worker ``index`` holds, -1 while it is not accepting (for the metric)."""
        value = self.get(index)
        return -1 if value == NOT_ACCEPTING else value

    def least_other(self, index: int) -> int:
        """The fewest associations held by another accepting worker (NOT_ACCEPTING: none)."""
        return min((self.get(i) for i in range(self.slots) if i != index),
                   default=NOT_ACCEPTING)

    def close(self) -> None:
        self._map.close()
        os.close(self.fd)


class Balancer:
    """One worker's side: counts the connections it accepted that are still open and defers
    to a less busy worker before accepting."""

    def __init__(self, table: LoadTable, index: int, defer_s: float = 0.05) -> None:
        self.table = table
        self.index = index
        self.defer_s = defer_s
        self._open: weakref.WeakSet[socket.socket] = weakref.WeakSet()
        self._lock = threading.Lock()

    def load(self) -> int:
        """Connections this worker accepted that are not closed yet (fast path or pynetdicom:
        both close the accepted socket object when the association ends)."""
        with self._lock:
            return sum(1 for s in list(self._open) if s.fileno() != -1)

    def publish(self) -> None:
        self.table.set(self.index, self.load())

    def accepted(self, sock: socket.socket) -> None:
        with self._lock:
            self._open.add(sock)
        self.publish()

    def wait_turn(self) -> None:
        """Called when a connection is waiting: give a less busy worker the first go."""
        mine = self.load()
        self.table.set(self.index, mine)
        deadline = time.monotonic() + self.defer_s
        while mine > self.table.least_other(self.index) and time.monotonic() < deadline:
            time.sleep(0.002)

    def stop_accepting(self) -> None:
        self.table.set(self.index, NOT_ACCEPTING)


def listening_socket(host: str, port: int, backlog: int = 256) -> socket.socket:
    """The shared DIMSE listener of the service process (workers inherit its descriptor)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.create_server((host, port), family=family, backlog=backlog)
    sock.set_inheritable(True)
    return sock
