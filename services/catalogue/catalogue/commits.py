"""Whether the catalogue can commit: a full disk turns it not-ready, loudly.

When the database cannot write for lack of space (SQLite "database or disk is full",
PostgreSQL SQLSTATE 53100 disk_full, ENOSPC) every event is retried without limit and
nothing is lost, but nothing new becomes visible either. ``CommitHealth`` makes that visible:
one ERROR line when it starts (and an INFO when commits work again), /readyz answers 503 with
the reason meanwhile, and ``dicomvault_catalogue_commit_blocked`` is 1 (alert ``CatalogueCannotCommit``).
"""

from __future__ import annotations

import errno
import logging

from catalogue import metrics

log = logging.getLogger(__name__)

_DISK_FULL_TEXT = ("database or disk is full", "no space left on device", "could not extend file",
                   "disk full")


def is_disk_full(exc: BaseException) -> bool:
    """True when ``exc`` (or what it wraps) says the database ran out of space."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if getattr(exc, "sqlstate", None) == "53100" or getattr(exc, "pgcode", None) == "53100":
            return True
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
            return True
        if any(t in str(exc).lower() for t in _DISK_FULL_TEXT):
            return True
        exc = getattr(exc, "orig", None) or exc.__cause__
    return False


class CommitHealth:
    """The reason the catalogue cannot commit now ('' when it can)."""

    def __init__(self) -> None:
        self.reason = ""

    def failed(self, exc: BaseException) -> None:
        if not is_disk_full(exc):
            return
        metrics.COMMIT_FAILURES.labels("disk_full").inc()
        if not self.reason:
            log.error("catalogue cannot commit: the database's disk is full; events wait "
                      "(nothing is lost) and /readyz is not ready until space is freed",
                      extra={"error": str(exc)[:300]})
        self.reason = f"database cannot commit (disk full): {str(exc)[:200]}"
        metrics.COMMIT_BLOCKED.set(1)

    def succeeded(self) -> None:
        if self.reason:
            log.info("catalogue commits again after a full disk")
            self.reason = ""
            metrics.COMMIT_BLOCKED.set(0)

    def problems(self) -> list[str]:
        return [self.reason] if self.reason else []
