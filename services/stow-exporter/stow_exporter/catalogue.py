"""Where a study's instances are: ``GET /api/v1/studies/{uid}/instances`` of the catalogue,
through the shared ``dicomvault.query.CatalogueClient``."""

from __future__ import annotations

from dicomvault.query import CatalogueClient, CatalogueUnavailable, InstanceLocation

__all__ = ["CatalogueClient", "StudyUnknown", "tier_locations"]


class StudyUnknown(LookupError):
    """The catalogue does not know the study."""


async def tier_locations(catalogue: CatalogueClient, study_uid: str,
                         tier: str = "cache") -> list[InstanceLocation]:
    """The study's instances on ``tier``, one location per SOP Instance UID. Raises
    StudyUnknown; CatalogueUnavailable when some instance is not (yet) on ``tier``; the
    client's CatalogueError otherwise."""
    locations = await catalogue.study_instances(study_uid)
    if locations is None:
        raise StudyUnknown(f"study {study_uid} unknown to the catalogue")
    by_sop: dict[str, InstanceLocation] = {}
    for loc in locations:
        if loc.tier == tier:
            by_sop.setdefault(loc.sop_instance_uid, loc)
    missing = {loc.sop_instance_uid for loc in locations} - set(by_sop)
    if missing:
        raise CatalogueUnavailable(
            f"{len(missing)} instance(s) of {study_uid} are not in the {tier} tier")
    return list(by_sop.values())
