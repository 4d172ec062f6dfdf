"""The exporter's facts (their type names are registered in ``dicomvault.events``)."""

from __future__ import annotations

from dicomvault.events.v1 import exports_pb2 as ex

StudyExported = ex.StudyExported
ExportFailed = ex.ExportFailed
