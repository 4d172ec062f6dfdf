from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SopReference(_message.Message):
    __slots__ = ("sop_class_uid", "sop_instance_uid")
    SOP_CLASS_UID_FIELD_NUMBER: _ClassVar[int]
    SOP_INSTANCE_UID_FIELD_NUMBER: _ClassVar[int]
    sop_class_uid: str
    sop_instance_uid: str
    def __init__(self, sop_class_uid: _Optional[str] = ..., sop_instance_uid: _Optional[str] = ...) -> None: ...

class FailedSopReference(_message.Message):
    __slots__ = ("sop_class_uid", "sop_instance_uid", "failure_reason", "description")
    SOP_CLASS_UID_FIELD_NUMBER: _ClassVar[int]
    SOP_INSTANCE_UID_FIELD_NUMBER: _ClassVar[int]
    FAILURE_REASON_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    sop_class_uid: str
    sop_instance_uid: str
    failure_reason: int
    description: str
    def __init__(self, sop_class_uid: _Optional[str] = ..., sop_instance_uid: _Optional[str] = ..., failure_reason: _Optional[int] = ..., description: _Optional[str] = ...) -> None: ...

class CommitmentRequested(_message.Message):
    __slots__ = ("study_instance_uid", "remote_ae", "instances", "requested_by", "delete_after_commit", "job_id", "report_timeout_seconds", "peer_address")
    STUDY_INSTANCE_UID_FIELD_NUMBER: _ClassVar[int]
    REMOTE_AE_FIELD_NUMBER: _ClassVar[int]
    INSTANCES_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_BY_FIELD_NUMBER: _ClassVar[int]
    DELETE_AFTER_COMMIT_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    REPORT_TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    PEER_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    study_instance_uid: str
    remote_ae: str
    instances: _containers.RepeatedCompositeFieldContainer[SopReference]
    requested_by: str
    delete_after_commit: bool
    job_id: str
    report_timeout_seconds: int
    peer_address: str
    def __init__(self, study_instance_uid: _Optional[str] = ..., remote_ae: _Optional[str] = ..., instances: _Optional[_Iterable[_Union[SopReference, _Mapping]]] = ..., requested_by: _Optional[str] = ..., delete_after_commit: _Optional[bool] = ..., job_id: _Optional[str] = ..., report_timeout_seconds: _Optional[int] = ..., peer_address: _Optional[str] = ...) -> None: ...

class StudyCommitted(_message.Message):
    __slots__ = ("study_instance_uid", "remote_ae", "transaction_uid", "committed_sop_instance_uids", "failed", "complete", "job_id", "attempt")
    STUDY_INSTANCE_UID_FIELD_NUMBER: _ClassVar[int]
    REMOTE_AE_FIELD_NUMBER: _ClassVar[int]
    TRANSACTION_UID_FIELD_NUMBER: _ClassVar[int]
    COMMITTED_SOP_INSTANCE_UIDS_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    COMPLETE_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    study_instance_uid: str
    remote_ae: str
    transaction_uid: str
    committed_sop_instance_uids: _containers.RepeatedScalarFieldContainer[str]
    failed: _containers.RepeatedCompositeFieldContainer[FailedSopReference]
    complete: bool
    job_id: str
    attempt: int
    def __init__(self, study_instance_uid: _Optional[str] = ..., remote_ae: _Optional[str] = ..., transaction_uid: _Optional[str] = ..., committed_sop_instance_uids: _Optional[_Iterable[str]] = ..., failed: _Optional[_Iterable[_Union[FailedSopReference, _Mapping]]] = ..., complete: _Optional[bool] = ..., job_id: _Optional[str] = ..., attempt: _Optional[int] = ...) -> None: ...

class CommitmentRequestReceived(_message.Message):
    __slots__ = ("transaction_uid", "calling_ae", "called_ae", "instances", "reply_host", "reply_port", "peer_address", "received_by")
    TRANSACTION_UID_FIELD_NUMBER: _ClassVar[int]
    CALLING_AE_FIELD_NUMBER: _ClassVar[int]
    CALLED_AE_FIELD_NUMBER: _ClassVar[int]
    INSTANCES_FIELD_NUMBER: _ClassVar[int]
    REPLY_HOST_FIELD_NUMBER: _ClassVar[int]
    REPLY_PORT_FIELD_NUMBER: _ClassVar[int]
    PEER_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_BY_FIELD_NUMBER: _ClassVar[int]
    transaction_uid: str
    calling_ae: str
    called_ae: str
    instances: _containers.RepeatedCompositeFieldContainer[SopReference]
    reply_host: str
    reply_port: int
    peer_address: str
    received_by: str
    def __init__(self, transaction_uid: _Optional[str] = ..., calling_ae: _Optional[str] = ..., called_ae: _Optional[str] = ..., instances: _Optional[_Iterable[_Union[SopReference, _Mapping]]] = ..., reply_host: _Optional[str] = ..., reply_port: _Optional[int] = ..., peer_address: _Optional[str] = ..., received_by: _Optional[str] = ...) -> None: ...
