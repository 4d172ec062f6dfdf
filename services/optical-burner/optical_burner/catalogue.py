"""The catalogue reads this service needs, behind a small protocol so tests and the deletion
check can be given another source of the same facts. The client is the shared
``dicomvault.query.CatalogueClient``; ``CatalogueError`` (unreachable, 5xx, 4xx) means "retry
later" here."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from dicomvault.query import CatalogueClient, CatalogueError, InstanceLocation

__all__ = ["Catalogue", "CatalogueClient", "CatalogueError", "LocationsProvider"]


class Catalogue(Protocol):
    async def instances(self, study_uid: str, tier: str = "cache") -> list[InstanceLocation]: ...
    async def study(self, study_uid: str) -> dict | None: ...


# study uid -> the catalogue's study_locations (tier, archive_id, location, verified, …)
LocationsProvider = Callable[[str], Awaitable[list[dict]]]
