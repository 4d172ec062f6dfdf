"""Sending retrieved instances on the wire: the C-STORE sub-operations of C-MOVE / C-GET.

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
from collections.abc import Iterator
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

from dicom_gateway import metrics
from dicom_gateway.part10 import Malformed, split_file_meta
from dicom_gateway.settings import GatewaySection, Modality
from dicomvault.store import CacheStore, FileStore, StoreError
from dicomvault.transcode import TranscodeError, first_possible

log = logging.getLogger(__name__)

MAX_CONTEXTS = 128
UNCOMPRESSED = [ExplicitVRLittleEndian, ImplicitVRLittleEndian]


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


def open_destination(cfg: GatewaySection, ae_title: str, dest: Modality, targets: list[Target]
                     ) -> Association | None:
    """The association to a C-MOVE destination, with contexts for ``targets``; None when
    it refuses or cannot be reached."""
    ae = AE(ae_title=cfg.ae_title)
    ae.acse_timeout = cfg.acse_timeout_s
    ae.dimse_timeout = cfg.dimse_timeout_s
    ae.network_timeout = cfg.network_timeout_s
    kwargs: dict = {"ae_title": ae_title, "contexts": contexts_for(targets),
                    "max_pdu": cfg.max_pdu}
    if dest.tls:
        kwargs["tls_args"] = (client_tls(cfg), None)
    assoc = ae.associate(dest.host, dest.port, **kwargs)
    if not assoc.is_established:
        log.warning("retrieve: no association with the move destination",
                    extra={"destination": ae_title, "host": dest.host, "port": dest.port})
        ae.shutdown()
        return None
    return assoc

def client_tls(cfg: GatewaySection) -> ssl.SSLContext:
    """The TLS context of an association to a destination that requires TLS."""
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH,
                                     cafile=str(cfg.tls_ca_file)
                                     if cfg.tls_ca_file else None)
    ctx.check_hostname = False  # DICOM peers are configured by address; the CA vouches
    if cfg.tls_cert_file and cfg.tls_key_file:
        ctx.load_cert_chain(str(cfg.tls_cert_file), str(cfg.tls_key_file))
    return ctx
