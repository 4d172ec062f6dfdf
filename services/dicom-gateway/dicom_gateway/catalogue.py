"""Client of the catalogue REST API (``dicomvault.query`` contract)."""

from __future__ import annotations

import httpx

from dicomvault.query import (
    FindRequest,
    FindResponse,
    InstanceLocation,
    UnknownRequest,
    UnknownResponse,
)


class CatalogueUnavailable(RuntimeError):
    """The catalogue could not be reached or failed (5xx): ask again later."""


class CatalogueRefused(ValueError):
    """The catalogue refused the request as asked (4xx): the query itself is wrong."""


class CatalogueClient:
    def __init__(self, base_url: str, timeout_s: float = 10.0) -> None:
        self._http = httpx.AsyncClient(base_url=base_url.rstrip("/"), timeout=timeout_s)

    async def close(self) -> None:
        await self._http.aclose()

    async def _post(self, path: str, body: dict) -> dict:
        try:
            r = await self._http.post(path, json=body)
        except httpx.HTTPError as exc:
            raise CatalogueUnavailable(f"catalogue unreachable: {exc!r}") from exc
        if r.status_code >= 500:
            raise CatalogueUnavailable(f"catalogue answered {r.status_code}: {r.text[:200]}")
        if r.status_code >= 400:
            try:
                detail = r.json().get("detail", r.text)
            except ValueError:
                detail = r.text
            raise CatalogueRefused(str(detail)[:200])
        return r.json()

    async def find(self, request: FindRequest) -> FindResponse:
        return FindResponse.model_validate(
            await self._post("/api/v1/find", request.model_dump(mode="json")))

    async def unknown(self, sop_instance_uids: list[str]) -> list[str]:
        body = UnknownRequest(sop_instance_uids=sop_instance_uids).model_dump(mode="json")
        return UnknownResponse.model_validate(
            await self._post("/api/v1/instances/unknown", body)).unknown

    async def lookup(self, sop_instance_uids: list[str]) -> list[InstanceLocation]:
        """Every known location (one per instance and tier) of these instances."""
        body = UnknownRequest(sop_instance_uids=sop_instance_uids).model_dump(mode="json")
        answer = await self._post("/api/v1/instances/lookup", body)
        return [InstanceLocation.model_validate(row) for row in answer["instances"]]

    async def study_tiers(self, study_uid: str) -> list[str]:
        """The archive tiers holding a copy of the study (``study_locations``); [] if none."""
        try:
            r = await self._http.get(f"/api/v1/studies/{study_uid}")
        except httpx.HTTPError as exc:
            raise CatalogueUnavailable(f"catalogue unreachable: {exc!r}") from exc
        if r.status_code == 404:
            return []
        if r.status_code >= 400:
            raise CatalogueUnavailable(f"catalogue answered {r.status_code}: {r.text[:200]}")
        return sorted({loc["tier"] for loc in r.json().get("study_locations", [])})

    async def study_locations(self, study_uid: str) -> list[InstanceLocation] | None:
        """Every instance of a study with each tier that holds it; None for an unknown study
        (``GET /api/v1/studies/{uid}/instances``)."""
        try:
            r = await self._http.get(f"/api/v1/studies/{study_uid}/instances")
        except httpx.HTTPError as exc:
            raise CatalogueUnavailable(f"catalogue unreachable: {exc!r}") from exc
        if r.status_code == 404:
            return None
        if r.status_code >= 500:
            raise CatalogueUnavailable(f"catalogue answered {r.status_code}: {r.text[:200]}")
        if r.status_code >= 400:
            raise CatalogueRefused(r.text[:200])
        return [InstanceLocation.model_validate(x) for x in r.json()]

    async def ready(self) -> str:
        """'' when the catalogue answers /readyz with 200, else the reason."""
        try:
            r = await self._http.get("/readyz", timeout=3.0)
        except httpx.HTTPError as exc:
            return f"catalogue unreachable: {exc!r}"
        return "" if r.status_code == 200 else f"catalogue not ready ({r.status_code})"
