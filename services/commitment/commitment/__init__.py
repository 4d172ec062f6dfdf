"""Storage commitment (Push Model) SCP and SCU, each request a job in the jobs engine."""

from dicomvault.events import TYPES, register
from dicomvault.events.v1 import commitment_pb2 as pb

EVENT_TYPES = {
    "dicomvault.commitment.requested.v1": pb.CommitmentRequested,
    "dicomvault.study.committed.v1": pb.StudyCommitted,
}
for _name, _cls in EVENT_TYPES.items():
    if _name not in TYPES:
        register(_name, _cls)
