"""What a destination is given and what it answers, whatever the protocol."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Item:
    """One instance ready to send: its bytes are already in a syntax the destination takes."""

    sop_instance_uid: str
    sop_class_uid: str
    data: bytes
    transfer_syntax_uid: str


@dataclass
class Outcome:
    """Per-instance result of one delivery attempt.

    ``failed`` are final refusals (FailedSOPSequence, 409, 4xx, DIMSE failure status);
    ``retryable`` are instances whose request hit a transient error (5xx, timeout,
    connection refused, association aborted) and may be sent again.
    """

    stored: list[str] = field(default_factory=list)
    warnings: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    retryable: dict[str, str] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)  # metric labels of the failures seen

    def merge(self, other: Outcome) -> None:
        self.stored += other.stored
        self.warnings.update(other.warnings)
        self.failed.update(other.failed)
        self.retryable.update(other.retryable)
        self.reasons += other.reasons
