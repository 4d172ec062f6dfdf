"""What the optical archive refuses: a study it cannot write, and a volume operation its
state forbids (HTTP 409), among them a delete that would lose the only copy of a study."""

from __future__ import annotations


class ArchiveError(RuntimeError):
    """A study cannot be written (not in the cache, changed bytes, instance too large)."""


class InstanceTooLarge(ArchiveError):
    """An instance does not fit an empty medium: retrying cannot help."""


class Conflict(RuntimeError):
    """The volume is not in a state that allows the operation (HTTP 409)."""


class DeleteRefused(Conflict):
    """Deleting would lose the only verified copy of a study."""

    def __init__(self, label: str, studies: list[str]) -> None:
        self.studies = studies
        super().__init__(f"volume {label} holds the only verified copy of "
                         f"{len(studies)} study(ies): {', '.join(studies[:10])}")
