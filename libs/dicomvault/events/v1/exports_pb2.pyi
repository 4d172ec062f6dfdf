import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class StudyExported(_message.Message):
    __slots__ = ("study_instance_uid", "exporter_id", "uri", "number_of_instances", "failed_sop_instance_uids", "failure_reasons", "warning_sop_instance_uids", "size_bytes", "attempts", "exported_time", "destination", "transfer_syntax_uids", "request_id")
    STUDY_INSTANCE_UID_FIELD_NUMBER: _ClassVar[int]
    EXPORTER_ID_FIELD_NUMBER: _ClassVar[int]
    URI_FIELD_NUMBER: _ClassVar[int]
    NUMBER_OF_INSTANCES_FIELD_NUMBER: _ClassVar[int]
    FAILED_SOP_INSTANCE_UIDS_FIELD_NUMBER: _ClassVar[int]
    FAILURE_REASONS_FIELD_NUMBER: _ClassVar[int]
    WARNING_SOP_INSTANCE_UIDS_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    EXPORTED_TIME_FIELD_NUMBER: _ClassVar[int]
    DESTINATION_FIELD_NUMBER: _ClassVar[int]
    TRANSFER_SYNTAX_UIDS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    study_instance_uid: str
    exporter_id: str
    uri: str
    number_of_instances: int
    failed_sop_instance_uids: _containers.RepeatedScalarFieldContainer[str]
    failure_reasons: _containers.RepeatedScalarFieldContainer[str]
    warning_sop_instance_uids: _containers.RepeatedScalarFieldContainer[str]
    size_bytes: int
    attempts: int
    exported_time: _timestamp_pb2.Timestamp
    destination: str
    transfer_syntax_uids: _containers.RepeatedScalarFieldContainer[str]
    request_id: str
    def __init__(self, study_instance_uid: _Optional[str] = ..., exporter_id: _Optional[str] = ..., uri: _Optional[str] = ..., number_of_instances: _Optional[int] = ..., failed_sop_instance_uids: _Optional[_Iterable[str]] = ..., failure_reasons: _Optional[_Iterable[str]] = ..., warning_sop_instance_uids: _Optional[_Iterable[str]] = ..., size_bytes: _Optional[int] = ..., attempts: _Optional[int] = ..., exported_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., destination: _Optional[str] = ..., transfer_syntax_uids: _Optional[_Iterable[str]] = ..., request_id: _Optional[str] = ...) -> None: ...

class ExportFailed(_message.Message):
    __slots__ = ("study_instance_uid", "exporter_id", "uri", "reason", "attempts", "number_of_instances", "failed_sop_instance_uids", "failure_reasons", "failed_time", "destination", "request_id")
    STUDY_INSTANCE_UID_FIELD_NUMBER: _ClassVar[int]
    EXPORTER_ID_FIELD_NUMBER: _ClassVar[int]
    URI_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    NUMBER_OF_INSTANCES_FIELD_NUMBER: _ClassVar[int]
    FAILED_SOP_INSTANCE_UIDS_FIELD_NUMBER: _ClassVar[int]
    FAILURE_REASONS_FIELD_NUMBER: _ClassVar[int]
    FAILED_TIME_FIELD_NUMBER: _ClassVar[int]
    DESTINATION_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    study_instance_uid: str
    exporter_id: str
    uri: str
    reason: str
    attempts: int
    number_of_instances: int
    failed_sop_instance_uids: _containers.RepeatedScalarFieldContainer[str]
    failure_reasons: _containers.RepeatedScalarFieldContainer[str]
    failed_time: _timestamp_pb2.Timestamp
    destination: str
    request_id: str
    def __init__(self, study_instance_uid: _Optional[str] = ..., exporter_id: _Optional[str] = ..., uri: _Optional[str] = ..., reason: _Optional[str] = ..., attempts: _Optional[int] = ..., number_of_instances: _Optional[int] = ..., failed_sop_instance_uids: _Optional[_Iterable[str]] = ..., failure_reasons: _Optional[_Iterable[str]] = ..., failed_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., destination: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...
