"""The exporter's facts: registers their stable type names with the envelope.

The lead adds these two lines to ``dicomvault.events.TYPES``; until then, importing this
module registers them (idempotent).
"""

from __future__ import annotations

from dicomvault.events import TYPES, register
from dicomvault.events.v1 import exports_pb2 as pb

STUDY_EXPORTED = "dicomvault.study.exported.v1"
EXPORT_FAILED = "dicomvault.study.export-failed.v1"

for _name, _cls in ((STUDY_EXPORTED, pb.StudyExported), (EXPORT_FAILED, pb.ExportFailed)):
    if _name not in TYPES:
        register(_name, _cls)

StudyExported = pb.StudyExported
ExportFailed = pb.ExportFailed
