"""The one client of the catalogue REST API, for every service that reads the catalogue.

Errors, in one place: ``CatalogueUnavailable`` when the catalogue cannot be reached or fails
(5xx: ask again later; ``CatalogueUnauthorized`` when it refuses our bearer token, 401/403),
``CatalogueRefused`` when it refuses the request as asked (4xx other
than the documented 404 answers: the request itself is wrong). Both are ``CatalogueError``.
Where the catalogue answers 404 for an unknown study, the call says what it returns instead
(``None`` or ``[]``); nothing else is retried or masked here.

With a ``ClientSettings`` (the service's ``client`` section) the client verifies the
catalogue's HTTPS certificate with ``ca_file`` and sends the bearer token in ``token_file``
on every request (re-read when the file changes, e.g. a rotated Kubernetes Secret). A missing,
expired or refused token is the catalogue's 401/403: ``CatalogueUnauthorized``.
"""

from __future__ import annotations

import logging
import ssl
import threading
from collections.abc import Generator
from pathlib import Path

import httpx

from dicomvault.files import WatchedFile
from dicomvault.query import (
    FindRequest,
    FindResponse,
    InstanceLocation,
    UnknownRequest,
    UnknownResponse,
)
from dicomvault.settings import ClientSettings

DEFAULT_TIMEOUT_S = 15.0
READY_TIMEOUT_S = 3.0
LOOKUP_CHUNK = 500  # SOP Instance UIDs per POST /api/v1/instances/lookup

log = logging.getLogger(__name__)


class TokenFileAuth(httpx.Auth):
    """``Authorization: Bearer <the file's content>`` on every request; the file is read
    again whenever its modification time, size or inode changes. An unreadable or empty
    file sends no header (the server answers 401); the token itself is never logged."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._file = WatchedFile(self.path)
        self._readable = False
        self._warned = False
        self._lock = threading.Lock()

    def token(self) -> str:
        with self._lock:
            try:
                token = self._file.text().strip()
            except OSError as exc:
                if self._readable or not self._warned:
                    log.warning("bearer token file unreadable: no token sent",
                                extra={"token_file": str(self.path), "error": repr(exc)})
                    self._warned = True
                self._readable = False
                return ""
            self._readable = True
            return token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        token = self.token()
        if token:
            request.headers["Authorization"] = f"Bearer {token}"
        yield request


def http_options(client: ClientSettings | None) -> dict:
    """httpx client options for calls to the archive's own services under the ``client``
    section: ``verify`` (an SSL context with ca_file and the client certificate, if any) and
    ``auth`` (the token file); {} without one."""
    if client is None:
        return {}
    options: dict = {}
    if client.ca_file is not None or client.cert_file is not None:
        context = ssl.create_default_context(
            cafile=str(client.ca_file) if client.ca_file is not None else None)
        if client.cert_file is not None:
            context.load_cert_chain(str(client.cert_file),
                                    str(client.key_file) if client.key_file else None)
        options["verify"] = context
    if client.token_file is not None:
        options["auth"] = TokenFileAuth(client.token_file)
    return options


class CatalogueError(RuntimeError):
    """The catalogue did not give an answer to use (``CatalogueUnavailable`` or
    ``CatalogueRefused``)."""


class CatalogueUnavailable(CatalogueError):
    """The catalogue could not be reached or failed (5xx): ask again later."""


class CatalogueUnauthorized(CatalogueUnavailable):
    """The catalogue refused this service's bearer token (401: missing, expired, wrong issuer;
    403: without the read scope). Not the request's fault: ask again once the token file
    holds a valid token."""


class CatalogueRefused(CatalogueError, ValueError):
    """The catalogue refused the request as asked (4xx): the query itself is wrong."""


class CatalogueClient:
    """``POST /api/v1/find``, ``/api/v1/instances/{unknown,lookup}``,
    ``GET /api/v1/studies/{uid}[/instances]`` and ``GET /readyz`` of the catalogue."""

    def __init__(self, base_url: str, timeout_s: float = DEFAULT_TIMEOUT_S,
                 transport: httpx.AsyncBaseTransport | None = None,
                 client: ClientSettings | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.authenticated = client is not None and client.token_file is not None
        self._http = httpx.AsyncClient(base_url=self.base_url, timeout=timeout_s,
                                       transport=transport, **http_options(client))

    @property
    def http(self) -> httpx.AsyncClient:
        """The underlying client (base URL, CA, token) for catalogue reads not wrapped here
        (the jobs API: ``dicomvault.jobs.adopt_from_catalogue``)."""
        return self._http

    async def close(self) -> None:
        await self._http.aclose()

    # -- transport and error mapping --------------------------------------------------------
    async def _request(self, method: str, path: str, *, not_found_ok: bool = False,
                       **kw) -> httpx.Response | None:
        """The 2xx answer; None for a 404 when ``not_found_ok``; else CatalogueError."""
        try:
            r = await self._http.request(method, path, **kw)
        except httpx.HTTPError as exc:
            raise CatalogueUnavailable(f"catalogue unreachable: {exc!r}") from exc
        if r.status_code == 404 and not_found_ok:
            return None
        if r.status_code in (401, 403):
            raise CatalogueUnauthorized(
                f"catalogue refused our token ({r.status_code}): {_detail(r)}")
        if 400 <= r.status_code < 500:
            raise CatalogueRefused(_detail(r))
        if not 200 <= r.status_code < 300:
            raise CatalogueUnavailable(f"catalogue answered {r.status_code}: {r.text[:200]}")
        return r

    async def _post(self, path: str, body: dict) -> dict:
        r = await self._request("POST", path, json=body)
        assert r is not None
        return r.json()

    # -- the query contract -----------------------------------------------------------------
    async def find(self, request: FindRequest) -> FindResponse:
        return FindResponse.model_validate(
            await self._post("/api/v1/find", request.model_dump(mode="json")))

    async def unknown(self, sop_instance_uids: list[str]) -> list[str]:
        """Which of these SOP Instance UIDs the catalogue has never recorded."""
        body = UnknownRequest(sop_instance_uids=sop_instance_uids).model_dump(mode="json")
        return UnknownResponse.model_validate(
            await self._post("/api/v1/instances/unknown", body)).unknown

    async def lookup(self, sop_instance_uids: list[str]) -> list[InstanceLocation]:
        """Every known location (one per instance and tier) of these instances; an instance
        the catalogue does not know has none. Any number of UIDs (asked in chunks)."""
        out: list[InstanceLocation] = []
        for start in range(0, len(sop_instance_uids), LOOKUP_CHUNK):
            chunk = sop_instance_uids[start:start + LOOKUP_CHUNK]
            body = UnknownRequest(sop_instance_uids=chunk).model_dump(mode="json")
            answer = await self._post("/api/v1/instances/lookup", body)
            out += [InstanceLocation.model_validate(row) for row in _rows(answer)]
        return out

    # -- one study --------------------------------------------------------------------------
    async def study(self, study_uid: str) -> dict | None:
        """The study summary (``GET /api/v1/studies/{uid}``: counts, attributes,
        ``study_locations``…); None if the catalogue does not know the study (404)."""
        r = await self._request("GET", f"/api/v1/studies/{study_uid}", not_found_ok=True)
        return None if r is None else r.json()

    async def study_copies(self, study_uid: str) -> list[dict]:
        """The study-level copies (``study_locations`` of the summary: tier, archive_id,
        location, verified, number_of_instances…); [] if the study is unknown (404)."""
        summary = await self.study(study_uid)
        return list((summary or {}).get("study_locations") or [])

    async def study_instances(self, study_uid: str, tier: str = ""
                              ) -> list[InstanceLocation] | None:
        """Every instance of a study with each tier that holds it, in the catalogue's order
        (``GET /api/v1/studies/{uid}/instances``), only those on ``tier`` if given; None if
        the catalogue does not know the study (404)."""
        r = await self._request("GET", f"/api/v1/studies/{study_uid}/instances",
                                not_found_ok=True)
        if r is None:
            return None
        out = [InstanceLocation.model_validate(row) for row in _rows(r.json())]
        return [loc for loc in out if not tier or loc.tier == tier]

    async def instances(self, study_uid: str, tier: str = "cache") -> list[InstanceLocation]:
        """The study's instances on one tier (default the cache: where a copy is read from;
        ``""`` for every tier); [] if the study is unknown (404)."""
        return await self.study_instances(study_uid, tier) or []

    # -- optical media ----------------------------------------------------------------------
    async def media_requests(self, archive_id: str = "") -> list[dict]:
        """The optical media requests the catalogue projected (``GET /api/v1/media-requests``:
        archive_id, label, message, mount_path, studies, requested_at), of one archive if
        given."""
        r = await self._request("GET", "/api/v1/media-requests",
                                params={"archive_id": archive_id} if archive_id else None)
        assert r is not None
        return list(r.json().get("media_requests") or [])

    # -- health -----------------------------------------------------------------------------
    async def ready(self) -> str:
        """'' when the catalogue answers /readyz with 200 (and, with a token configured,
        accepts our token on a read), else the reason."""
        try:
            r = await self._http.get("/readyz", timeout=READY_TIMEOUT_S)
            if r.status_code != 200:
                return f"catalogue not ready ({r.status_code})"
            if self.authenticated:
                r = await self._http.post("/api/v1/instances/unknown", timeout=READY_TIMEOUT_S,
                                          json={"sop_instance_uids": []})
                if r.status_code in (401, 403):
                    return f"catalogue refuses our token ({r.status_code}): {_detail(r)}"
        except httpx.HTTPError as exc:
            return f"catalogue unreachable: {exc!r}"
        return ""


def _detail(r: httpx.Response) -> str:
    try:
        body = r.json()
        detail = body.get("detail", r.text) if isinstance(body, dict) else r.text
    except ValueError:
        detail = r.text
    return str(detail)[:200]


def _rows(body) -> list:
    """InstanceLocation rows, whether sent as a JSON list or as ``{"instances": [...]}``."""
    return body.get("instances", []) if isinstance(body, dict) else body
