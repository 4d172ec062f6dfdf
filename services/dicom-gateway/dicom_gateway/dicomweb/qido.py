"""QIDO-RS (PS3.18 10.6): search studies, series and instances through the catalogue.

Query keys by keyword or tag (``PatientID=X``, ``00100020=X``) with the catalogue's matching
(wildcards ``*``/``?``, date/time ranges, UID lists — comma or backslash separated);
``includefield`` (keywords, tags, ``all``; repeated or comma separated); ``limit``/``offset``;
``fuzzymatching=true`` is answered with literal matching and a Warning header. Zero matches:
204 No Content (PS3.18 10.6.3.1). A bad parameter: 400 with the reason.
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response

from dicom_gateway.dicomweb import DicomWeb, dicomjson
from dicom_gateway.find import SUPPORTED
from dicomvault.query import (
    ATTRIBUTES,
    COMPUTED,
    CatalogueRefused,
    CatalogueUnavailable,
    FindRequest,
    Level,
)
from dicomvault.store import InvalidUID, validate_uid

RESERVED = {"includefield", "limit", "offset", "fuzzymatching", "emptyvaluematching"}

# PS3.18 Table 10.6.3-3/-4/-5: the attributes returned by default, where the archive has them.
STUDY_DEFAULT = ("StudyDate", "StudyTime", "AccessionNumber", "ModalitiesInStudy",
                 "ReferringPhysicianName", "PatientName", "PatientID", "PatientBirthDate",
                 "PatientSex", "StudyInstanceUID", "StudyID", "StudyDescription",
                 "NumberOfStudyRelatedSeries", "NumberOfStudyRelatedInstances")
SERIES_DEFAULT = ("Modality", "SeriesDescription", "SeriesInstanceUID", "SeriesNumber",
                  "NumberOfSeriesRelatedInstances")
INSTANCE_DEFAULT = ("SOPClassUID", "SOPInstanceUID", "InstanceNumber", "NumberOfFrames")
UID_KEYS = {"StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID"}


def _bad(message: str) -> HTTPException:
    return HTTPException(400, message)


def _uid(value: str, what: str) -> str:
    try:
        return validate_uid(value, what)
    except InvalidUID as exc:
        raise _bad(str(exc)) from exc


MAX_INT = 2**31 - 1  # limit/offset beyond this are refused (the catalogue's SQL integers)


def _int(name: str, value: str, low: int) -> int:
    text = value.strip()
    if not (text.isascii() and text.isdigit()) or len(text) > 10 or not \
            low <= int(text) <= MAX_INT:
        raise _bad(f"{name} must be an integer from {low} to {MAX_INT}, not {value[:40]!r}")
    return int(text)


def _allowed(level: Level) -> list[str]:
    order = [Level.PATIENT, Level.STUDY, Level.SERIES, Level.IMAGE]
    levels = order[:order.index(level) + 1]
    return [k for lvl in levels for k in ATTRIBUTES[lvl]] + list(COMPUTED[level])


def _defaults(level: Level, study: str, series: str) -> list[str]:
    study_level = [k for k in STUDY_DEFAULT if k not in COMPUTED[Level.STUDY]]
    if level is Level.STUDY:
        return list(STUDY_DEFAULT)
    if level is Level.SERIES:
        return [*SERIES_DEFAULT, "StudyInstanceUID", *([] if study else study_level)]
    series_level = [k for k in SERIES_DEFAULT if k not in COMPUTED[Level.SERIES]]
    return [*INSTANCE_DEFAULT, "StudyInstanceUID", "SeriesInstanceUID",
            *([] if series else series_level), *([] if study else study_level)]


def parse(dw: DicomWeb, request: Request, level: Level, study: str = "",
          series: str = "") -> tuple[FindRequest, list[str]]:
    """The catalogue request of a QIDO-RS query, and the Warning texts it earns."""
    warnings: list[str] = []
    filters: dict[str, str] = {}
    include: list[str] = []
    limit: int | None = None
    offset = 0
    seen: set[str] = set()
    for name, value in request.query_params.multi_items():
        if name in RESERVED:
            if name == "includefield":
                for field in value.split(","):
                    field = field.strip()
                    if field == "all":
                        include += _allowed(level)
                        continue
                    kw = dicomjson.keyword(field)
                    if kw is None:
                        raise _bad(f"includefield: {field[:80]!r} is not a DICOM keyword or tag")
                    if kw in SUPPORTED:  # other attributes: the archive does not hold them
                        include.append(kw)
                continue
            if name in seen:
                raise _bad(f"{name} is given more than once")
            seen.add(name)
            if name == "limit":
                limit = _int("limit", value, 1)
            elif name == "offset":
                offset = _int("offset", value, 0)
            elif value.lower() not in ("true", "false"):
                raise _bad(f"{name} must be true or false, not {value[:80]!r}")
            elif value.lower() == "true":
                warnings.append(f"The {name} parameter is not supported. Only literal "
                                "matching has been performed.")
            continue
        if "." in name:
            raise _bad(f"{name[:80]!r}: sequence matching is not supported")
        kw = dicomjson.keyword(name)
        if kw is None:
            raise _bad(f"{name[:80]!r} is neither a query parameter nor a DICOM keyword or tag")
        if kw not in SUPPORTED:
            raise _bad(f"{kw} is not supported as a matching key; supported: "
                       + ", ".join(sorted(SUPPORTED)))
        if kw in filters:
            raise _bad(f"{kw} is given more than once")
        if kw in UID_KEYS:
            value = "\\".join(v.strip() for v in value.replace(",", "\\").split("\\"))
        filters[kw] = value
    if study:
        filters["StudyInstanceUID"] = _uid(study, "Study Instance UID")
    if series:
        filters["SeriesInstanceUID"] = _uid(series, "Series Instance UID")
    cfg = dw.settings.dicomweb
    if limit is None:
        limit = cfg.default_limit
    elif limit > cfg.max_limit:
        warnings.append(f"The limit {limit} is above the maximum {cfg.max_limit}: "
                        f"at most {cfg.max_limit} results are returned.")
        limit = cfg.max_limit
    keys = list(dict.fromkeys([*_defaults(level, study, series), *include, *filters]))
    return FindRequest(level=level, root="STUDY", filters=filters, return_keys=keys,
                       limit=limit, offset=offset), warnings


def _url(base: str, level: Level, m: dict) -> str:
    url = f"{base}/studies/{m.get('StudyInstanceUID')}"
    if level in (Level.SERIES, Level.IMAGE):
        url += f"/series/{m.get('SeriesInstanceUID')}"
    if level is Level.IMAGE:
        url += f"/instances/{m.get('SOPInstanceUID')}"
    return url


async def search(dw: DicomWeb, request: Request, level: Level, study: str = "",
                 series: str = "") -> Response:
    find, warnings = parse(dw, request, level, study, series)
    try:
        found = await dw.catalogue.find(find)
    except CatalogueRefused as exc:
        raise _bad(f"query refused: {exc}") from exc
    except CatalogueUnavailable as exc:
        raise HTTPException(503, "the catalogue is unavailable; try again later",
                            headers={"Retry-After": "5"}) from exc
    base = dw.base_url(request)
    if found.total is not None and found.total > find.offset + len(found.matches):
        rest = found.total - find.offset - len(found.matches)
        warnings.append(f"There are {rest} additional results that can be requested "
                        f"(offset={find.offset + len(found.matches)}).")
    headers = {"Warning": ", ".join(f'299 {base}: "{w}"' for w in warnings)} if warnings else {}
    if not found.matches:
        return Response(status_code=204, headers=headers)
    answers = []
    for m in found.matches:
        values = {k: m.get(k) for k in find.return_keys}
        ds = dicomjson.dataset(values)
        ds.RetrieveURL = _url(base, level, m)
        answers.append(ds)
    return dicomjson.response(answers, 200, headers)


def routes(router: APIRouter, dw: DicomWeb, deps: list) -> None:
    @router.get("/studies", dependencies=deps)
    async def studies(request: Request) -> Response:
        return await search(dw, request, Level.STUDY)

    @router.get("/series", dependencies=deps)
    async def all_series(request: Request) -> Response:
        return await search(dw, request, Level.SERIES)

    @router.get("/studies/{study}/series", dependencies=deps)
    async def study_series(study: str, request: Request) -> Response:
        return await search(dw, request, Level.SERIES, study)

    @router.get("/instances", dependencies=deps)
    async def all_instances(request: Request) -> Response:
        return await search(dw, request, Level.IMAGE)

    @router.get("/studies/{study}/instances", dependencies=deps)
    async def study_instances(study: str, request: Request) -> Response:
        return await search(dw, request, Level.IMAGE, study)

    @router.get("/studies/{study}/series/{series}/instances", dependencies=deps)
    async def series_instances(study: str, series: str, request: Request) -> Response:
        return await search(dw, request, Level.IMAGE, study, series)
