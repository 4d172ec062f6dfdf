"""C-MOVE / C-GET: which instances an identifier names (through the catalogue), where their
cache files are, asking for a recall of those off the cache, and the course of the C-STORE
sub-operations (their counts, waiting for recalled instances). Sending each one on the wire
is ``dicom_gateway.sending``'s.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from pydicom.dataset import Dataset
from pynetdicom.association import Association

from dicom_gateway import find, metrics
from dicom_gateway import statuses as st
from dicom_gateway.modalities import Modalities
from dicom_gateway.sending import Target, open_destination, stored_transfer_syntax
from dicom_gateway.sending import send_store as send_store  # the handlers take it from here
from dicom_gateway.settings import GatewaySettings, Modality
from dicomvault.bus import Publisher
from dicomvault.dicom.bridge import Bridge, BridgeTimeout
from dicomvault.events import Event
from dicomvault.events.v1 import events_pb2 as ev
from dicomvault.query import (
    CatalogueClient,
    CatalogueRefused,
    CatalogueUnavailable,
    FindRequest,
    Level,
)
from dicomvault.store import CacheStore, InvalidUID, StoreError, instance_key
from dicomvault.store.s3store import validate_key

log = logging.getLogger(__name__)

PATIENT_ROOT_MOVE = "1.2.840.10008.5.1.4.1.2.1.2"
PATIENT_ROOT_GET = "1.2.840.10008.5.1.4.1.2.1.3"
STUDY_ROOT_MOVE = "1.2.840.10008.5.1.4.1.2.2.2"
STUDY_ROOT_GET = "1.2.840.10008.5.1.4.1.2.2.3"
ROOTS = {PATIENT_ROOT_MOVE: "PATIENT", PATIENT_ROOT_GET: "PATIENT",
         STUDY_ROOT_MOVE: "STUDY", STUDY_ROOT_GET: "STUDY"}
UNIQUE = [(Level.PATIENT, "PatientID"), (Level.STUDY, "StudyInstanceUID"),
          (Level.SERIES, "SeriesInstanceUID"), (Level.IMAGE, "SOPInstanceUID")]
PAGE = 500
MAX_SUBOPERATIONS = 65535  # the counts are US
RECALL_POLL_S = 1.0  # re-check the cache (and send a Pending response) this often


@dataclass
class RetrieveEvent:
    """One C-MOVE or C-GET request as the handlers see it (built by ``retrieve_scp``)."""

    operation: str  # "move" or "get"
    assoc: Association
    request: object  # the C_MOVE / C_GET primitive
    identifier: Dataset | None  # None: it could not be decoded
    is_cancelled: Callable[[], bool]

    @property
    def calling_ae(self) -> str:
        return self.assoc.requestor.ae_title.strip()


class TooMany(ValueError):
    """More instances match than a retrieve can count (65535)."""


@dataclass
class Response:
    """One C-MOVE/C-GET response: a status, the counts, the failed UIDs, a comment."""

    status: int
    remaining: int | None = None
    completed: int | None = None
    failed: int | None = None
    warning: int | None = None
    failed_uids: list[str] | None = None
    comment: str = ""


@dataclass
class Counts:
    remaining: int
    completed: int = 0
    failed: int = 0
    warning: int = 0
    failed_uids: list[str] = field(default_factory=list)

    def pending(self) -> Response:
        return Response(st.PENDING, self.remaining, self.completed, self.failed, self.warning)

    def cancelled(self) -> Response:
        return Response(st.CANCEL, self.remaining, self.completed, self.failed, self.warning,
                        list(self.failed_uids))

    def final(self, comment: str = "") -> Response:
        if not self.failed and not self.warning:
            status, comment = st.SUCCESS, ""
        elif self.completed or self.warning:
            status = st.SUBOPS_WARNING
        else:
            status = st.SUBOPS_FAILED
        return Response(status, None, self.completed, self.failed, self.warning,
                        list(self.failed_uids) if self.failed else None, comment)


def parse(identifier: Dataset, sop_class_uid: str) -> FindRequest:
    """The IMAGE-level catalogue query that lists every instance the identifier names."""
    root = ROOTS.get(str(sop_class_uid))
    if root is None:
        raise find.BadIdentifier(f"not a supported retrieve model: {sop_class_uid}")
    text = str(identifier.get("QueryRetrieveLevel", "") or "").strip().upper()
    try:
        level = Level(text)
    except ValueError as exc:
        raise find.BadIdentifier(f"unknown or missing Query/Retrieve Level {text!r}") from exc
    if root == "STUDY" and level is Level.PATIENT:
        raise find.BadIdentifier("PATIENT level is not part of the Study Root model")
    order = [lv for lv, _ in UNIQUE]
    filters: dict[str, str] = {}
    for lv, keyword in UNIQUE:
        if (root == "STUDY" and lv is Level.PATIENT) or order.index(lv) > order.index(level):
            continue
        value = find._matching_value(identifier[keyword]) if keyword in identifier else ""
        if any(c in value for c in "*?"):
            raise find.BadIdentifier(f"{keyword} is a unique key: no wildcards")
        if value:
            filters[keyword] = value
        elif lv is level:
            raise find.BadIdentifier(f"{keyword} is required at the {level.value} level")
    return FindRequest(level=Level.IMAGE, root=root, filters=filters, return_keys=[
        "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID",
        "AvailableTransferSyntaxUID"])


class Retriever:
    """What C-MOVE and C-GET need: catalogue, cache, publisher, modalities table."""

    def __init__(self, settings: GatewaySettings, store: CacheStore, publisher: Publisher,
                 catalogue: CatalogueClient, bridge: Bridge, modalities: Modalities) -> None:
        self.cfg = settings.gateway
        self.studies_topic = settings.bus.topics.studies
        self.store = store
        self.publisher = publisher
        self.catalogue = catalogue
        self.bridge = bridge
        self.modalities = modalities

    # --- which instances ---------------------------------------------------------------
    def resolve(self, request: FindRequest) -> list[Target]:
        """Every instance the query names, with its cache key. Raises CatalogueRefused,
        CatalogueUnavailable/BridgeTimeout/RuntimeError, TooMany."""
        matches: list[dict] = []
        offset = 0
        while True:
            page = request.model_copy(update={"limit": PAGE, "offset": offset})
            response = self.bridge.call(self.catalogue.find(page))
            matches += response.matches
            if len(matches) > MAX_SUBOPERATIONS:
                raise TooMany(f"more than {MAX_SUBOPERATIONS} instances match")
            offset += len(response.matches)
            if len(response.matches) < PAGE:
                break
        cache: dict[str, str] = {}
        uids = [str(m.get("SOPInstanceUID") or "") for m in matches]
        for start in range(0, len(uids), PAGE):
            for loc in self.bridge.call(self.catalogue.lookup(uids[start:start + PAGE])):
                if loc.tier == "cache":
                    cache[loc.sop_instance_uid] = loc.storage_key
        targets = []
        for m in matches:
            study, series, sop = (str(m.get(k) or "") for k in (
                "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"))
            try:
                key = validate_key(cache.get(sop) or instance_key(study, series, sop))
            except (InvalidUID, ValueError, StoreError):
                log.warning("retrieve: catalogue row with invalid UIDs skipped",
                            extra={"sop_instance_uid": sop[:64]})
                continue
            ts = m.get("AvailableTransferSyntaxUID") or ""
            targets.append(Target(study, series, sop, str(m.get("SOPClassUID") or ""),
                                  str(ts[0] if isinstance(ts, list) else ts), key, self.store))
        return targets

    # --- C-MOVE destination (``dicom_gateway.sending``) ----------------------------------
    def open_destination(self, ae_title: str, dest: Modality, targets: list[Target]
                         ) -> Association | None:
        return open_destination(self.cfg, ae_title, dest, targets)

    # --- recall --------------------------------------------------------------------------
    def request_recall(self, absent: list[Target], calling_ae: str, operation: str) -> str:
        """Publish RecallRequested per study with instances off the cache; the ErrorComment
        for the instances that stay absent."""
        by_study: dict[str, list[str]] = {}
        for t in absent:
            by_study.setdefault(t.study_uid, []).append(t.sop_instance_uid)
        tiers: set[str] = set()
        for study, sops in by_study.items():
            try:
                tiers |= {copy["tier"] for copy in
                          self.bridge.call(self.catalogue.study_copies(study))}
            except (CatalogueUnavailable, CatalogueRefused, BridgeTimeout, RuntimeError):
                pass
            msg = ev.RecallRequested(
                study_instance_uid=study, requested_by=calling_ae,
                reason=f"C-{operation.upper()}: {len(sops)} instance(s) not in the cache",
                sop_instance_uids=sops)
            event = Event(payload=msg, source="dicomvault/gateway", subject=study)
            try:
                self.bridge.call(self.publisher.publish(self.studies_topic, event, key=study),
                                 timeout_s=self.cfg.store_timeout_s)
                metrics.RECALL_REQUESTS.labels("published").inc()
                log.info("recall requested", extra={"study_instance_uid": study,
                                                    "instances": len(sops),
                                                    "calling_ae": calling_ae})
            except Exception as exc:  # noqa: BLE001 - the instances fail all the same
                metrics.RECALL_REQUESTS.labels("failed").inc()
                log.warning("recall request not published", extra={
                    "study_instance_uid": study, "error": repr(exc)})
        where = "/".join(sorted(tiers)) or "the archive"
        return f"study is being recalled from {where}, retry later"

    # --- the sub-operations --------------------------------------------------------------
    def suboperations(self, operation: str, targets: list[Target],
                      send: Callable[[Target, int], str], calling_ae: str,
                      is_cancelled: Callable[[], bool]) -> Iterator[Response]:
        """Send every target (cached ones first); wait for recalled ones, bounded; yield
        Pending after each, then the final response."""
        counts = Counts(remaining=len(targets))
        todo, absent = _partition(targets)
        comment = self.request_recall(absent, calling_ae, operation) if absent else ""
        deadline = time.monotonic() + self.cfg.recall_wait_s
        n = 0
        while True:
            for t in todo:
                if is_cancelled():
                    yield counts.cancelled()
                    return
                n += 1
                if not t.transfer_syntax_uid:
                    t.transfer_syntax_uid = stored_transfer_syntax(t)
                outcome = send(t, n)
                metrics.RETRIEVE_SUBOPERATIONS.labels(operation, outcome).inc()
                counts.remaining -= 1
                if outcome == "completed":
                    counts.completed += 1
                elif outcome == "warning":
                    counts.warning += 1
                else:
                    counts.failed += 1
                    counts.failed_uids.append(t.sop_instance_uid)
                yield counts.pending()
            todo, absent = _partition(absent)
            if todo:
                continue
            if not absent or time.monotonic() >= deadline:
                break
            if is_cancelled():
                yield counts.cancelled()
                return
            time.sleep(min(RECALL_POLL_S, max(0.0, deadline - time.monotonic())))
            yield counts.pending()  # still waiting for the recall: keep the requester informed
        for t in absent:
            metrics.RETRIEVE_SUBOPERATIONS.labels(operation, "failed").inc()
            counts.remaining -= 1
            counts.failed += 1
            counts.failed_uids.append(t.sop_instance_uid)
        yield counts.final(comment if absent else "")


def _partition(targets: list[Target]) -> tuple[list[Target], list[Target]]:
    """(in the cache, not in the cache): one lookup per target."""
    cached: list[Target] = []
    absent: list[Target] = []
    for t in targets:
        (cached if t.cached else absent).append(t)
    return cached, absent
