"""fsync and fdatasync that an asyncio loop awaits instead of blocking on: Linux native AIO.

A C-STORE written on the gateway worker's loop (``Ingest.handle_async``, inline writes) used
to block that loop for its two device flushes (the temp file's ``fdatasync``, the folder's
``fsync``): 0.5 ms over one association, 1.1-1.4 ms with four, during which no other
association of the worker was read, answered or had its acknowledgement handled. Handing
the write to a thread costs more CPU than it saves (GIL and hand-overs: docs/performance.md).

Linux AIO (``io_submit`` with ``IOCB_CMD_FSYNC`` / ``IOCB_CMD_FDSYNC``, kernel 4.18 and newer)
runs the same ``vfs_fsync`` on a kernel worker and signals its completion through an eventfd
the loop watches: the loop serves the other associations meanwhile, and no Python thread is
involved. Only the system calls go through ctypes; the flush is the kernel's own, so the
durability is exactly that of ``os.fsync`` / ``os.fdatasync``.

``AioSync.open()`` returns None where native AIO is missing (another OS, a seccomp profile
that refuses ``io_setup``): callers then flush as before.
"""

from __future__ import annotations

import asyncio
import ctypes
import errno
import logging
import os
import platform

log = logging.getLogger(__name__)

# x86_64 and aarch64 system call numbers (no glibc wrappers for native AIO).
_SYSCALLS = {"x86_64": (206, 207, 208, 209), "aarch64": (0, 1, 4, 2)}
_IOCB_CMD_FSYNC, _IOCB_CMD_FDSYNC = 2, 3
_IOCB_FLAG_RESFD = 1
# Flushes in flight at once per loop (a worker has at most max_associations stores under way,
# 32 by default); more block the loop as without AIO. fs.aio-max-nr is one budget for the
# whole host, shared with every container on it: take little of it.
_DEPTH = 128


class _Iocb(ctypes.Structure):
    _fields_ = [("aio_data", ctypes.c_uint64), ("aio_key", ctypes.c_uint32),
                ("aio_rw_flags", ctypes.c_int32), ("aio_lio_opcode", ctypes.c_uint16),
                ("aio_reqprio", ctypes.c_int16), ("aio_fildes", ctypes.c_uint32),
                ("aio_buf", ctypes.c_uint64), ("aio_nbytes", ctypes.c_uint64),
                ("aio_offset", ctypes.c_int64), ("aio_reserved2", ctypes.c_uint64),
                ("aio_flags", ctypes.c_uint32), ("aio_resfd", ctypes.c_uint32)]


class _Event(ctypes.Structure):
    _fields_ = [("data", ctypes.c_uint64), ("obj", ctypes.c_uint64), ("res", ctypes.c_int64),
                ("res2", ctypes.c_int64)]


class AioSync:
    """One loop's flushes in flight: submit, then await the eventfd's word of completion.

    Use from the loop's own thread only."""

    def __init__(self, loop: asyncio.AbstractEventLoop, libc: ctypes.CDLL, ctx: ctypes.c_ulong,
                 eventfd: int, calls: tuple[int, int, int, int]) -> None:
        self._loop = loop
        self._syscall = libc.syscall
        self._ctx = ctx
        self._efd = eventfd
        self._destroy, self._getevents, self._submit = (ctypes.c_long(n) for n in calls[1:])
        self._pending: dict[int, asyncio.Future] = {}
        self._serial = 0
        self._events = (_Event * 64)()
        # The kernel copies an iocb when it is submitted: one serves every submission.
        self._iocb = _Iocb(aio_flags=_IOCB_FLAG_RESFD, aio_resfd=eventfd)
        self._one = (ctypes.POINTER(_Iocb) * 1)(ctypes.pointer(self._iocb))
        # syscall(2) is variadic: every argument passed at its full width (long).
        self._n1, self._n0 = ctypes.c_long(1), ctypes.c_long(0)
        self._nevents = ctypes.c_long(len(self._events))
        loop.add_reader(eventfd, self._completed)

    @classmethod
    def open(cls, loop: asyncio.AbstractEventLoop) -> AioSync | None:
        """Native AIO for ``loop``, or None where this system has none."""
        calls = _SYSCALLS.get(platform.machine())
        if calls is None or not hasattr(os, "eventfd"):
            return None
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.syscall.restype = ctypes.c_long
            ctx = ctypes.c_ulong(0)
            if libc.syscall(ctypes.c_long(calls[0]), ctypes.c_long(_DEPTH), ctypes.byref(ctx)) != 0:
                # EAGAIN: the host's fs.aio-max-nr is used up (by other containers too).
                log.warning("native AIO unavailable: flushes block the loop",
                            extra={"error": os.strerror(ctypes.get_errno())})
                return None
        except (OSError, AttributeError) as exc:
            log.warning("native AIO unavailable: flushes block the loop",
                        extra={"error": str(exc)})
            return None
        efd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        return cls(loop, libc, ctx, efd, calls)

    async def fsync(self, fd: int, data_only: bool = False) -> None:
        """``os.fdatasync(fd)`` (``data_only``) or ``os.fsync(fd)``, awaited; raises OSError as
        they would. Closing ``fd`` meanwhile (a cancelled caller cleaning up) is safe: the
        kernel holds its own reference to the file until the flush is done."""
        self._serial += 1
        serial = self._serial
        cb = self._iocb
        cb.aio_data = serial
        cb.aio_fildes = fd
        cb.aio_lio_opcode = _IOCB_CMD_FDSYNC if data_only else _IOCB_CMD_FSYNC
        if self._syscall(self._submit, self._ctx, self._n1, self._one) != 1:
            code = ctypes.get_errno()
            if code in (errno.EAGAIN, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
                # No room left in the context, or a file system without AIO flushes: flush
                # here, blocking, as without AIO.
                (os.fdatasync if data_only else os.fsync)(fd)
                return
            raise OSError(code, os.strerror(code))
        done = self._pending[serial] = self._loop.create_future()
        await done  # cancelled: the completion finds the future done and drops it

    def _completed(self) -> None:
        try:
            os.eventfd_read(self._efd)
        except BlockingIOError:
            return
        while True:
            n = self._syscall(self._getevents, self._ctx, self._n0, self._nevents,
                              self._events, None)
            if n <= 0:
                return
            for i in range(n):
                ev = self._events[i]
                done = self._pending.pop(ev.data, None)
                if done is None or done.done():
                    continue
                if ev.res < 0:
                    done.set_exception(OSError(-ev.res, os.strerror(-ev.res)))
                else:
                    done.set_result(None)
            if n < len(self._events):
                return

    def close(self) -> None:
        """Stop watching; flushes still in flight are waited for by io_destroy."""
        if not self._loop.is_closed():
            self._loop.remove_reader(self._efd)
        self._syscall(self._destroy, self._ctx)
        os.close(self._efd)
        for done in self._pending.values():
            if not done.done():
                done.set_exception(OSError(errno.ECANCELED, "AIO context closed"))
        self._pending.clear()
