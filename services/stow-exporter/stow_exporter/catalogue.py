"""Where a study's instances are: ``GET /api/v1/studies/{uid}/instances`` of the catalogue."""

from __future__ import annotations

import httpx

from dicomvault.query import InstanceLocation


class CatalogueUnavailable(RuntimeError):
    """The catalogue did not answer (retry later)."""


class StudyUnknown(LookupError):
    """The catalogue does not know the study."""


class CatalogueClient:
    def __init__(self, base_url: str, timeout_s: float) -> None:
        self._client = httpx.AsyncClient(base_url=base_url.rstrip("/"), timeout=timeout_s)

    async def close(self) -> None:
        await self._client.aclose()

    async def instances(self, study_uid: str, tier: str = "cache") -> list[InstanceLocation]:
        """The study's instances on ``tier``, one location per SOP Instance UID."""
        try:
            r = await self._client.get(f"/api/v1/studies/{study_uid}/instances")
        except httpx.HTTPError as exc:
            raise CatalogueUnavailable(f"catalogue unreachable: {exc!r}") from exc
        if r.status_code == 404:
            raise StudyUnknown(f"study {study_uid} unknown to the catalogue")
        if r.status_code != 200:
            raise CatalogueUnavailable(f"catalogue answered HTTP {r.status_code}")
        locations = [InstanceLocation.model_validate(x) for x in r.json()]
        by_sop: dict[str, InstanceLocation] = {}
        for loc in locations:
            if loc.tier == tier:
                by_sop.setdefault(loc.sop_instance_uid, loc)
        missing = {loc.sop_instance_uid for loc in locations} - set(by_sop)
        if missing:
            raise CatalogueUnavailable(
                f"{len(missing)} instance(s) of {study_uid} are not in the {tier} tier")
        return list(by_sop.values())
