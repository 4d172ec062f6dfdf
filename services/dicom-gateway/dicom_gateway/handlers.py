"""pynetdicom handlers of the DIMSE listener: one function per DIMSE service, dependencies
bound through ``evt_handlers`` tuples, every exit a named status from ``statuses``.

Statuses: see ``dicom_gateway.statuses`` and docs/gateway.md.
"""

from __future__ import annotations

import logging
import time

from pydicom.dataset import Dataset

from dicom_gateway import find, metrics
from dicom_gateway import statuses as st
from dicom_gateway.bridge import Bridge, BridgeTimeout
from dicom_gateway.catalogue import CatalogueClient, CatalogueRefused, CatalogueUnavailable
from dicom_gateway.ingest import Ingest, Outcome, StoreRequest

log = logging.getLogger(__name__)

FIND_PAGE = 500  # matches asked from the catalogue per request (cancel is checked between)


def _status(outcome: Outcome) -> Dataset:
    ds = Dataset()
    ds.Status = outcome.status
    if outcome.comment:
        ds.ErrorComment = outcome.comment[:64]
    return ds


def handle_echo(event) -> int:
    return st.SUCCESS


def handle_store(event, ingest: Ingest) -> Dataset:
    """C-STORE: durable file, InstanceStored on the broker, then Success."""
    started = time.monotonic()
    rq = event.request
    assoc = event.assoc
    request = StoreRequest(
        affected_sop_class_uid=str(rq.AffectedSOPClassUID or ""),
        affected_sop_instance_uid=str(rq.AffectedSOPInstanceUID or ""),
        transfer_syntax_uid=str(event.context.transfer_syntax),
        dataset=event.encoded_dataset(include_meta=False),
        part10=lambda: event.encoded_dataset(include_meta=True),
        calling_ae=assoc.requestor.ae_title.strip(),
        called_ae=assoc.acceptor.ae_title.strip(),
        received=time.time(),
    )
    outcome = ingest.handle(request)
    metrics.STORE_DURATION.observe(time.monotonic() - started)
    metrics.CSTORE_REQUESTS.labels(st.label(outcome.status)).inc()
    if outcome.status != st.SUCCESS:
        log.warning("C-STORE refused", extra={"status": st.label(outcome.status),
                                              "reason": outcome.comment,
                                              "calling_ae": request.calling_ae})
    return _status(outcome)


def handle_find(event, catalogue: CatalogueClient, bridge: Bridge, ae_title: str):
    """C-FIND (Patient Root, Study Root): the catalogue matches, we answer every match."""
    final = st.SUCCESS
    try:
        for status, identifier in _find(event, catalogue, bridge, ae_title):
            code = status.Status if isinstance(status, Dataset) else status
            if code not in (st.PENDING, st.PENDING_WARNING):
                final = code
            yield status, identifier
    finally:
        metrics.CFIND_QUERIES.labels(st.label(final)).inc()


def _find(event, catalogue: CatalogueClient, bridge: Bridge, ae_title: str):
    try:
        identifier = event.identifier
        query = find.parse(identifier, event.request.AffectedSOPClassUID)
    except find.BadIdentifier as exc:
        yield _failure(st.IDENTIFIER_DOES_NOT_MATCH, str(exc))
        return
    except Exception as exc:  # noqa: BLE001 - an undecodable identifier
        yield _failure(st.UNABLE_TO_PROCESS, f"cannot decode the identifier: {exc}")
        return
    pending = st.PENDING_WARNING if query.unsupported else st.PENDING
    offset = 0
    while True:
        if event.is_cancelled:
            yield st.CANCEL, None
            return
        page = query.request.model_copy(update={"limit": FIND_PAGE, "offset": offset})
        try:
            response = bridge.call(catalogue.find(page))
        except CatalogueRefused as exc:
            yield _failure(st.IDENTIFIER_DOES_NOT_MATCH, str(exc))
            return
        except (CatalogueUnavailable, BridgeTimeout, RuntimeError) as exc:
            log.warning("C-FIND: catalogue unavailable", extra={"error": str(exc)})
            yield _failure(st.OUT_OF_RESOURCES, "catalogue unavailable")
            return
        for match in response.matches:
            if event.is_cancelled:
                yield st.CANCEL, None
                return
            yield pending, find.answer(query, match, ae_title)
        offset += len(response.matches)
        if len(response.matches) < FIND_PAGE:
            return


def _failure(status: int, comment: str) -> tuple[Dataset, None]:
    log.warning("C-FIND refused", extra={"status": st.label(status), "reason": comment})
    return _status(Outcome(status, comment)), None


def handle_accepted(event) -> None:
    metrics.ASSOCIATIONS.labels("accepted", "").inc()


def handle_rejected(event, allowed: list[str] | None) -> None:
    calling = event.assoc.requestor.ae_title.strip()
    if allowed is not None and calling not in allowed:
        reason = "calling_ae_not_recognised"
    elif len([a for a in event.assoc.ae.active_associations if a.is_acceptor]) > \
            event.assoc.ae.maximum_associations:
        reason = "local_limit_exceeded"
    else:
        reason = "other"
    metrics.ASSOCIATIONS.labels("rejected", reason).inc()
    log.warning("association rejected", extra={"calling_ae": calling, "reason": reason})
