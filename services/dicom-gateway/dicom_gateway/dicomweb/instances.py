"""Finding and reading the instances a DICOMweb request names, for every WADO-RS resource
(wado.py, frames.py, bulkdata.py, rendered.py).

Where the instances are comes from the catalogue (``GET /api/v1/studies/{uid}/instances``);
the bytes come from the cache tier. An instance the catalogue knows only on another tier, or
whose cache file is missing, raises ``Unavailable`` carrying the answer — 503 with
Retry-After — after publishing RecallRequested (studies topic, keyed by the Study UID): never
a partial or empty 200.
"""

from __future__ import annotations

import asyncio
import logging
import time

from fastapi import HTTPException, Request
from fastapi.responses import Response

from dicom_gateway.dicomweb import DicomWeb
from dicom_gateway.ingest import SOURCE
from dicomvault.bus import PublishError
from dicomvault.events import Event, deterministic_id, types
from dicomvault.events.v1 import events_pb2 as ev
from dicomvault.query import (
    CatalogueRefused,
    CatalogueUnavailable,
    FindRequest,
    InstanceLocation,
    Level,
)
from dicomvault.store import InvalidUID, StoreError, validate_uid

log = logging.getLogger(__name__)

RECALL_TYPE = types.RECALL_REQUESTED
CACHE = "cache"


class NotInCache(Exception):
    def __init__(self, missing: list[str], tiers: list[str]) -> None:
        super().__init__(f"{len(missing)} instance(s) not in the cache tier")
        self.missing = missing
        self.tiers = tiers


def _uid(value: str, what: str) -> str:
    try:
        return validate_uid(value, what)
    except InvalidUID as exc:
        raise HTTPException(400, str(exc)) from exc


FIND_PAGE = 1000  # instances per catalogue find page when listing what a request names


async def _named_instances(dw: DicomWeb, study: str, series: str, sop: str) -> list[str]:
    """Every SOP Instance UID the catalogue records for the request, whatever tier holds it:
    after an eviction the study's instances have no cache location (and no per-instance
    location at all when the archive copy is recorded per study), but they are still there."""
    filters = {"StudyInstanceUID": study}
    if series:
        filters["SeriesInstanceUID"] = series
    if sop:
        filters["SOPInstanceUID"] = sop
    uids: list[str] = []
    while True:
        page = await dw.catalogue.find(FindRequest(
            level=Level.IMAGE, filters=filters, return_keys=["SOPInstanceUID"],
            limit=FIND_PAGE, offset=len(uids)))
        uids += [str(m.get("SOPInstanceUID") or "") for m in page.matches]
        if len(page.matches) < FIND_PAGE:
            return [u for u in uids if u]


async def _locate(dw: DicomWeb, study: str, series: str, sop: str) -> list[InstanceLocation]:
    """The cache-tier locations of the asked instances (ordered as the catalogue lists them);
    404 when unknown; NotInCache when some are only on other tiers or their file is gone."""
    _uid(study, "Study Instance UID")
    if series:
        _uid(series, "Series Instance UID")
    if sop:
        _uid(sop, "SOP Instance UID")
    try:
        rows = await dw.catalogue.study_instances(study)
        named = [] if rows is None else await _named_instances(dw, study, series, sop)
    except CatalogueUnavailable as exc:
        raise HTTPException(503, "the catalogue is unavailable; try again later",
                            headers={"Retry-After": "5"}) from exc
    except CatalogueRefused as exc:
        raise HTTPException(400, str(exc)) from exc
    if rows is None:
        raise HTTPException(404, f"study {study} is not in the archive")
    if not named:
        what = f"instance {sop}" if sop else f"series {series}"
        raise HTTPException(404, f"{what} is not in study {study}")
    wanted = set(named)
    by_sop: dict[str, list[InstanceLocation]] = {}
    for r in rows:
        if r.sop_instance_uid in wanted:
            by_sop.setdefault(r.sop_instance_uid, []).append(r)
    found: list[InstanceLocation] = []
    missing: list[str] = [u for u in named if u not in by_sop]  # no location left
    tiers: set[str] = set()
    for uid, locations in by_sop.items():
        cached = next((loc for loc in locations if loc.tier == CACHE), None)
        tiers |= {loc.tier for loc in locations if loc.tier != CACHE}
        try:
            present = cached is not None and await asyncio.to_thread(
                dw.store.exists, cached.storage_key)
        except StoreError as exc:  # the cache tier (S3, a share) does not answer: try later
            log.error("cache tier unavailable", extra={"error": str(exc)})
            raise HTTPException(503, "the cache tier is unavailable; retry later",
                                headers={"Retry-After": "10"}) from exc
        if not present:
            missing.append(uid)
        else:
            found.append(cached)
    if missing:
        raise NotInCache(missing, sorted(tiers))
    return found


async def _recall(dw: DicomWeb, study: str, exc: NotInCache) -> Response:
    """Ask for the study to be brought back to the cache tier; 503 with Retry-After."""
    retry = dw.settings.dicomweb.recall_retry_after_s
    msg = ev.RecallRequested(study_instance_uid=study, requested_by="dicomweb",
                             reason="WADO-RS retrieve of instances not in the cache tier",
                             sop_instance_uids=sorted(exc.missing))
    # One request per study, instance set and Retry-After window: clients that retry as told
    # repeat the same fact (same ce_id) rather than piling up recalls.
    window = str(int(time.time() // retry))
    event = Event(payload=msg, source=SOURCE, subject=study,
                  id=deterministic_id(RECALL_TYPE, study, *sorted(exc.missing), window))
    where = f" (held on: {', '.join(exc.tiers)})" if exc.tiers else ""
    try:
        await asyncio.wait_for(dw.publisher.publish(dw.settings.bus.topics.studies, event,
                                                    key=study), 10.0)
        text = (f"{len(exc.missing)} instance(s) of study {study} are not in the cache tier"
                f"{where}; a recall has been requested: retry after {retry} s")
        log.info("recall requested", extra={"study": study, "instances": len(exc.missing)})
    except (PublishError, TimeoutError) as err:
        log.warning("could not request a recall", extra={"study": study, "error": str(err)})
        text = (f"{len(exc.missing)} instance(s) of study {study} are not in the cache tier"
                f"{where}; the recall request could not be sent (event bus): retry later")
    return Response(text, status_code=503, media_type="text/plain",
                    headers={"Retry-After": str(retry)})


class Unavailable(Exception):
    """The instances are not (all) in the cache tier: answer ``response`` (503, recall)."""

    def __init__(self, response: Response) -> None:
        super().__init__("not in the cache tier")
        self.response = response


async def locate(dw: DicomWeb, study: str, series: str = "", sop: str = ""
                 ) -> list[InstanceLocation]:
    """The cache locations of the named instances; Unavailable after asking for a recall."""
    try:
        return await _locate(dw, study, series, sop)
    except NotInCache as exc:
        raise Unavailable(await _recall(dw, study, exc)) from exc


async def read(dw: DicomWeb, loc: InstanceLocation) -> bytes:
    """The stored bytes of one located instance; Unavailable when its file vanished."""
    try:
        return await asyncio.to_thread(dw.store.get, loc.storage_key)
    except StoreError as exc:  # removed since we looked: same as not in the cache
        raise Unavailable(await _recall(dw, loc.study_instance_uid,
                                        NotInCache([loc.sop_instance_uid], []))) from exc


def instance_url(dw: DicomWeb, request: Request, loc: InstanceLocation) -> str:
    return (f"{dw.base_url(request)}/studies/{loc.study_instance_uid}/series/"
            f"{loc.series_instance_uid}/instances/{loc.sop_instance_uid}")
