"""The event type names (``ce_type``), one constant per type, looked up in the one table
that maps them to their messages (``dicomvault.events.TYPES``): code that names a type by its
string uses these, never a copy of the string."""

from __future__ import annotations

from dicomvault.events import TYPE_OF
from dicomvault.events.v1 import archive_pb2 as ar
from dicomvault.events.v1 import commitment_pb2 as cpb
from dicomvault.events.v1 import events_pb2 as ev
from dicomvault.events.v1 import exports_pb2 as ex
from dicomvault.events.v1 import jobs_pb2 as jb
from dicomvault.events.v1 import optical_pb2 as op

INSTANCE_STORED = TYPE_OF[ev.InstanceStored]
STUDY_STABLE = TYPE_OF[ev.StudyStable]
RECALL_REQUESTED = TYPE_OF[ev.RecallRequested]
STUDY_ARCHIVED = TYPE_OF[ev.StudyArchived]
STUDY_EVICTED = TYPE_OF[ev.StudyEvicted]
JOB_CREATED = TYPE_OF[jb.JobCreated]
JOB_STARTED = TYPE_OF[jb.JobStarted]
JOB_PROGRESSED = TYPE_OF[jb.JobProgressed]
JOB_RETRY_SCHEDULED = TYPE_OF[jb.JobRetryScheduled]
JOB_COMPLETED = TYPE_OF[jb.JobCompleted]
JOB_FAILED = TYPE_OF[jb.JobFailed]
JOB_WAITING = TYPE_OF[jb.JobWaiting]
JOB_STATE_CHANGED = TYPE_OF[jb.JobStateChanged]
QUEUE_STATE_CHANGED = TYPE_OF[jb.QueueStateChanged]
JOB_COMMAND_ISSUED = TYPE_OF[jb.JobCommandIssued]
STUDY_RECALLED = TYPE_OF[ar.StudyRecalled]
VOLUME_CLOSED = TYPE_OF[op.VolumeClosed]
VOLUME_BURNED = TYPE_OF[op.VolumeBurned]
VOLUME_BURN_FAILED = TYPE_OF[op.VolumeBurnFailed]
VOLUME_VERIFIED = TYPE_OF[op.VolumeVerified]
VOLUME_DELETED = TYPE_OF[op.VolumeDeleted]
MEDIA_REQUESTED = TYPE_OF[op.MediaRequested]
MEDIA_REQUEST_WITHDRAWN = TYPE_OF[op.MediaRequestWithdrawn]
STUDY_EXPORTED = TYPE_OF[ex.StudyExported]
EXPORT_FAILED = TYPE_OF[ex.ExportFailed]
COMMITMENT_REQUESTED = TYPE_OF[cpb.CommitmentRequested]
STUDY_COMMITTED = TYPE_OF[cpb.StudyCommitted]
