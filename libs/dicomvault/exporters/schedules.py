"""dcm4chee schedule expressions: ``hour=18-6 dayOfWeek=*``, ``hour=* dayOfWeek=0,6``.

An expression is one or two space-separated ``field=values`` parts, each field at most once:
``hour`` (0–23) and ``dayOfWeek`` (0–6, 0 = Sunday, as in dcm4chee). A missing field means
``*``. ``values`` is ``*`` or a comma list of numbers and inclusive ranges; a range whose end is
below its start wraps around (``hour=18-6`` is 18:00–06:59). An exporter with several
expressions exports while any of them matches; with none it exports at any time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

_VALUES = r"(\*|\d{1,2}(-\d{1,2})?(,\d{1,2}(-\d{1,2})?)*)"
_PART = rf"(hour|dayOfWeek)={_VALUES}"
PATTERN = rf"^{_PART}( {_PART})?$"
"""The syntax as a regular expression (the CRD carries the same pattern; bounds are checked here)."""

_LIMITS = {"hour": 23, "dayOfWeek": 6}


@dataclass(frozen=True)
class Schedule:
    """A parsed expression: the hours and days of the week (0 = Sunday) it allows."""

    expression: str
    hours: frozenset[int]
    days_of_week: frozenset[int]

    @classmethod
    def parse(cls, expression: str) -> Schedule:
        """Parse ``expression``; raises ValueError naming what is wrong."""
        if not re.match(PATTERN, expression):
            raise ValueError(
                f"schedule {expression!r} is not 'hour=<values> dayOfWeek=<values>' "
                "(values: * or comma-separated numbers and ranges such as 18-6 or 0,6)")
        fields: dict[str, frozenset[int]] = {}
        for part in expression.split(" "):
            name, values = part.split("=", 1)
            if name in fields:
                raise ValueError(f"schedule {expression!r}: {name} is given twice")
            fields[name] = _values(expression, name, values)
        every = {n: frozenset(range(limit + 1)) for n, limit in _LIMITS.items()}
        return cls(expression, fields.get("hour", every["hour"]),
                   fields.get("dayOfWeek", every["dayOfWeek"]))

    def matches(self, when: datetime) -> bool:
        """Whether ``when`` (local time of the archive) falls inside this window."""
        day = (when.weekday() + 1) % 7  # Python: Monday=0; dcm4chee: Sunday=0
        return when.hour in self.hours and day in self.days_of_week


def _values(expression: str, name: str, values: str) -> frozenset[int]:
    limit = _LIMITS[name]
    if values == "*":
        return frozenset(range(limit + 1))
    out: set[int] = set()
    for item in values.split(","):
        lo_s, _, hi_s = item.partition("-")
        lo, hi = int(lo_s), int(hi_s or lo_s)
        for n in (lo, hi):
            if n > limit:
                raise ValueError(f"schedule {expression!r}: {name} {n} is outside 0-{limit}")
        if lo <= hi:
            out.update(range(lo, hi + 1))
        else:  # wraps around: 18-6 is 18..23 and 0..6
            out.update(range(lo, limit + 1))
            out.update(range(0, hi + 1))
    return frozenset(out)


def in_schedule(schedules: list[Schedule], when: datetime) -> bool:
    """True when no schedule is given (always) or any schedule matches ``when``."""
    return not schedules or any(s.matches(when) for s in schedules)
