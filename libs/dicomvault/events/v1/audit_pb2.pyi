import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AuditRecorded(_message.Message):
    __slots__ = ("action", "outcome", "user_id", "peer_address", "calling_ae", "called_ae", "service", "study_instance_uids", "sop_class_uid", "query", "description", "application", "destination", "time", "association_id", "instances")
    class Action(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        ACTION_UNSPECIFIED: _ClassVar[AuditRecorded.Action]
        QUERY: _ClassVar[AuditRecorded.Action]
        RETRIEVE_STARTED: _ClassVar[AuditRecorded.Action]
        ASSOCIATION_REFUSED: _ClassVar[AuditRecorded.Action]
        AUTHENTICATION: _ClassVar[AuditRecorded.Action]
        APPLICATION_START: _ClassVar[AuditRecorded.Action]
        APPLICATION_STOP: _ClassVar[AuditRecorded.Action]
        STORE_REFUSED: _ClassVar[AuditRecorded.Action]
    ACTION_UNSPECIFIED: AuditRecorded.Action
    QUERY: AuditRecorded.Action
    RETRIEVE_STARTED: AuditRecorded.Action
    ASSOCIATION_REFUSED: AuditRecorded.Action
    AUTHENTICATION: AuditRecorded.Action
    APPLICATION_START: AuditRecorded.Action
    APPLICATION_STOP: AuditRecorded.Action
    STORE_REFUSED: AuditRecorded.Action
    ACTION_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    PEER_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    CALLING_AE_FIELD_NUMBER: _ClassVar[int]
    CALLED_AE_FIELD_NUMBER: _ClassVar[int]
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    STUDY_INSTANCE_UIDS_FIELD_NUMBER: _ClassVar[int]
    SOP_CLASS_UID_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    APPLICATION_FIELD_NUMBER: _ClassVar[int]
    DESTINATION_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    ASSOCIATION_ID_FIELD_NUMBER: _ClassVar[int]
    INSTANCES_FIELD_NUMBER: _ClassVar[int]
    action: AuditRecorded.Action
    outcome: int
    user_id: str
    peer_address: str
    calling_ae: str
    called_ae: str
    service: str
    study_instance_uids: _containers.RepeatedScalarFieldContainer[str]
    sop_class_uid: str
    query: bytes
    description: str
    application: str
    destination: str
    time: _timestamp_pb2.Timestamp
    association_id: str
    instances: int
    def __init__(self, action: _Optional[_Union[AuditRecorded.Action, str]] = ..., outcome: _Optional[int] = ..., user_id: _Optional[str] = ..., peer_address: _Optional[str] = ..., calling_ae: _Optional[str] = ..., called_ae: _Optional[str] = ..., service: _Optional[str] = ..., study_instance_uids: _Optional[_Iterable[str]] = ..., sop_class_uid: _Optional[str] = ..., query: _Optional[bytes] = ..., description: _Optional[str] = ..., application: _Optional[str] = ..., destination: _Optional[str] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., association_id: _Optional[str] = ..., instances: _Optional[int] = ...) -> None: ...
