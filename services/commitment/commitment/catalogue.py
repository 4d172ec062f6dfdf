"""What commitment asks the catalogue, as ``Location`` dicts, through the shared
``dicomvault.query.CatalogueClient`` (``POST /api/v1/instances/lookup``,
``GET /api/v1/studies/{uid}[/instances]``). CatalogueUnavailable: try again later."""

from __future__ import annotations

from dicomvault.query import CatalogueClient as _Client
from dicomvault.query import CatalogueUnavailable
from dicomvault.settings import ClientSettings

__all__ = ["CatalogueClient", "CatalogueUnavailable", "Location"]

Location = dict  # an InstanceLocation as JSON, plus optional fields such as "verified"


class CatalogueClient:
    def __init__(self, base_url: str, timeout_s: float = 15.0,
                 client: ClientSettings | None = None) -> None:
        self._api = _Client(base_url, timeout_s, client=client)

    @property
    def http(self):
        """The shared client's HTTP client (CA, token): job adoption reads through it."""
        return self._api.http

    async def close(self) -> None:
        await self._api.close()

    async def lookup(self, sop_uids: list[str]) -> dict[str, list[Location]]:
        """Locations of each of these instances (an instance nobody knows is absent)."""
        wanted = set(sop_uids)
        out: dict[str, list[Location]] = {}
        for loc in await self._api.lookup(sop_uids):
            if loc.sop_instance_uid in wanted:
                out.setdefault(loc.sop_instance_uid, []).append(loc.model_dump())
        return out

    async def study_locations(self, study_uid: str) -> list[Location]:
        """Every location of every instance of a study ([] if the study is unknown)."""
        return [loc.model_dump() for loc in await self._api.study_instances(study_uid) or []]

    async def study_archives(self, study_uid: str) -> list[dict]:
        """Study-level copies on archive tiers (``study_locations`` of GET /api/v1/studies/{uid}:
        tier, archive_id, verified, number_of_instances…); [] if the study is unknown."""
        return [a for a in await self._api.study_copies(study_uid) if a.get("tier") != "cache"]
