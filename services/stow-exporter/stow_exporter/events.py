"""The exporter's facts (their type names are registered in ``dicomvault.events``)."""

from __future__ import annotations

from dicomvault.events.v1 import exports_pb2 as pb

STUDY_EXPORTED = "dicomvault.study.exported.v1"
EXPORT_FAILED = "dicomvault.study.export-failed.v1"

StudyExported = pb.StudyExported
ExportFailed = pb.ExportFailed
