"""Archive rules: which studies (by their StudyStable fields) go to an archive.

A service's settings list ``Rule`` objects (JSON in an environment variable); its StudyStable
policy takes the first rule that matches with ``matching_rule(rules, study)``. A service may
subclass ``Rule`` to describe ``name`` and ``delay_s`` in its own words (what it records the
name as, what it does after the delay).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

from pydantic import BaseModel, Field

from dicomvault.events.v1 import events_pb2 as ev

__all__ = ["Rule", "matching_rule"]


class Rule(BaseModel):
    """Which studies go to an archive. Empty lists match anything; all given lists must match
    one of the study's values (case-insensitive)."""

    name: str = Field("default", description="Rule name.")
    calling_aes: list[str] = Field(default_factory=list,
                                   description="Any of the study's calling AE titles.")
    station_names: list[str] = Field(default_factory=list,
                                     description="Any of the study's station names.")
    modalities: list[str] = Field(default_factory=list,
                                  description="Any of the study's modalities.")
    delay_s: float = Field(0.0, ge=0, description="Act this long after StudyStable.")

    def matches(self, calling_aes: list[str], stations: list[str], modalities: list[str]) -> bool:
        def hit(wanted: list[str], have: list[str]) -> bool:
            return not wanted or bool({w.upper() for w in wanted} & {h.upper() for h in have})

        return (hit(self.calling_aes, calling_aes) and hit(self.station_names, stations)
                and hit(self.modalities, modalities))


R = TypeVar("R", bound=Rule)


def matching_rule(rules: Iterable[R], study: ev.StudyStable) -> R | None:
    """The first of ``rules`` the StudyStable ``study`` matches, or None."""
    calling_aes, stations, modalities = (list(study.calling_aes), list(study.station_names),
                                         list(study.modalities))
    return next((r for r in rules if r.matches(calling_aes, stations, modalities)), None)
