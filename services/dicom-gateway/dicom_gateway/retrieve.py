"""C-MOVE / C-GET: which instances an identifier names (through the catalogue), where their
cache files are, asking for a recall of those off the cache, and the C-STORE sub-operations.

The stored bytes are sent as they are (pynetdicom sends the file's dataset in chunks, no
decode) on a presentation context of the file's transfer syntax. Only when the peer accepted
none is the object converted: an uncompressed file by pynetdicom to an uncompressed syntax the
peer accepted, a compressed one by dicomvault.transcode to the first syntax the peer accepted
that can be produced (decoded to Explicit/Implicit VR Little Endian, or re-encoded as JPEG
Lossless, JPEG-LS, JPEG 2000, RLE with GDCM/pydicom); when none can be, the sub-operation
fails.

pynetdicom sends a file by path (or a decoded Dataset, which would re-encode it). A file-system
cache copy is sent from where it is; an S3 copy is fetched into a private temporary folder
(mode 0700) for the one sub-operation and removed right after, whatever happened.
"""

from __future__ import annotations

import contextlib
import logging
import ssl
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE, build_context
from pynetdicom.association import Association
from pynetdicom.dsutils import split_dataset
from pynetdicom.status import code_to_category

from dicom_gateway import find, metrics
from dicom_gateway import statuses as st
from dicom_gateway.bridge import Bridge, BridgeTimeout
from dicom_gateway.modalities import Modalities
from dicom_gateway.part10 import Malformed, split_file_meta
from dicom_gateway.settings import GatewaySettings, Modality
from dicomvault.bus import Publisher
from dicomvault.events import Event
from dicomvault.events.v1 import events_pb2 as v1
from dicomvault.query import (
    CatalogueClient,
    CatalogueRefused,
    CatalogueUnavailable,
    FindRequest,
    Level,
)
from dicomvault.store import CacheStore, FileStore, InvalidUID, StoreError, instance_key
from dicomvault.store.s3store import validate_key
from dicomvault.transcode import TranscodeError, first_possible

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
MAX_CONTEXTS = 128
UNCOMPRESSED = [ExplicitVRLittleEndian, ImplicitVRLittleEndian]
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
class Target:
    """One instance to send."""

    study_uid: str
    series_uid: str
    sop_instance_uid: str
    sop_class_uid: str
    transfer_syntax_uid: str
    key: str  # the cache copy's key (where it is, or where a recall puts it)
    store: CacheStore = field(repr=False)

    @property
    def cached(self) -> bool:
        try:
            return self.store.exists(self.key)
        except StoreError as exc:  # the cache cannot tell: treated as absent (recall, fail)
            log.warning("retrieve: cache lookup failed",
                        extra={"sop_instance_uid": self.sop_instance_uid, "error": str(exc)})
            return False

    @contextlib.contextmanager
    def local_file(self) -> Iterator[Path]:
        """A path holding the stored bytes unchanged: the file itself on a file-system cache,
        else a private temporary copy that is removed on exit. Raises StoreError."""
        if isinstance(self.store, FileStore):
            yield self.store.path(self.key)
            return
        data = self.store.get(self.key)
        with tempfile.TemporaryDirectory(prefix="vault-retrieve-") as folder:
            path = Path(folder) / f"{self.sop_instance_uid}.dcm"
            path.write_bytes(data)
            yield path


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


def _transfer_syntax(path: Path) -> str:
    meta, _ = split_dataset(path)
    return str(meta.TransferSyntaxUID)


def stored_transfer_syntax(target: Target) -> str:
    """The transfer syntax in the cache copy's file meta ('' when unreadable)."""
    try:
        if isinstance(target.store, FileStore):
            return _transfer_syntax(target.store.path(target.key))
        return split_file_meta(target.store.get(target.key))[0]["TransferSyntaxUID"]
    except (StoreError, Malformed, OSError, ValueError, AttributeError) as exc:
        log.warning("retrieve: stored transfer syntax unreadable",
                    extra={"sop_instance_uid": target.sop_instance_uid, "error": str(exc)})
        return ""


def contexts_for(targets: list[Target]) -> list:
    """Presentation contexts for a sub-association: each (SOP class, stored transfer syntax)
    alone, then per SOP class an uncompressed fallback; at most 128."""
    exact: dict[tuple[str, str], None] = {}
    classes: dict[str, None] = {}
    for t in targets:
        exact[(t.sop_class_uid, t.transfer_syntax_uid or ExplicitVRLittleEndian)] = None
        classes[t.sop_class_uid] = None
    contexts = [build_context(sop, [ts]) for sop, ts in exact]
    contexts += [build_context(sop, UNCOMPRESSED) for sop in classes]
    if len(contexts) > MAX_CONTEXTS:
        log.warning("retrieve: more presentation contexts than an association can carry",
                    extra={"contexts": len(contexts)})
    return contexts[:MAX_CONTEXTS]


def accepted_syntaxes(assoc: Association, sop_class_uid: str) -> list[str]:
    """The transfer syntaxes the peer accepted for ``sop_class_uid`` (its preference order)."""
    out: list[str] = []
    for cx in assoc.accepted_contexts:
        if cx.abstract_syntax == sop_class_uid:
            out += [str(ts) for ts in cx.transfer_syntax if str(ts) not in out]
    return out


def _converted(assoc: Association, path: Path, target: Target) -> Dataset:
    """The stored object in a transfer syntax the peer accepted (decoded, or re-encoded by
    dicomvault.transcode); TranscodeError when none can be produced."""
    accepted = accepted_syntaxes(assoc, target.sop_class_uid)
    try:
        data, ts = first_possible(path.read_bytes(), accepted)
    except TranscodeError:
        metrics.TRANSCODES.labels("dimse", "failed").inc()
        raise
    metrics.TRANSCODES.labels("dimse", "converted").inc()
    log.info("retrieve: sending a converted copy", extra={
        "sop_instance_uid": target.sop_instance_uid, "stored": target.transfer_syntax_uid,
        "sent": ts})
    return dcmread(BytesIO(data))


def send_store(assoc: Association, target: Target, msg_id: int, **originator: object) -> str:
    """One C-STORE sub-operation; its outcome: completed, warning or failed.

    The stored bytes go as they are when the peer accepted their transfer syntax; otherwise
    the object is converted to one it accepted (an uncompressed one by pynetdicom itself,
    a compressed one decoded or re-encoded by dicomvault.transcode)."""
    try:
        with target.local_file() as path:
            try:
                rsp = assoc.send_c_store(path, msg_id=msg_id, **originator)
            except ValueError:
                # No context of the stored transfer syntax: the one unavoidable decode.
                if UID(_transfer_syntax(path)).is_compressed:
                    ds = _converted(assoc, path, target)
                else:
                    ds = dcmread(path)
                rsp = assoc.send_c_store(ds, msg_id=msg_id, **originator)
    except TranscodeError as exc:
        log.warning("retrieve: the peer accepts no transfer syntax this object can be sent in",
                    extra={"sop_instance_uid": target.sop_instance_uid, "error": str(exc)})
        return "failed"
    except (ValueError, RuntimeError, OSError, AttributeError) as exc:
        log.warning("retrieve: C-STORE sub-operation not sent",
                    extra={"sop_instance_uid": target.sop_instance_uid, "error": str(exc)})
        return "failed"
    status = rsp.get("Status") if rsp is not None else None
    if status is None:
        return "failed"
    category = code_to_category(int(status))
    if category == "Success":
        return "completed"
    return "warning" if category == "Warning" else "failed"


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

    # --- C-MOVE destination ------------------------------------------------------------
    def open_destination(self, ae_title: str, dest: Modality, targets: list[Target]
                         ) -> Association | None:
        ae = AE(ae_title=self.cfg.ae_title)
        ae.acse_timeout = self.cfg.acse_timeout_s
        ae.dimse_timeout = self.cfg.dimse_timeout_s
        ae.network_timeout = self.cfg.network_timeout_s
        kwargs: dict = {"ae_title": ae_title, "contexts": contexts_for(targets),
                        "max_pdu": self.cfg.max_pdu}
        if dest.tls:
            kwargs["tls_args"] = (self.client_tls(), None)
        assoc = ae.associate(dest.host, dest.port, **kwargs)
        if not assoc.is_established:
            log.warning("retrieve: no association with the move destination",
                        extra={"destination": ae_title, "host": dest.host, "port": dest.port})
            ae.shutdown()
            return None
        return assoc

    def client_tls(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH,
                                         cafile=str(self.cfg.tls_ca_file)
                                         if self.cfg.tls_ca_file else None)
        ctx.check_hostname = False  # DICOM peers are configured by address; the CA vouches
        if self.cfg.tls_cert_file and self.cfg.tls_key_file:
            ctx.load_cert_chain(str(self.cfg.tls_cert_file), str(self.cfg.tls_key_file))
        return ctx

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
            msg = v1.RecallRequested(
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
