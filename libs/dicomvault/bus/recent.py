"""A bounded memory of the event ids a policy has already applied (at-least-once delivery
redelivers; a policy whose effect is not idempotent by itself asks ``first_time``)."""

from __future__ import annotations

from collections import OrderedDict


class RecentIds:
    def __init__(self, size: int = 10_000) -> None:
        self.size = size
        self._seen: OrderedDict[str, None] = OrderedDict()

    def first_time(self, event_id: str) -> bool:
        """True the first time ``event_id`` is seen (among the last ``size`` ids)."""
        if event_id in self._seen:
            return False
        self._seen[event_id] = None
        while len(self._seen) > self.size:
            self._seen.popitem(last=False)
        return True

    def __contains__(self, event_id: str) -> bool:
        """Whether ``event_id`` was seen (without recording it)."""
        return event_id in self._seen
