"""Storage commitment after an export: one CommitmentRequested for exactly the instances sent.

The exporter does not speak N-ACTION itself: it publishes the request on the studies topic and
the commitment service turns it into a COMMIT_SCU job (N-ACTION to the remote AE, the
N-EVENT-REPORT on its listener, StudyCommitted in the study's timeline; what the remote
refuses it re-sends from the cache by C-STORE and asks again, bounded by its
``request_retry`` policy). The remote AE must be in the commitment service's modalities table.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from dicomvault.events import Event, deterministic_id
from dicomvault.events.v1 import commitment_pb2 as cpb
from stow_exporter.queue import Export
from stow_exporter.spec import Exporter

# The commitment service's queue of COMMIT_SCU jobs: its job ids derive from the queue name
# and the request's event id (``JobQueue.submit``), so the exporter can name the job.
COMMIT_SCU_QUEUE = "commitment-scu"


@dataclass(frozen=True)
class CommitmentRequest:
    event: Event
    remote_ae: str
    job_id: str          # the COMMIT_SCU job the commitment service creates for it
    instances: int


def commitment_ae(exporter: Exporter) -> str | None:
    """Whom to ask: ``storageCommitment.remoteAE``, else the AE of a ``dicom:`` URI; None when
    commitment is not enabled."""
    sc = exporter.storage_commitment
    if not sc.enabled:
        return None
    return sc.remote_ae or (exporter.target if exporter.scheme == "dicom" else None)


def commitment_request(exporter: Exporter, export: Export, source: str) -> CommitmentRequest | None:
    """The request for every instance this export has delivered (None: not enabled, or
    nothing was delivered). Its id is derived from the export and the set of instances, so a
    repeated attempt asks once, and a retry that delivers more asks again for all of them."""
    remote = commitment_ae(exporter)
    if remote is None or not export.stored:
        return None
    sent = sorted(export.stored)
    digest = hashlib.sha256("\n".join(sent).encode()).hexdigest()[:16]
    event_id = deterministic_id("commit", exporter.exporter_id, export.id, digest)
    sc = exporter.storage_commitment
    payload = cpb.CommitmentRequested(
        study_instance_uid=export.study_instance_uid, remote_ae=remote,
        requested_by=f"exporter:{exporter.exporter_id}",
        delete_after_commit=sc.delete_after_commit, job_id=export.id,
        report_timeout_seconds=sc.timeout_seconds,
        instances=[cpb.SopReference(sop_class_uid=export.sop_classes[u], sop_instance_uid=u)
                   for u in sent])
    event = Event(payload=payload, source=source, subject=export.study_instance_uid,
                  id=event_id)
    return CommitmentRequest(event, remote, deterministic_id("job", COMMIT_SCU_QUEUE, event_id),
                             len(sent))
