"""catalogue: the journal (system of record), the projections and the query API.

The catalogue consumes every fact on the instances, studies, jobs and job-commands topics.
It registers the contract types other services publish there, so that it can journal them
instead of dead-lettering them as unknown.
"""

from dicomvault.events import TYPES, register
from dicomvault.events.v1 import archive_pb2, commitment_pb2, exports_pb2

_CONTRACT_TYPES = {
    "dicomvault.study.recalled.v1": archive_pb2.StudyRecalled,
    "dicomvault.commitment.requested.v1": commitment_pb2.CommitmentRequested,
    "dicomvault.study.committed.v1": commitment_pb2.StudyCommitted,
    "dicomvault.study.exported.v1": exports_pb2.StudyExported,
    "dicomvault.study.export-failed.v1": exports_pb2.ExportFailed,
}
for _name, _cls in _CONTRACT_TYPES.items():
    if _name not in TYPES:
        register(_name, _cls)
