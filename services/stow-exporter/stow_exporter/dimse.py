"""``dicom:<AE title>`` delivery: C-STORE over one association per study (pynetdicom SCU).

The AE title is resolved through ``exporter.modalities`` (AE -> host, port). Each SOP class
is proposed with the stored transfer syntaxes and the uncompressed ones; an object whose
syntax the peer did not accept is transcoded to one it did. pynetdicom runs blocking in a
worker thread; this module is the one place that crosses into it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
import time
from pathlib import Path

from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE, build_context

from dicomvault.transcode import TranscodeError, transcode
from stow_exporter import metrics
from stow_exporter.delivery import Item, Outcome
from stow_exporter.settings import Modality
from stow_exporter.stowresponse import describe

log = logging.getLogger(__name__)

SUCCESS = 0x0000
WARNINGS = {0xB000, 0xB006, 0xB007}
MAX_CONTEXTS = 128


class CStoreSender:
    def __init__(self, exporter_id: str, called_ae: str, address: Modality, calling_ae: str,
                 *, timeout_s: float) -> None:
        self.exporter_id = exporter_id
        self.called_ae = called_ae
        self.address = address
        self.calling_ae = calling_ae
        self.timeout_s = timeout_s

    @property
    def destination(self) -> str:
        return f"{self.called_ae}@{self.address.host}:{self.address.port}"

    async def close(self) -> None:
        return None

    async def send(self, items: list[Item]) -> Outcome:
        gauge = metrics.IN_FLIGHT.labels(self.exporter_id)
        gauge.inc()
        started = time.perf_counter()
        try:
            return await asyncio.to_thread(self._send_blocking, items)
        finally:
            gauge.dec()
            metrics.REQUEST_SECONDS.labels(self.exporter_id).observe(
                time.perf_counter() - started)

    def _contexts(self, items: list[Item]):
        by_class: dict[str, list[str]] = {}
        for i in items:
            syntaxes = by_class.setdefault(i.sop_class_uid, [])
            for ts in (i.transfer_syntax_uid, ExplicitVRLittleEndian, ImplicitVRLittleEndian):
                if ts not in syntaxes:
                    syntaxes.append(ts)
        contexts = []
        for sop_class, syntaxes in by_class.items():
            # One context per syntax: the peer accepts or rejects each independently.
            contexts += [build_context(sop_class, ts) for ts in syntaxes]
        return contexts[:MAX_CONTEXTS]

    def _send_blocking(self, items: list[Item]) -> Outcome:
        out = Outcome()
        ae = AE(ae_title=self.calling_ae)
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = self.timeout_s
        ae.requested_contexts = self._contexts(items)
        assoc = ae.associate(self.address.host, self.address.port, ae_title=self.called_ae)
        if not assoc.is_established:
            why = "association rejected" if assoc.is_rejected else "association failed"
            for i in items:
                out.retryable[i.sop_instance_uid] = f"{why} by {self.destination}"
            out.reasons.append("association")
            return out
        try:
            with tempfile.TemporaryDirectory(prefix="vault-cstore-") as tmp:
                for n, item in enumerate(items):
                    if not assoc.is_established:
                        out.retryable[item.sop_instance_uid] = "association aborted"
                        out.reasons.append("association")
                        continue
                    self._store_one(assoc, item, Path(tmp) / f"{n}.dcm", out)
        finally:
            if assoc.is_established:
                assoc.release()
        return out

    def _store_one(self, assoc, item: Item, path: Path, out: Outcome) -> None:
        accepted = {cx.transfer_syntax[0] for cx in assoc.accepted_contexts
                    if cx.abstract_syntax == item.sop_class_uid}
        uid = item.sop_instance_uid
        if not accepted:
            out.failed[uid] = f"SOP class {item.sop_class_uid} not accepted by {self.called_ae}"
            out.reasons.append("refused")
            return
        data = item.data
        if item.transfer_syntax_uid not in accepted:
            target = next(ts for ts in (ExplicitVRLittleEndian, ImplicitVRLittleEndian,
                                        *sorted(accepted)) if ts in accepted)
            try:
                data = transcode(data, target)
            except TranscodeError as exc:
                out.failed[uid] = f"cannot transcode to {target}: {exc}"
                out.reasons.append("transcode")
                return
        path.write_bytes(data)
        try:
            status = assoc.send_c_store(path)
        finally:
            os.unlink(path)
        code = getattr(status, "Status", None)
        if code is None:
            out.retryable[uid] = "no C-STORE response (timeout or abort)"
            out.reasons.append("timeout")
        elif code == SUCCESS:
            out.stored.append(uid)
            metrics.SENT_BYTES.labels(self.exporter_id).inc(len(data))
        elif code in WARNINGS:
            out.stored.append(uid)
            out.warnings[uid] = describe(code)
            metrics.SENT_BYTES.labels(self.exporter_id).inc(len(data))
        elif code & 0xFF00 == 0xA700:
            out.retryable[uid] = describe(code)
            out.reasons.append("out_of_resources")
        else:
            out.failed[uid] = describe(code)
            out.reasons.append("refused")
