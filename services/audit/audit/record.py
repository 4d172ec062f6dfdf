"""One audit message before it is XML: what happened, who did it, to which study."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime


@dataclass
class Record:
    """The fields of one DICOM audit message (PS3.15 A.5.3); ``event`` names its kind."""

    event: str                   # a key of messages.EVENTS: "transferred", "query", …
    action: str                  # EventActionCode: C, R, U, D, E
    outcome: int                 # EventOutcomeIndicator: 0, 4, 8, 12
    time: str                    # EventDateTime, ISO 8601 UTC
    user_id: str = ""            # the requestor: calling AE title, token subject, application
    peer_address: str = ""       # host[:port] of the requestor
    calling_ae: str = ""
    called_ae: str = ""          # our AE title (or the application) on the other side
    destination: str = ""        # where instances went (sent, exported, moved)
    studies: list[str] = field(default_factory=list)
    patient_id: str = ""
    sop_classes: dict[str, int] = field(default_factory=dict)  # SOP Class UID -> instances
    event_type: str = ""         # a key of messages.EVENT_TYPES: "start", "stop", "login", …
    query: str = ""              # base64 of the query (Query)
    query_sop_class: str = ""    # the query's information model
    service: str = ""            # C-FIND, QIDO-RS, …
    description: str = ""        # EventOutcomeDescription: our own words
    application: str = ""        # the service that saw it

    @property
    def instances(self) -> int:
        return sum(self.sop_classes.values())

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Record:
        return cls(**json.loads(text))


def iso(moment: datetime) -> str:
    """EventDateTime: UTC with milliseconds and Z."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
