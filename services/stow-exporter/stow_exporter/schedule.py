"""dcm4chee schedule expressions: ``hour=18-6 dayOfWeek=*``, ``hour=* dayOfWeek=0,6``.

Each field is ``*`` or a comma-separated list of values and ranges; a range whose end is
smaller than its start wraps (``hour=18-6`` is 18:00 to 06:59). ``dayOfWeek`` counts from
0 = Sunday. A missing field means every value. A time is inside a list of schedules if it
matches any of them; an empty list means always.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

Clock = Callable[[], datetime]


def local_now() -> datetime:
    return datetime.now().astimezone()


@dataclass(frozen=True, slots=True)
class Schedule:
    text: str
    hours: frozenset[int]
    days: frozenset[int]  # 0 = Sunday

    def matches(self, when: datetime) -> bool:
        return when.hour in self.hours and (when.isoweekday() % 7) in self.days


def _field(text: str, value: str, low: int, high: int) -> frozenset[int]:
    if value.strip() == "*":
        return frozenset(range(low, high + 1))
    out: set[int] = set()
    for part in value.split(","):
        part = part.strip()
        try:
            if "-" in part:
                a, b = (int(x) for x in part.split("-", 1))
            else:
                a = b = int(part)
        except ValueError:
            raise ValueError(f"schedule {text!r}: {part!r} is not a number or range") from None
        if not (low <= a <= high and low <= b <= high):
            raise ValueError(f"schedule {text!r}: {part!r} outside {low}-{high}")
        if a <= b:
            out.update(range(a, b + 1))
        else:  # wraps: 18-6
            out.update(range(a, high + 1))
            out.update(range(low, b + 1))
    return frozenset(out)


def parse_schedule(text: str) -> Schedule:
    fields = {"hour": "*", "dayOfWeek": "*"}
    for token in text.split():
        key, sep, value = token.partition("=")
        if not sep or key not in fields:
            raise ValueError(f"schedule {text!r}: expected hour=… and/or dayOfWeek=…, got {token!r}")
        fields[key] = value
    return Schedule(text, _field(text, fields["hour"], 0, 23),
                    _field(text, fields["dayOfWeek"], 0, 6))


def in_window(schedules: list[Schedule], when: datetime) -> bool:
    return not schedules or any(s.matches(when) for s in schedules)


def next_window(schedules: list[Schedule], when: datetime) -> datetime | None:
    """Start of the next hour inside a window (``when`` itself if inside); None if never."""
    if in_window(schedules, when):
        return when
    t = when.replace(minute=0, second=0, microsecond=0)
    for _ in range(24 * 8):
        t += timedelta(hours=1)
        if in_window(schedules, t):
            return t
    return None
