"""The catalogue reads this service needs, behind a small protocol so tests and the deletion
check can be given another source of the same facts."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

import httpx

from dicomvault.query import InstanceLocation


class CatalogueError(RuntimeError):
    """The catalogue did not answer (retry later)."""


class Catalogue(Protocol):
    async def instances(self, study_uid: str, tier: str = "cache") -> list[InstanceLocation]: ...
    async def study(self, study_uid: str) -> dict | None: ...


# study uid -> the catalogue's study_locations (tier, archive_id, location, verified, …)
LocationsProvider = Callable[[str], Awaitable[list[dict]]]


class CatalogueClient:
    """``GET /api/v1/studies/{uid}`` and ``GET /api/v1/studies/{uid}/instances``."""

    def __init__(self, base_url: str, timeout_s: float = 15.0,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._client = httpx.AsyncClient(base_url=base_url.rstrip("/"), timeout=timeout_s,
                                         transport=transport)

    async def close(self) -> None:
        await self._client.aclose()

    async def _get(self, path: str) -> httpx.Response | None:
        try:
            r = await self._client.get(path)
        except httpx.HTTPError as exc:
            raise CatalogueError(f"catalogue unreachable: {exc!r}") from exc
        if r.status_code == 404:
            return None
        if r.status_code != 200:
            raise CatalogueError(f"catalogue answered {r.status_code}: {r.text[:200]}")
        return r

    async def instances(self, study_uid: str, tier: str = "cache") -> list[InstanceLocation]:
        r = await self._get(f"/api/v1/studies/{study_uid}/instances")
        if r is None:
            return []
        body = r.json()
        items = body.get("instances", []) if isinstance(body, dict) else body
        out = [InstanceLocation.model_validate(i) for i in items]
        return [i for i in out if not tier or i.tier == tier]

    async def study(self, study_uid: str) -> dict | None:
        r = await self._get(f"/api/v1/studies/{study_uid}")
        return None if r is None else r.json()

    async def locations(self, study_uid: str) -> list[dict]:
        """The study's archive locations; a ``LocationsProvider``."""
        summary = await self.study(study_uid)
        return list((summary or {}).get("study_locations") or [])
