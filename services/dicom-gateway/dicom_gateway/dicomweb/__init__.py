"""DICOMweb on the gateway's HTTP port, under /dicomweb: STOW-RS (stow.py), QIDO-RS (qido.py),
WADO-RS (wado.py; frames.py, bulkdata.py, rendered.py; instances.py finds and reads, pixels.py decodes), WADO-URI
(wado_uri.py), multipart/related (multipart.py), DICOM JSON (dicomjson.py).

STOW-RS parts go through the same ``Ingest`` as C-STORE (validation, duplicate policy,
durable write, InstanceStored); QIDO-RS asks the catalogue like C-FIND; WADO-RS reads the
cache tier where the catalogue says the instances are, and asks for a recall when they are
not there. Every route needs a bearer token with the read or write scope (dicomvault.auth)
unless ``auth.enabled`` is false.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from fastapi import APIRouter, Depends, Request

from dicom_gateway.ingest import Ingest
from dicom_gateway.settings import GatewaySettings
from dicomvault.audit import AuditTrail
from dicomvault.auth import TokenVerifier
from dicomvault.bus import Publisher
from dicomvault.query import CatalogueClient
from dicomvault.store import FileStore

log = logging.getLogger(__name__)

PREFIX = "/dicomweb"


@dataclass
class DicomWeb:
    """What the DICOMweb routes use: settings, ingest, cache tier, catalogue, publisher."""

    settings: GatewaySettings
    ingest: Ingest
    store: FileStore
    catalogue: CatalogueClient
    publisher: Publisher
    verifier: TokenVerifier
    audit: AuditTrail | None = None  # queries, retrieves, refused tokens (dicomweb/audit.py)

    def base_url(self, request: Request) -> str:
        """The public URL of /dicomweb (setting, else from the request)."""
        configured = self.settings.dicomweb.base_url.rstrip("/")
        return configured or str(request.base_url).rstrip("/") + PREFIX


def build_router(dw: DicomWeb) -> APIRouter:
    from dicom_gateway.dicomweb import bulkdata, frames, qido, rendered, stow, wado, wado_uri

    dw.verifier.announce("DICOMweb (/dicomweb)")
    read = [Depends(dw.verifier.require("read"))]
    write = [Depends(dw.verifier.require("write"))]
    router = APIRouter(prefix=PREFIX)
    stow.routes(router, dw, write)
    qido.routes(router, dw, read)
    wado.routes(router, dw, read)
    frames.routes(router, dw, read)
    bulkdata.routes(router, dw, read)
    rendered.routes(router, dw, read)
    wado_uri.routes(router, dw, read)
    return router
