from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class StudyRecalled(_message.Message):
    __slots__ = ("study_instance_uid", "tier", "archive_id", "job_id", "number_of_instances", "failed", "location", "sop_instance_uids")
    STUDY_INSTANCE_UID_FIELD_NUMBER: _ClassVar[int]
    TIER_FIELD_NUMBER: _ClassVar[int]
    ARCHIVE_ID_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    NUMBER_OF_INSTANCES_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    LOCATION_FIELD_NUMBER: _ClassVar[int]
    SOP_INSTANCE_UIDS_FIELD_NUMBER: _ClassVar[int]
    study_instance_uid: str
    tier: str
    archive_id: str
    job_id: str
    number_of_instances: int
    failed: int
    location: str
    sop_instance_uids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, study_instance_uid: _Optional[str] = ..., tier: _Optional[str] = ..., archive_id: _Optional[str] = ..., job_id: _Optional[str] = ..., number_of_instances: _Optional[int] = ..., failed: _Optional[int] = ..., location: _Optional[str] = ..., sop_instance_uids: _Optional[_Iterable[str]] = ...) -> None: ...
