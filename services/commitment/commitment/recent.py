"""Recent storage-commitment transactions of this process, for GET /api/v1/commitments.

The durable record is the jobs topic (and StudyCommitted); this is the operator's window on
what is in flight and how recent transactions ended."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime


def _now() -> str:
    return datetime.now(UTC).isoformat()


@dataclass
class Transaction:
    transaction_uid: str
    role: str                    # "scp": a modality asked us; "scu": we asked a remote AE
    remote_ae: str
    job_id: str
    study_instance_uid: str = ""
    # scp: received, reported, report_failed, failed
    # scu: requested, committed, partial, timeout, failed, late
    state: str = ""
    requested: int = 0
    committed: int = 0
    failed: list[dict] = field(default_factory=list)
    message: str = ""
    created: str = field(default_factory=_now)
    updated: str = field(default_factory=_now)


class Recent:
    def __init__(self, size: int) -> None:
        self._size = size
        self._items: OrderedDict[str, Transaction] = OrderedDict()

    def add(self, t: Transaction) -> Transaction:
        self._items[t.transaction_uid] = t
        self._items.move_to_end(t.transaction_uid)
        while len(self._items) > self._size:
            self._items.popitem(last=False)
        return t

    def get(self, transaction_uid: str) -> Transaction | None:
        return self._items.get(transaction_uid)

    def update(self, transaction_uid: str, **changes) -> None:
        t = self._items.get(transaction_uid)
        if t is None:
            return
        for k, v in changes.items():
            setattr(t, k, v)
        t.updated = _now()

    def for_job(self, job_id: str) -> list[Transaction]:
        return [t for t in self._items.values() if t.job_id == job_id]

    def list(self, role: str | None = None, limit: int = 100) -> list[dict]:
        items = [t for t in reversed(self._items.values()) if role in (None, t.role)]
        return [asdict(t) for t in items[:limit]]
