import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class JobKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_KIND_UNSPECIFIED: _ClassVar[JobKind]
    STORE: _ClassVar[JobKind]
    RETRIEVE: _ClassVar[JobKind]
    EXPORT: _ClassVar[JobKind]
    COMMIT_SCP: _ClassVar[JobKind]
    COMMIT_SCU: _ClassVar[JobKind]
JOB_KIND_UNSPECIFIED: JobKind
STORE: JobKind
RETRIEVE: JobKind
EXPORT: JobKind
COMMIT_SCP: JobKind
COMMIT_SCU: JobKind

class JobCreated(_message.Message):
    __slots__ = ("job_id", "queue", "kind", "study_instance_uid", "target", "params", "not_before", "max_retries", "created_by", "sop_instance_uids")
    class ParamsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    STUDY_INSTANCE_UID_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    NOT_BEFORE_FIELD_NUMBER: _ClassVar[int]
    MAX_RETRIES_FIELD_NUMBER: _ClassVar[int]
    CREATED_BY_FIELD_NUMBER: _ClassVar[int]
    SOP_INSTANCE_UIDS_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    queue: str
    kind: JobKind
    study_instance_uid: str
    target: str
    params: _containers.ScalarMap[str, str]
    not_before: _timestamp_pb2.Timestamp
    max_retries: int
    created_by: str
    sop_instance_uids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, job_id: _Optional[str] = ..., queue: _Optional[str] = ..., kind: _Optional[_Union[JobKind, str]] = ..., study_instance_uid: _Optional[str] = ..., target: _Optional[str] = ..., params: _Optional[_Mapping[str, str]] = ..., not_before: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., max_retries: _Optional[int] = ..., created_by: _Optional[str] = ..., sop_instance_uids: _Optional[_Iterable[str]] = ...) -> None: ...

class JobStarted(_message.Message):
    __slots__ = ("job_id", "queue", "attempt", "worker")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    WORKER_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    queue: str
    attempt: int
    worker: str
    def __init__(self, job_id: _Optional[str] = ..., queue: _Optional[str] = ..., attempt: _Optional[int] = ..., worker: _Optional[str] = ...) -> None: ...

class JobProgressed(_message.Message):
    __slots__ = ("job_id", "queue", "completed", "failed", "remaining", "message")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    REMAINING_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    queue: str
    completed: int
    failed: int
    remaining: int
    message: str
    def __init__(self, job_id: _Optional[str] = ..., queue: _Optional[str] = ..., completed: _Optional[int] = ..., failed: _Optional[int] = ..., remaining: _Optional[int] = ..., message: _Optional[str] = ...) -> None: ...

class JobRetryScheduled(_message.Message):
    __slots__ = ("job_id", "queue", "attempt", "next_attempt", "error")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    NEXT_ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    queue: str
    attempt: int
    next_attempt: _timestamp_pb2.Timestamp
    error: str
    def __init__(self, job_id: _Optional[str] = ..., queue: _Optional[str] = ..., attempt: _Optional[int] = ..., next_attempt: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., error: _Optional[str] = ...) -> None: ...

class JobCompleted(_message.Message):
    __slots__ = ("job_id", "queue", "completed", "failed", "message", "result")
    class ResultEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    queue: str
    completed: int
    failed: int
    message: str
    result: _containers.ScalarMap[str, str]
    def __init__(self, job_id: _Optional[str] = ..., queue: _Optional[str] = ..., completed: _Optional[int] = ..., failed: _Optional[int] = ..., message: _Optional[str] = ..., result: _Optional[_Mapping[str, str]] = ...) -> None: ...

class JobFailed(_message.Message):
    __slots__ = ("job_id", "queue", "attempts", "error")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    queue: str
    attempts: int
    error: str
    def __init__(self, job_id: _Optional[str] = ..., queue: _Optional[str] = ..., attempts: _Optional[int] = ..., error: _Optional[str] = ...) -> None: ...

class JobWaiting(_message.Message):
    __slots__ = ("job_id", "queue", "reason", "waiting_for", "until")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    WAITING_FOR_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    queue: str
    reason: str
    waiting_for: str
    until: _timestamp_pb2.Timestamp
    def __init__(self, job_id: _Optional[str] = ..., queue: _Optional[str] = ..., reason: _Optional[str] = ..., waiting_for: _Optional[str] = ..., until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class JobStateChanged(_message.Message):
    __slots__ = ("job_id", "queue", "state", "command", "issued_by", "not_before", "reason")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    ISSUED_BY_FIELD_NUMBER: _ClassVar[int]
    NOT_BEFORE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    queue: str
    state: str
    command: str
    issued_by: str
    not_before: _timestamp_pb2.Timestamp
    reason: str
    def __init__(self, job_id: _Optional[str] = ..., queue: _Optional[str] = ..., state: _Optional[str] = ..., command: _Optional[str] = ..., issued_by: _Optional[str] = ..., not_before: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., reason: _Optional[str] = ...) -> None: ...

class QueueStateChanged(_message.Message):
    __slots__ = ("queue", "state", "reason", "owner", "kind")
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    queue: str
    state: str
    reason: str
    owner: str
    kind: str
    def __init__(self, queue: _Optional[str] = ..., state: _Optional[str] = ..., reason: _Optional[str] = ..., owner: _Optional[str] = ..., kind: _Optional[str] = ...) -> None: ...

class JobCommandIssued(_message.Message):
    __slots__ = ("command", "queue", "job_id", "not_before", "issued_by", "reason", "include_refused", "peer_address")
    class Command(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        COMMAND_UNSPECIFIED: _ClassVar[JobCommandIssued.Command]
        PAUSE_QUEUE: _ClassVar[JobCommandIssued.Command]
        RESUME_QUEUE: _ClassVar[JobCommandIssued.Command]
        RETRY_JOB: _ClassVar[JobCommandIssued.Command]
        CANCEL_JOB: _ClassVar[JobCommandIssued.Command]
        RESCHEDULE_JOB: _ClassVar[JobCommandIssued.Command]
        SUSPEND_JOB: _ClassVar[JobCommandIssued.Command]
        RESUME_JOB: _ClassVar[JobCommandIssued.Command]
    COMMAND_UNSPECIFIED: JobCommandIssued.Command
    PAUSE_QUEUE: JobCommandIssued.Command
    RESUME_QUEUE: JobCommandIssued.Command
    RETRY_JOB: JobCommandIssued.Command
    CANCEL_JOB: JobCommandIssued.Command
    RESCHEDULE_JOB: JobCommandIssued.Command
    SUSPEND_JOB: JobCommandIssued.Command
    RESUME_JOB: JobCommandIssued.Command
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    NOT_BEFORE_FIELD_NUMBER: _ClassVar[int]
    ISSUED_BY_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_REFUSED_FIELD_NUMBER: _ClassVar[int]
    PEER_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    command: JobCommandIssued.Command
    queue: str
    job_id: str
    not_before: _timestamp_pb2.Timestamp
    issued_by: str
    reason: str
    include_refused: bool
    peer_address: str
    def __init__(self, command: _Optional[_Union[JobCommandIssued.Command, str]] = ..., queue: _Optional[str] = ..., job_id: _Optional[str] = ..., not_before: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., issued_by: _Optional[str] = ..., reason: _Optional[str] = ..., include_refused: _Optional[bool] = ..., peer_address: _Optional[str] = ...) -> None: ...
