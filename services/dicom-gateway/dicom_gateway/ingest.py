"""The ingest path of C-STORE and STOW-RS: validate, write the Part 10 file durably, publish
InstanceStored, answer with a named status.

``handle`` takes a C-STORE (``StoreRequest``), ``handle_part10`` a STOW-RS part
(``Part10Request``: a whole Part 10 file); both share the validation, the duplicate policy and
the durable write + publish. A C-STORE from an AE of ``recall_aes`` (a remote PACS sending
our own study back) is recorded with source ``recall`` and replaces a cache copy whatever the
duplicate policy. Both block: C-STORE runs in pynetdicom's association threads,
STOW-RS calls it through ``asyncio.to_thread``; publishing crosses into asyncio through the
Bridge.
Nothing is half-recorded: a file written for a request whose InstanceStored the broker did not
take is removed again (or the copy it replaced is put back). The cache tier is any
``CacheStore`` (file system or S3): only its interface is used.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

from dicom_gateway import metrics
from dicom_gateway import statuses as st
from dicom_gateway.part10 import (
    Malformed,
    TooLarge,
    check_framing,
    instance_stored,
    read_header,
    split_file_meta,
)
from dicom_gateway.settings import DuplicatePolicy, GatewaySettings
from dicom_gateway.space import FreeSpace
from dicom_gateway.spare_files import SpareFiles
from dicomvault.audit.refusals import StoreRefusals
from dicomvault.bus import Publisher, PublishError
from dicomvault.dicom.bridge import Bridge, BridgeTimeout
from dicomvault.events import Event, deterministic_id, types
from dicomvault.events.v1 import events_pb2 as ev
from dicomvault.store import (
    AioSync,
    CacheStore,
    Draft,
    FileStore,
    InvalidUID,
    StoreError,
    instance_key,
    validate_uid,
)

log = logging.getLogger(__name__)

SOURCE = "dicomvault/dicom-gateway"


@dataclass(frozen=True)
class StoreRequest:
    """One received C-STORE, independent of pynetdicom."""

    affected_sop_class_uid: str
    affected_sop_instance_uid: str
    transfer_syntax_uid: str
    dataset: bytes | memoryview  # as the peer encoded it, without file meta
    part10: Callable[[], bytes]  # the same bytes as a Part 10 file (preamble + file meta)
    calling_ae: str
    called_ae: str
    received: float  # epoch seconds when the dataset was complete
    peer_address: str = ""  # host:port of the association's peer (audit trail)
    association_id: str = ""  # one per association (audit: one message per study per association)
    sha256: str = ""  # of part10(), when the receiver computed it as the data arrived


@dataclass(frozen=True)
class Part10Request:
    """One received Part 10 file (a STOW-RS part), independent of the HTTP layer."""

    part10: bytes  # the file as the client sent it: stored unchanged
    source: str  # InstanceStored.source, e.g. "dicomweb"
    calling_ae: str
    called_ae: str
    received: float  # epoch seconds
    study_instance_uid: str = ""  # from the request URL: the object must belong to it
    peer_address: str = ""  # the HTTP client (audit trail)
    user_id: str = ""  # the bearer token's subject, if any
    association_id: str = ""  # one per STOW-RS request


@dataclass(frozen=True)
class Outcome:
    status: int
    comment: str = ""
    study_instance_uid: str = ""  # of the stored object, on Success
    series_instance_uid: str = ""


@dataclass
class Pending:
    """A durable write (or an identical resend) whose InstanceStored is still to be published.

    Holds the storage key's lock until ``release``: stores of one key stay serialised from the
    write to the broker's acknowledgement, whichever thread or loop finishes them."""

    key: str
    event: Event
    source: str
    lock: threading.Lock
    written: bool  # False: an identical copy was already there (nothing to undo)
    previous: bytes | None = None  # the copy a replace overwrote (put back on failure)
    draft: Draft | None = None  # a write still to be flushed and put in place (on the loop)
    started: float = 0.0  # perf_counter when the write began (for the write phase)

    def release(self) -> None:
        self.lock.release()

    @property
    def outcome(self) -> Outcome:
        """Success, once the event is acknowledged."""
        msg = self.event.payload
        return Outcome(st.SUCCESS, study_instance_uid=msg.study_instance_uid,
                       series_instance_uid=msg.series_instance_uid)


def stored_event(msg: ev.InstanceStored, replaces_sha256: str = "", generation: str = "") -> Event:
    """InstanceStored with an id derived from (key, content, cache copy): re-emitting it is
    the same fact.

    ``generation`` is the store's token of the cache copy the event records (it changes each
    time the key is written): an identical resend while that copy is still there republishes
    the same fact, while a copy written anew (an identical resend after the original copy
    was evicted) is a new fact the catalogue records, not a duplicate it drops.

    A recall (source ``recall``) is a new fact each time the copy comes back, even onto a copy
    still present (the catalogue asked for it because it no longer counts that copy): its id
    also names the receipt time.
    """
    parts = [types.INSTANCE_STORED, msg.storage_key, msg.sha256]
    if generation:
        parts += ["generation", generation]
    if msg.source == "recall":
        parts += ["recall", str(msg.received_time.ToNanoseconds())]
    if replaces_sha256:
        parts += ["replaces", replaces_sha256]
    return Event(payload=msg, source=SOURCE, subject=msg.study_instance_uid,
                 id=deterministic_id(*parts))


# One lock table per process, shared by every Ingest (DIMSE and DICOMweb): stores of one
# storage key are serialised whichever door they came through.
_LOCKS = [threading.Lock() for _ in range(64)]  # striped by storage key


class Ingest:
    def __init__(self, settings: GatewaySettings, store: CacheStore, publisher: Publisher,
                 bridge: Bridge, refusals: StoreRefusals | None = None) -> None:
        self.settings = settings
        self.refusals = refusals  # refused C-STOREs, one audit fact per association
        self.policy = settings.gateway.duplicate_policy
        self.store = store
        self.publisher = publisher
        self.bridge = bridge
        self.topic = settings.bus.topics.instances
        self._locks = _LOCKS
        self.recall_aes = {ae.strip() for ae in settings.gateway.recall_aes if ae.strip()}
        self.max_inflated = settings.gateway.max_inflated_bytes
        self.space = FreeSpace(store, settings.gateway)
        # C-STOREs on the loop may write there while no other is under way (see
        # ``handle_async``); never to object storage, whose PUT takes a network round trip.
        self.inline_writes = settings.gateway.inline_writes and isinstance(store, FileStore)
        self.inline_max_bytes = settings.gateway.inline_max_bytes
        # Inline writes that find another store under way await their flushes (native AIO).
        self.async_flushes = settings.gateway.async_flushes and self.inline_writes \
            and isinstance(store, FileStore) and store.fsync
        self._active = 0  # stores of this Ingest under way on its loop (write to ack)
        # Per loop: its native AIO for the flushes of inline writes (None: they block it).
        self._aio: dict[asyncio.AbstractEventLoop, AioSync | None] = {}
        # Temp files made ahead for the next store of a series (see ``spare_files``).
        self.spare_files = SpareFiles(store, settings.gateway.spare_max_age_s,
                                      lambda: self._active > 0) \
            if settings.gateway.spare_files and isinstance(store, FileStore) and store.fsync \
            and self.inline_writes else None

    def handle_part10(self, rq: Part10Request) -> Outcome:
        """A STOW-RS part (from a worker thread): durable write, then the event."""
        return self._finish_bridged(self.prepare_part10(rq))

    async def handle_part10_async(self, rq: Part10Request,
                                  executor: Executor | None = None) -> Outcome:
        """A STOW-RS part on the loop: the durable write on ``executor``, then the event."""
        return await self._handle_async(self.prepare_part10, rq, executor)

    def prepare_part10(self, rq: Part10Request) -> Outcome | Pending:
        try:
            return self._handle_part10(rq)
        except Exception:  # noqa: BLE001 - every exit is a named status
            log.exception("storing a Part 10 object failed unexpectedly")
            return Outcome(st.PROCESSING_FAILURE, "unexpected gateway error")

    def _handle_part10(self, rq: Part10Request) -> Outcome | Pending:
        try:
            meta, offset = split_file_meta(rq.part10)
        except Malformed as exc:
            return Outcome(st.CANNOT_UNDERSTAND, str(exc))
        try:
            affected_class = validate_uid(meta.get("MediaStorageSOPClassUID", ""),
                                          "Media Storage SOP Class UID")
            affected_sop = validate_uid(meta.get("MediaStorageSOPInstanceUID", ""),
                                        "Media Storage SOP Instance UID")
        except InvalidUID as exc:
            return Outcome(st.DATASET_DOES_NOT_MATCH, str(exc))
        return self._ingest(rq.part10, memoryview(rq.part10)[offset:], meta["TransferSyntaxUID"],
                            affected_class, affected_sop, source=rq.source,
                            calling_ae=rq.calling_ae, called_ae=rq.called_ae,
                            received=rq.received, study=rq.study_instance_uid,
                            who=(rq.peer_address, rq.user_id, rq.association_id))

    def handle(self, rq: StoreRequest) -> Outcome:
        """C-STORE from a pynetdicom thread: durable write, then the event through the Bridge."""
        return self._finish_bridged(self.prepare(rq))

    async def handle_async(self, rq: StoreRequest, executor: Executor | None = None) -> Outcome:
        """C-STORE on the node's loop (the storage fast path): the durable write on a thread of
        ``executor``, then the event published from the loop itself.

        With ``inline_writes``, a store that finds no other store of this Ingest under way
        writes on the loop itself: the two hand-overs to a thread and back cost more than the
        write's own CPU (the fsync's wait is the same either way), and what else the worker's
        loop serves meanwhile (other associations' reads, queries) waits for one write at
        most; a second store arriving then goes to a thread, unless its dataset is at most
        ``inline_max_bytes`` (a small image's write and fsync hold the loop for less than the
        hand-overs cost). It never waits for a storage key's lock on the loop: a held lock
        sends it to a thread like any other. With ``async_flushes``, a store written on the loop
        while another is under way awaits its two flushes through native AIO (``AioSync``):
        the loop serves the other stores meanwhile instead of standing still for the device."""
        return await self._handle_async(self.prepare, rq, executor, inline=self.inline_writes,
                                        small=len(rq.dataset) <= self.inline_max_bytes)

    async def _handle_async(self, prepare: Callable[..., Outcome | Pending | None], rq: Any,
                            executor: Executor | None, inline: bool = False,
                            small: bool = False) -> Outcome:
        self._active += 1
        try:
            return await self._store_async(prepare, rq, executor,
                                           inline and (small or self._active == 1))
        finally:
            self._active -= 1

    async def _store_async(self, prepare: Callable[..., Outcome | Pending | None], rq: Any,
                           executor: Executor | None, inline: bool) -> Outcome:
        # Undoing runs on the loop (rare, small): never waiting for a thread of ``executor``
        # that may itself be waiting for this key's lock.
        loop = asyncio.get_running_loop()
        # Another store under way: await this one's flushes instead of blocking the loop.
        aio = self._aio_for(loop) if inline and self._active > 1 and self.async_flushes \
            else None
        prepared = prepare(rq, wait=False, defer=aio is not None) if inline else None
        if prepared is None:
            writing = loop.run_in_executor(executor, prepare, rq)
            try:
                prepared = await asyncio.shield(writing)
            except asyncio.CancelledError:  # stopping: the write finishes, then is undone
                writing.add_done_callback(self._abandon)
                raise
        if isinstance(prepared, Outcome):
            return prepared
        assert prepared is not None  # a blocking prepare always decides
        if prepared.draft is not None:
            assert aio is not None
            if (failed := await self._finish_write(prepared, aio)) is not None:
                return failed
        try:
            started = time.perf_counter()
            async with asyncio.timeout(self.settings.gateway.store_timeout_s):
                await self.publisher.publish(self.topic, prepared.event,
                                             key=prepared.event.subject)
            metrics.PHASE["publish"].observe(time.perf_counter() - started)
        except (PublishError, TimeoutError) as exc:
            metrics.PUBLISH_FAILURES.labels(prepared.source).inc()
            return self._not_taken(prepared, PublishError(str(exc) or "publish timed out"))
        except Exception:  # noqa: BLE001 - every exit is a named status
            log.exception("publishing InstanceStored failed unexpectedly")
            return self._not_taken(prepared, None, st.PROCESSING_FAILURE)
        except BaseException:  # cancelled (stopping): undo, never leave the key locked
            self._not_taken(prepared, None)
            raise
        prepared.release()
        if self.spare_files is not None and inline:  # not after STOW-RS (on threads)
            self.spare_files.after_store(loop, prepared.key, prepared.event.payload.size_bytes)
        return prepared.outcome

    def close(self) -> None:
        """Remove the spare temp files; flush the folders of final names still pending;
        release the loops' native AIO contexts (on the loop, after the last store)."""
        if self.spare_files is not None:
            self.spare_files.close()
        if isinstance(self.store, FileStore):
            self.store.flush_names()  # the final names of the last stores, durable now
        for aio in self._aio.values():
            if aio is not None:
                aio.close()
        self._aio.clear()

    def _aio_for(self, loop: asyncio.AbstractEventLoop) -> AioSync | None:
        """``loop``'s native AIO, opened on first use (None: this system has none)."""
        try:
            return self._aio[loop]
        except KeyError:
            aio = self._aio[loop] = AioSync.open(loop)
            return aio

    async def _finish_write(self, pending: Pending, aio: AioSync) -> Outcome | None:
        """Flush and place a write begun on the loop, awaiting the device instead of blocking
        the loop; an Outcome (the key released) when that fails."""
        assert pending.draft is not None and isinstance(self.store, FileStore)
        try:
            await self.store.finish_async(pending.draft, aio)
        except StoreError as exc:
            log.error("cannot write to the cache tier", extra={"key": pending.key,
                                                                "error": str(exc)})
            pending.release()
            return Outcome(st.OUT_OF_RESOURCES, "cannot write to the cache tier")
        except BaseException:  # cancelled (stopping): a file already in place is undone
            if pending.draft.placed:
                self._not_taken(pending, None)
            else:
                pending.release()
            raise
        pending.draft = None
        metrics.PHASE["write"].observe(time.perf_counter() - pending.started)
        return None

    def _abandon(self, writing: asyncio.Future) -> None:
        if not writing.cancelled() and isinstance(writing.result(), Pending):
            self._not_taken(writing.result(), None)

    def prepare(self, rq: StoreRequest, wait: bool = True,
                defer: bool = False) -> Outcome | Pending | None:
        """Validate and write durably: an Outcome when nothing is left to publish, else the
        Pending event (the storage key's lock is held until it is finished). ``wait=False``:
        None, nothing written, when the storage key's lock is held by another store.
        ``defer``: a new file is only begun (``Pending.draft``): the caller flushes it."""
        try:
            return self._prepare(rq, wait, defer)
        except Exception:  # noqa: BLE001 - every exit is a named status
            log.exception("C-STORE failed unexpectedly")
            return Outcome(st.PROCESSING_FAILURE, "unexpected gateway error")

    def _prepare(self, rq: StoreRequest, wait: bool = True,
                 defer: bool = False) -> Outcome | Pending | None:
        # 1. The request's own UIDs, then the dataset's framing and header.
        try:
            affected_class = validate_uid(rq.affected_sop_class_uid, "Affected SOP Class UID")
            affected_sop = validate_uid(rq.affected_sop_instance_uid, "Affected SOP Instance UID")
        except InvalidUID as exc:
            return Outcome(st.DATASET_DOES_NOT_MATCH, str(exc))
        try:
            check_framing(rq.dataset, rq.transfer_syntax_uid, self.max_inflated)
            part10 = rq.part10()
        except TooLarge as exc:
            return Outcome(st.OUT_OF_RESOURCES, str(exc))
        except Malformed as exc:
            return Outcome(st.CANNOT_UNDERSTAND, str(exc))
        return self._ingest(part10, None, rq.transfer_syntax_uid, affected_class, affected_sop,
                            source="recall" if rq.calling_ae.strip() in self.recall_aes
                            else "dimse", calling_ae=rq.calling_ae, called_ae=rq.called_ae,
                            received=rq.received, who=(rq.peer_address, "", rq.association_id),
                            wait=wait, sha256=rq.sha256, defer=defer)

    def _publish_bridged(self, pending: Pending) -> None:
        """Publish from a pynetdicom thread; raise PublishError when not acknowledged."""
        try:
            started = time.perf_counter()
            self.bridge.call(
                self.publisher.publish(self.topic, pending.event, key=pending.event.subject),
                timeout_s=self.settings.gateway.store_timeout_s)
            metrics.PHASE["publish"].observe(time.perf_counter() - started)
        except (PublishError, BridgeTimeout, RuntimeError) as exc:
            metrics.PUBLISH_FAILURES.labels(pending.source).inc()
            raise PublishError(str(exc)) from exc

    def _finish_bridged(self, prepared: Outcome | Pending) -> Outcome:
        if isinstance(prepared, Outcome):
            return prepared
        try:
            self._publish_bridged(prepared)
        except PublishError as exc:
            return self._not_taken(prepared, exc)
        except Exception:  # noqa: BLE001 - every exit is a named status
            log.exception("publishing InstanceStored failed unexpectedly")
            return self._not_taken(prepared, None, st.PROCESSING_FAILURE)
        except BaseException:
            self._not_taken(prepared, None)
            raise
        prepared.release()
        return prepared.outcome

    def _not_taken(self, pending: Pending, exc: PublishError | None,
                   status: int = st.BUS_UNAVAILABLE) -> Outcome:
        """The broker did not take the event: undo a new write, release the key."""
        try:
            if status != st.BUS_UNAVAILABLE:
                if pending.written:
                    self._undo(pending.key, pending.previous)
                return Outcome(status, "unexpected gateway error")
            if pending.written:
                self._undo(pending.key, pending.previous)
                if exc is not None:
                    log.warning("InstanceStored not taken; file removed",
                                extra={"key": pending.key, "error": str(exc)})
                return Outcome(st.BUS_UNAVAILABLE, "event bus unavailable; send again later")
            return Outcome(st.BUS_UNAVAILABLE, f"event bus unavailable: {exc}"[:64])
        finally:
            pending.release()

    def _ingest(self, part10: bytes, dataset: bytes | None, transfer_syntax: str,
                affected_class: str, affected_sop: str, *, source: str, calling_ae: str,
                called_ae: str, received: float, study: str = "",
                who: tuple[str, str, str] = ("", "", ""),
                wait: bool = True, sha256: str = "",
                defer: bool = False) -> Outcome | Pending | None:
        """Validate the object (framing of ``dataset`` unless already checked, header, UIDs),
        then write it durably and publish InstanceStored under the duplicate policy.
        ``sha256``: of ``part10``, when the receiver computed it (else computed here)."""
        started = time.perf_counter()
        try:
            if dataset is not None:
                check_framing(dataset, transfer_syntax, self.max_inflated)
            header = read_header(part10)
        except TooLarge as exc:
            return Outcome(st.OUT_OF_RESOURCES, str(exc))
        except Malformed as exc:
            return Outcome(st.CANNOT_UNDERSTAND, str(exc))
        try:
            sop_class = validate_uid(header["SOPClassUID"], "SOP Class UID")
            sop = validate_uid(header["SOPInstanceUID"], "SOP Instance UID")
            key = instance_key(str(header["StudyInstanceUID"]),
                               str(header["SeriesInstanceUID"]), sop)
        except InvalidUID as exc:
            return Outcome(st.DATASET_DOES_NOT_MATCH, str(exc))
        if sop != affected_sop:
            return Outcome(st.DATASET_DOES_NOT_MATCH,
                           "SOP Instance UID differs from Affected SOP Instance UID")
        if sop_class != affected_class:
            return Outcome(st.DATASET_DOES_NOT_MATCH,
                           "SOP Class UID differs from Affected SOP Class UID")
        if study and str(header["StudyInstanceUID"]) != study:
            return Outcome(st.DATASET_DOES_NOT_MATCH,
                           "Study Instance UID differs from the study of the request")
        metrics.RECEIVED_BYTES.inc(len(part10))
        sha = sha256 or hashlib.sha256(part10).hexdigest()
        msg = instance_stored(header, size=len(part10), sha256=sha, key=key,
                              calling_ae=calling_ae, called_ae=called_ae, source=source,
                              received=received)
        msg.peer_address, msg.user_id, msg.association_id = who
        metrics.PHASE["checks"].observe(time.perf_counter() - started)
        lock = self._locks[hash(key) % len(self._locks)]
        if not lock.acquire(blocking=wait):
            return None  # another store holds the key's lock: the caller writes on a thread
        try:
            outcome = self._write(key, part10, msg, source, lock, defer)
        except BaseException:
            lock.release()
            raise
        if isinstance(outcome, Outcome):
            lock.release()
        return outcome

    def _write(self, key: str, part10: bytes, msg: ev.InstanceStored, source: str,
               lock: threading.Lock, defer: bool = False) -> Outcome | Pending:
        # 2. Duplicates: identical bytes are the same instance; different bytes follow the policy.
        previous: bytes | None = None
        try:
            generation = self.store.generation(key)  # None: no copy in the cache
            if generation is not None:
                previous = self.store.get(key)
        except StoreError as exc:
            log.error("cannot read a stored copy", extra={"key": key, "error": str(exc)})
            return Outcome(st.OUT_OF_RESOURCES, "cannot read the stored copy")
        replaces = ""
        if previous is not None:
            old_sha = hashlib.sha256(previous).hexdigest()
            if old_sha == msg.sha256:
                metrics.DUPLICATES.labels("identical").inc()
                # Publish again: harmless (same event id), and heals a lost event.
                return Pending(key, stored_event(msg, generation=generation or ""), source,
                               lock, written=False)
            if source == "recall":
                # Our own study coming back from a remote PACS: its file meta group is the
                # sender's, the data set ours. It replaces the cache copy whatever the policy.
                metrics.DUPLICATES.labels("recalled").inc()
            elif self.policy is DuplicatePolicy.REJECT:
                metrics.DUPLICATES.labels("rejected").inc()
                return Outcome(st.DUPLICATE_SOP_INSTANCE,
                               "SOP Instance UID already stored with other content")
            elif self.policy is DuplicatePolicy.KEEP:
                metrics.DUPLICATES.labels("kept").inc()
                return Outcome(st.SUCCESS, study_instance_uid=msg.study_instance_uid,
                               series_instance_uid=msg.series_instance_uid)
            else:
                metrics.DUPLICATES.labels("replaced").inc()
            replaces = old_sha
        # 3. Durable object (file renamed into place, or S3 PUT verified by its ETag), then
        # the event; only then Success.
        if refused := self.space.refusal(len(part10)):
            return Outcome(st.OUT_OF_RESOURCES, refused)
        started = time.perf_counter()
        draft = None
        try:
            if defer and isinstance(self.store, FileStore):
                draft = self.store.begin(key, part10, msg.sha256)
                written = draft.stored
            else:
                written = self.store.put(key, part10, msg.sha256)
                metrics.PHASE["write"].observe(time.perf_counter() - started)
        except StoreError as exc:
            log.error("cannot write to the cache tier", extra={"key": key, "error": str(exc)})
            return Outcome(st.OUT_OF_RESOURCES, "cannot write to the cache tier")
        return Pending(key, stored_event(msg, replaces, written.generation), source, lock,
                       written=True, previous=previous, draft=draft, started=started)

    def _undo(self, key: str, previous: bytes | None) -> None:
        try:
            if previous is None:
                self.store.delete(key)
            else:
                self.store.put(key, previous)
        except OSError as exc:
            log.error("could not undo a write", extra={"key": key, "error": str(exc)})
