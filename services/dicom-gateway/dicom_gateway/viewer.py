"""The OHIF viewer in the box: the prebuilt ``@ohif/app`` distribution (installed by
``make viewer`` / the Dockerfile under ``viewer.dist_dir``, never committed) served at
``/viewer``, with an ``app-config.js`` written per request that points OHIF's DICOMweb data
source at this gateway's ``/dicomweb``.

The static files need no token (they are the same for everyone); the DICOMweb requests the
viewer makes do when ``auth.enabled``: ``viewer.oidc`` becomes OHIF's ``oidc`` section, and
OHIF then signs users in with that OpenID Connect provider and sends its access token as
``Authorization: Bearer`` (docs/viewer.md).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse, RedirectResponse, Response

from dicom_gateway.dicomweb import DicomWeb

log = logging.getLogger(__name__)

MOUNT = "/viewer"
# scripts/install-ohif.sh rewrites the build's absolute asset paths ("/x.js") to MOUNT.


def app_config(dicomweb_url: str, oidc: list[dict]) -> str:
    """OHIF's window.config for this archive (one DICOMweb data source)."""
    source = {
        "namespace": "@ohif/extension-default.dataSourcesModule.dicomweb",
        "sourceName": "dicomvault",
        "configuration": {
            "friendlyName": "DICOM Vault", "name": "dicomvault",
            "wadoUriRoot": f"{dicomweb_url}/wado", "qidoRoot": dicomweb_url,
            "wadoRoot": dicomweb_url, "qidoSupportsIncludeField": True,
            "imageRendering": "wadors", "thumbnailRendering": "wadors",
            "enableStudyLazyLoad": True, "supportsFuzzyMatching": False,
            "supportsWildcard": True, "staticWado": False, "singlepart": "bulkdata,video",
            "bulkDataURI": {"enabled": True, "relativeResolution": "studies"},
            "omitQuotationForMultipartRequest": True,
        },
    }
    config: dict = {
        "routerBasename": MOUNT, "showStudyList": True, "extensions": [], "modes": [],
        "customizationService": {}, "maxNumberOfWebWorkers": 2,
        "showWarningMessageForCrossOrigin": False, "showCPUFallbackMessage": True,
        "showLoadingIndicator": True, "strictZSpacingForVolumeViewport": True,
        "defaultDataSourceName": "dicomvault", "dataSources": [source],
    }
    if oidc:
        config["oidc"] = oidc
    return f"window.config = {json.dumps(config, indent=2)};\n"


def routes(app_router: APIRouter, web: DicomWeb) -> None:
    cfg = web.settings.viewer
    dist = Path(cfg.dist_dir) if cfg.dist_dir else None
    if dist is None:
        return
    if not (dist / "index.html").is_file():
        log.error("viewer.dist_dir holds no OHIF build (run `make viewer`): /viewer answers 503",
                  extra={"dist_dir": str(dist)})
    root = dist.resolve()

    def index() -> Response:
        page = root / "index.html"
        if not page.is_file():
            raise HTTPException(503, "the OHIF viewer is not installed here (make viewer)")
        return FileResponse(page, media_type="text/html", headers={"Cache-Control": "no-cache"})

    @app_router.get(MOUNT, include_in_schema=False)
    async def viewer_root() -> Response:
        return RedirectResponse(f"{MOUNT}/")

    @app_router.get(MOUNT + "/app-config.js", include_in_schema=False)
    async def viewer_config(request: Request) -> Response:
        url = cfg.dicomweb_url.rstrip("/") or web.base_url(request)
        return Response(app_config(url, cfg.oidc), media_type="application/javascript",
                        headers={"Cache-Control": "no-cache"})

    @app_router.get(MOUNT + "/{path:path}", include_in_schema=False)
    async def viewer_file(path: str) -> Response:
        target = (root / path).resolve()
        if path and target.is_relative_to(root) and target.is_file():
            return FileResponse(target)
        if "." in path.rsplit("/", 1)[-1]:  # a missing asset, not a viewer route
            raise HTTPException(404, "no such viewer file")
        return index()  # the viewer's own routes (/viewer/viewer?StudyInstanceUIDs=…)
