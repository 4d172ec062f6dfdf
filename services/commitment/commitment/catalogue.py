"""Client of the catalogue REST API: where instances are (``InstanceLocation`` rows).

Needed endpoint (asked of the catalogue): ``POST /api/v1/instances/lookup`` with
``{"sop_instance_uids": [...]}`` answering the ``InstanceLocation`` rows of those instances
(one per instance and tier), as a JSON list or ``{"instances": [...]}``. Until it exists the
client falls back to the query contract: ``POST /api/v1/find`` (IMAGE level, list-of-UID
matching on SOPInstanceUID) to learn the studies, then ``GET /api/v1/studies/{uid}/instances``.
"""

from __future__ import annotations

import httpx

from dicomvault.query import FindRequest, InstanceLocation, Level


class CatalogueUnavailable(RuntimeError):
    """The catalogue did not answer (or answered 5xx); try again later."""


Location = dict  # an InstanceLocation as JSON, plus optional fields such as "verified"


class CatalogueClient:
    def __init__(self, base_url: str, timeout_s: float = 15.0) -> None:
        self.base = base_url.rstrip("/")
        self.timeout_s = timeout_s

    async def _request(self, client: httpx.AsyncClient, method: str, path: str,
                       **kw) -> httpx.Response:
        try:
            r = await client.request(method, f"{self.base}{path}", **kw)
        except httpx.HTTPError as exc:
            raise CatalogueUnavailable(f"{method} {path}: {exc!r}") from exc
        if r.status_code >= 500:
            raise CatalogueUnavailable(f"{method} {path}: HTTP {r.status_code} {r.text[:200]}")
        return r

    async def lookup(self, sop_uids: list[str]) -> dict[str, list[Location]]:
        """Locations of each of these instances (an instance nobody knows is absent)."""
        out: dict[str, list[Location]] = {}
        wanted = set(sop_uids)
        async with httpx.AsyncClient(timeout=self.timeout_s) as client:
            for start in range(0, len(sop_uids), 500):
                chunk = sop_uids[start:start + 500]
                r = await self._request(client, "POST", "/api/v1/instances/lookup",
                                        json={"sop_instance_uids": chunk})
                if r.status_code in (404, 405):
                    return await self._lookup_by_find(client, sop_uids)
                r.raise_for_status()
                body = r.json()
                rows = body.get("instances", []) if isinstance(body, dict) else body
                for row in rows:
                    loc = _location(row)
                    if loc["sop_instance_uid"] in wanted:
                        out.setdefault(loc["sop_instance_uid"], []).append(loc)
        return out

    async def _lookup_by_find(self, client: httpx.AsyncClient,
                              sop_uids: list[str]) -> dict[str, list[Location]]:
        studies: set[str] = set()
        for start in range(0, len(sop_uids), 200):
            req = FindRequest(level=Level.IMAGE, filters={
                "SOPInstanceUID": "\\".join(sop_uids[start:start + 200])},
                return_keys=["StudyInstanceUID", "SOPInstanceUID"])
            r = await self._request(client, "POST", "/api/v1/find", json=req.model_dump())
            r.raise_for_status()
            for match in r.json().get("matches", []):
                if match.get("StudyInstanceUID"):
                    studies.add(str(match["StudyInstanceUID"]))
        wanted = set(sop_uids)
        out: dict[str, list[Location]] = {}
        for study in sorted(studies):
            for loc in await self._study(client, study):
                if loc["sop_instance_uid"] in wanted:
                    out.setdefault(loc["sop_instance_uid"], []).append(loc)
        return out

    async def study_locations(self, study_uid: str) -> list[Location]:
        """Every location of every instance of a study ([] if the study is unknown)."""
        async with httpx.AsyncClient(timeout=self.timeout_s) as client:
            return await self._study(client, study_uid)

    async def study_archives(self, study_uid: str) -> list[dict]:
        """Study-level copies on archive tiers (``study_locations`` of GET /api/v1/studies/{uid}:
        tier, archive_id, verified, number_of_instances…); [] if the study is unknown."""
        async with httpx.AsyncClient(timeout=self.timeout_s) as client:
            r = await self._request(client, "GET", f"/api/v1/studies/{study_uid}")
        if r.status_code == 404:
            return []
        r.raise_for_status()
        return [a for a in r.json().get("study_locations", []) if a.get("tier") != "cache"]

    async def _study(self, client: httpx.AsyncClient, study_uid: str) -> list[Location]:
        r = await self._request(client, "GET", f"/api/v1/studies/{study_uid}/instances")
        if r.status_code == 404:
            return []
        r.raise_for_status()
        body = r.json()
        rows = body.get("instances", []) if isinstance(body, dict) else body
        return [_location(row) for row in rows]


def _location(row: dict) -> Location:
    """Validate the contract fields; keep extra ones (``verified``, ``archive_id``…)."""
    return {**row, **InstanceLocation.model_validate(row).model_dump()}
