"""The DIMSE handlers (pynetdicom's, of ``listener.Listener``; C-STORE also on the storage fast
path): one function per DIMSE service, dependencies bound through ``evt_handlers`` tuples,
every exit a named status from ``statuses`` (N-ACTION: from ``dicomvault.dicom.commitment``).

Statuses: see ``dicom_gateway.statuses`` and docs/gateway.md.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from concurrent.futures import Executor

from pydicom.dataset import Dataset

from dicom_gateway import find, metrics
from dicom_gateway import statuses as st
from dicom_gateway.commitment import CommitmentHandOff
from dicom_gateway.ingest import Ingest, Outcome, StoreRequest
from dicom_gateway.modalities import Modalities, Operation
from dicom_gateway.retrieve import Response, RetrieveEvent, Retriever, TooMany, send_store
from dicom_gateway.retrieve import parse as parse_retrieve
from dicomvault.audit import MINOR_FAILURE, SERIOUS_FAILURE, SUCCESS, Action, AuditTrail
from dicomvault.audit.refusals import StoreRefusals
from dicomvault.dicom import commitment as sc
from dicomvault.dicom.bridge import Bridge, BridgeTimeout
from dicomvault.query import CatalogueClient, CatalogueRefused, CatalogueUnavailable

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


def _refused(assoc, operation: Operation, modalities: Modalities) -> Outcome | None:
    """NOT_PERMITTED when the modalities table does not allow the calling AE this."""
    return refusal(assoc.requestor.ae_title.strip(), operation, modalities)


def refusal(calling: str, operation: Operation, modalities: Modalities) -> Outcome | None:
    """NOT_PERMITTED when the modalities table does not allow ``calling`` this."""
    if modalities.permitted(calling, operation):
        return None
    metrics.OPERATIONS_REFUSED.labels(operation.value).inc()
    log.warning("operation not permitted", extra={"calling_ae": calling,
                                                  "operation": operation.value})
    return Outcome(st.NOT_PERMITTED, f"{calling} may not {operation.value} here")


def handle_store(event, ingest: Ingest, modalities: Modalities) -> Dataset:
    """C-STORE (pynetdicom listener): durable file, InstanceStored on the broker, Success."""
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
        peer_address=peer_of(assoc),
        association_id=f"{id(assoc):x}",
    )
    return _status(store(request, ingest, modalities))


def store(request: StoreRequest, ingest: Ingest, modalities: Modalities) -> Outcome:
    """C-STORE from a pynetdicom thread: permission, then ``Ingest.handle``."""
    started = time.monotonic()
    outcome = refusal(request.calling_ae, Operation.STORE, modalities) or ingest.handle(request)
    return _store_counted(request, outcome, started, ingest.refusals)


async def store_async(request: StoreRequest, ingest: Ingest, modalities: Modalities,
                      executor: Executor) -> Outcome:
    """C-STORE on the node's loop (storage fast path): permission, then
    ``Ingest.handle_async`` (the write on ``executor``, the publish on the loop)."""
    started = time.monotonic()
    outcome = refusal(request.calling_ae, Operation.STORE, modalities) \
        or await ingest.handle_async(request, executor)
    return _store_counted(request, outcome, started, ingest.refusals)


def _store_counted(request: StoreRequest, outcome: Outcome, started: float,
                   refusals: StoreRefusals | None = None) -> Outcome:
    if outcome.status != st.NOT_PERMITTED:
        metrics.STORE_DURATION.observe(time.monotonic() - started)
    if outcome.status == st.SUCCESS:
        metrics.CSTORE_SUCCESS.inc()
        return outcome
    metrics.CSTORE_REQUESTS.labels(st.label(outcome.status)).inc()
    if outcome.status != st.NOT_PERMITTED:
        log.warning("C-STORE refused", extra={"status": st.label(outcome.status),
                                              "reason": outcome.comment[:200],
                                              "calling_ae": request.calling_ae})
    if refusals is not None and outcome.status != st.SUCCESS:  # one audit fact per association
        refusals.refused(request.association_id, st.label(outcome.status),
                         outcome=audit_outcome(outcome.status),
                         calling_ae=request.calling_ae, called_ae=request.called_ae,
                         peer_address=request.peer_address)
    return outcome


def peer_of(assoc) -> str:
    """host:port of the association's requestor."""
    return f"{assoc.requestor.address}:{assoc.requestor.port}"


def audit_outcome(status: int) -> int:
    """EventOutcomeIndicator of a final DIMSE status: success (or cancel), minor failure
    (refused: not permitted, bad identifier, unknown destination), serious failure."""
    if status in (st.SUCCESS, st.CANCEL):
        return SUCCESS
    if status in (st.NOT_PERMITTED, st.IDENTIFIER_DOES_NOT_MATCH,
                  st.MOVE_DESTINATION_UNKNOWN) or 0xB000 <= status <= 0xBFFF:
        return MINOR_FAILURE
    return SERIOUS_FAILURE


def _audit_dimse(audit: AuditTrail | None, action: int, event, status: int,
                 destination: str = "") -> None:
    """One audit fact for a C-FIND / C-MOVE / C-GET that ended with ``status``."""
    if audit is None:
        return
    assoc = event.assoc
    try:
        raw = event.request.Identifier
        query = raw.getvalue() if raw is not None else b""
    except Exception:  # noqa: BLE001 - the identifier is the peer's: maybe undecodable
        query = b""
    try:
        study = str(getattr(event.identifier, "StudyInstanceUID", "") or "")
    except Exception:  # noqa: BLE001
        study = ""
    calling = assoc.requestor.ae_title.strip()
    audit.record(action, outcome=audit_outcome(status), user_id=calling,
                 peer_address=peer_of(assoc), calling_ae=calling,
                 called_ae=assoc.acceptor.ae_title.strip(),
                 service={0x0020: "C-FIND", 0x0021: "C-MOVE", 0x0010: "C-GET"}.get(
                     int(getattr(event.request, "CommandField", 0) or 0), ""),
                 study_instance_uids=[s for s in study.split("\\") if s][:100],
                 sop_class_uid=str(event.request.AffectedSOPClassUID or ""), query=query,
                 description=st.label(status), destination=destination,
                 association_id=f"{id(assoc):x}")


def handle_find(event, catalogue: CatalogueClient, bridge: Bridge, ae_title: str,
                modalities: Modalities, audit: AuditTrail | None = None):
    """C-FIND (Patient Root, Study Root): the catalogue matches, we answer every match."""
    final = st.SUCCESS
    refused = _refused(event.assoc, Operation.QUERY, modalities)
    answers = ([(_status(refused), None)] if refused is not None
               else _find(event, catalogue, bridge, ae_title))
    try:
        for status, identifier in answers:
            code = status.Status if isinstance(status, Dataset) else status
            if code not in (st.PENDING, st.PENDING_WARNING):
                final = code
            yield status, identifier
    finally:
        metrics.CFIND_QUERIES.labels(st.label(final)).inc()
        _audit_dimse(audit, Action.QUERY, event, final)


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


def handle_move(event: RetrieveEvent, retriever: Retriever,
                audit: AuditTrail | None = None) -> Iterator[Response]:
    """C-MOVE (Patient Root, Study Root): C-STORE every matching cached instance to the Move
    Destination of the modalities table; recall those off the cache (bounded wait)."""
    yield from _counted(event, _move(event, retriever), audit)


def handle_get(event: RetrieveEvent, retriever: Retriever,
               audit: AuditTrail | None = None) -> Iterator[Response]:
    """C-GET (Patient Root, Study Root): C-STORE every matching cached instance back on the
    requester's association (the storage contexts it proposed with the SCP role)."""
    yield from _counted(event, _get(event, retriever), audit)


def _counted(event: RetrieveEvent, responses: Iterator[Response],
             audit: AuditTrail | None = None) -> Iterator[Response]:
    final = st.PROCESSING_FAILURE
    try:
        for response in responses:
            final = response.status
            yield response
    finally:
        metrics.RETRIEVE_REQUESTS.labels(event.operation, st.label(final)).inc()
        _audit_dimse(audit, Action.RETRIEVE_STARTED, event, final,
                     str(getattr(event.request, "MoveDestination", "") or "").strip())
        if final not in (st.SUCCESS, st.PENDING):
            log.warning("retrieve ended", extra={"operation": event.operation,
                                                 "status": st.label(final),
                                                 "calling_ae": event.calling_ae})


def _targets(event: RetrieveEvent, retriever: Retriever):
    """(targets, None) or (None, refusal)."""
    refused = _refused(event.assoc, Operation.RETRIEVE, retriever.modalities)
    if refused is not None:
        return None, Response(refused.status, comment=refused.comment)
    if event.identifier is None:
        return None, Response(st.UNABLE_TO_PROCESS, comment="cannot decode the identifier")
    try:
        request = parse_retrieve(event.identifier, str(event.request.AffectedSOPClassUID))
    except find.BadIdentifier as exc:
        return None, Response(st.IDENTIFIER_DOES_NOT_MATCH, comment=str(exc))
    except Exception as exc:  # noqa: BLE001 - pydicom decodes lazily: raised on first read
        return None, Response(st.UNABLE_TO_PROCESS,
                              comment=f"cannot decode the identifier: {exc}")
    try:
        return retriever.resolve(request), None
    except CatalogueRefused as exc:
        return None, Response(st.IDENTIFIER_DOES_NOT_MATCH, comment=str(exc))
    except TooMany as exc:
        return None, Response(st.MATCHES_UNKNOWN, comment=str(exc))
    except (CatalogueUnavailable, BridgeTimeout, RuntimeError) as exc:
        log.warning("retrieve: catalogue unavailable", extra={"error": str(exc)})
        return None, Response(st.MATCHES_UNKNOWN, comment="catalogue unavailable")


def _move(event: RetrieveEvent, retriever: Retriever) -> Iterator[Response]:
    destination_ae = str(event.request.MoveDestination or "").strip()
    targets, refusal = _targets(event, retriever)
    if refusal is not None:
        yield refusal
        return
    destination = retriever.modalities.destination(destination_ae)
    if destination is None:
        yield Response(st.MOVE_DESTINATION_UNKNOWN,
                       comment=f"move destination {destination_ae!r} unknown"[:64])
        return
    if not targets:
        yield Response(st.SUCCESS, None, 0, 0, 0)
        return
    sub = retriever.open_destination(destination_ae, destination, targets)
    if sub is None:
        yield Response(st.MOVE_DESTINATION_UNKNOWN,
                       comment=f"no association with {destination_ae}"[:64])
        return
    originator = {"originator_aet": retriever.cfg.ae_title,
                  "originator_id": event.request.MessageID}
    try:
        yield from retriever.suboperations(
            "move", targets, lambda t, n: send_store(sub, t, n, **originator),
            event.calling_ae, event.is_cancelled)
    finally:
        sub.release()
        sub.ae.shutdown()


def _get(event: RetrieveEvent, retriever: Retriever) -> Iterator[Response]:
    targets, refusal = _targets(event, retriever)
    if refusal is not None:
        yield refusal
        return
    if not targets:
        yield Response(st.SUCCESS, None, 0, 0, 0)
        return
    base = int(event.request.MessageID)
    yield from retriever.suboperations(
        "get", targets, lambda t, n: send_store(event.assoc, t, (base + n) % 65536 or 1),
        event.calling_ae, event.is_cancelled)


def handle_accepted(event) -> None:
    metrics.ASSOCIATIONS.labels("accepted", "").inc()


def handle_rejected(event, allowed: list[str] | None, audit: AuditTrail | None = None) -> None:
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
    if audit is not None and reason != "local_limit_exceeded":
        audit.record(Action.ASSOCIATION_REFUSED, outcome=MINOR_FAILURE, user_id=calling,
                     peer_address=peer_of(event.assoc), calling_ae=calling,
                     called_ae=event.assoc.acceptor.ae_title.strip(), service="A-ASSOCIATE",
                     description=reason)


def handle_n_action(event, handoff: CommitmentHandOff):
    """N-ACTION Request Storage Commitment: check, hand over, then (only then) Success."""
    assoc = event.assoc
    calling = str(assoc.requestor.ae_title).strip()
    verdict = sc.check_request(
        event.action_type, event.request.RequestedSOPInstanceUID,
        lambda: event.action_information,
        handoff.modalities.permitted(calling, Operation.COMMITMENT))
    if verdict.request is None:
        metrics.COMMITMENT_REQUESTS.labels(verdict.outcome).inc()
        log.warning("storage commitment request refused",
                    extra={"calling_ae": calling, "status": f"0x{verdict.status:04X}",
                           "reason": verdict.reason})
        return verdict.status, None
    request = verdict.request
    try:
        handoff.hand_over(handoff.fact(calling, str(assoc.acceptor.ae_title).strip(),
                                       peer_of(assoc), request), request.transaction_uid)
    except Exception as exc:  # noqa: BLE001 - not recorded: the modality asks again later
        metrics.COMMITMENT_REQUESTS.labels("unavailable").inc()
        log.error("storage commitment request not handed over (broker unavailable)",
                  extra={"calling_ae": calling, "transaction_uid": request.transaction_uid,
                         "error": repr(exc)})
        return sc.RESOURCE_LIMITATION, None
    metrics.COMMITMENT_REQUESTS.labels("accepted").inc()
    log.info("storage commitment request handed over",
             extra={"calling_ae": calling, "transaction_uid": request.transaction_uid,
                    "instances": len(request.refs)})
    return sc.SUCCESS, None
