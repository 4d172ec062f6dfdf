from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class VolumeClosed(_message.Message):
    __slots__ = ("archive_id", "label", "media_type", "capacity_bytes", "used_bytes", "image_bytes", "image_sha256", "number_of_studies", "number_of_instances", "reason", "study_instance_uids")
    ARCHIVE_ID_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    MEDIA_TYPE_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_BYTES_FIELD_NUMBER: _ClassVar[int]
    USED_BYTES_FIELD_NUMBER: _ClassVar[int]
    IMAGE_BYTES_FIELD_NUMBER: _ClassVar[int]
    IMAGE_SHA256_FIELD_NUMBER: _ClassVar[int]
    NUMBER_OF_STUDIES_FIELD_NUMBER: _ClassVar[int]
    NUMBER_OF_INSTANCES_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    STUDY_INSTANCE_UIDS_FIELD_NUMBER: _ClassVar[int]
    archive_id: str
    label: str
    media_type: str
    capacity_bytes: int
    used_bytes: int
    image_bytes: int
    image_sha256: str
    number_of_studies: int
    number_of_instances: int
    reason: str
    study_instance_uids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, archive_id: _Optional[str] = ..., label: _Optional[str] = ..., media_type: _Optional[str] = ..., capacity_bytes: _Optional[int] = ..., used_bytes: _Optional[int] = ..., image_bytes: _Optional[int] = ..., image_sha256: _Optional[str] = ..., number_of_studies: _Optional[int] = ..., number_of_instances: _Optional[int] = ..., reason: _Optional[str] = ..., study_instance_uids: _Optional[_Iterable[str]] = ...) -> None: ...

class VolumeBurned(_message.Message):
    __slots__ = ("archive_id", "label", "copy", "backend", "target", "bytes", "exit_status")
    ARCHIVE_ID_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    COPY_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    EXIT_STATUS_FIELD_NUMBER: _ClassVar[int]
    archive_id: str
    label: str
    copy: int
    backend: str
    target: str
    bytes: int
    exit_status: int
    def __init__(self, archive_id: _Optional[str] = ..., label: _Optional[str] = ..., copy: _Optional[int] = ..., backend: _Optional[str] = ..., target: _Optional[str] = ..., bytes: _Optional[int] = ..., exit_status: _Optional[int] = ...) -> None: ...

class VolumeBurnFailed(_message.Message):
    __slots__ = ("archive_id", "label", "copy", "backend", "target", "exit_status", "error", "attempt")
    ARCHIVE_ID_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    COPY_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    EXIT_STATUS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    archive_id: str
    label: str
    copy: int
    backend: str
    target: str
    exit_status: int
    error: str
    attempt: int
    def __init__(self, archive_id: _Optional[str] = ..., label: _Optional[str] = ..., copy: _Optional[int] = ..., backend: _Optional[str] = ..., target: _Optional[str] = ..., exit_status: _Optional[int] = ..., error: _Optional[str] = ..., attempt: _Optional[int] = ...) -> None: ...

class VolumeVerified(_message.Message):
    __slots__ = ("archive_id", "label", "copies", "files_checked", "study_instance_uids")
    ARCHIVE_ID_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    COPIES_FIELD_NUMBER: _ClassVar[int]
    FILES_CHECKED_FIELD_NUMBER: _ClassVar[int]
    STUDY_INSTANCE_UIDS_FIELD_NUMBER: _ClassVar[int]
    archive_id: str
    label: str
    copies: int
    files_checked: int
    study_instance_uids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, archive_id: _Optional[str] = ..., label: _Optional[str] = ..., copies: _Optional[int] = ..., files_checked: _Optional[int] = ..., study_instance_uids: _Optional[_Iterable[str]] = ...) -> None: ...

class VolumeDeleted(_message.Message):
    __slots__ = ("archive_id", "label", "study_instance_uids", "requested_by")
    ARCHIVE_ID_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    STUDY_INSTANCE_UIDS_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_BY_FIELD_NUMBER: _ClassVar[int]
    archive_id: str
    label: str
    study_instance_uids: _containers.RepeatedScalarFieldContainer[str]
    requested_by: str
    def __init__(self, archive_id: _Optional[str] = ..., label: _Optional[str] = ..., study_instance_uids: _Optional[_Iterable[str]] = ..., requested_by: _Optional[str] = ...) -> None: ...

class MediaRequested(_message.Message):
    __slots__ = ("archive_id", "label", "message", "study_instance_uid", "mount_path")
    ARCHIVE_ID_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    STUDY_INSTANCE_UID_FIELD_NUMBER: _ClassVar[int]
    MOUNT_PATH_FIELD_NUMBER: _ClassVar[int]
    archive_id: str
    label: str
    message: str
    study_instance_uid: str
    mount_path: str
    def __init__(self, archive_id: _Optional[str] = ..., label: _Optional[str] = ..., message: _Optional[str] = ..., study_instance_uid: _Optional[str] = ..., mount_path: _Optional[str] = ...) -> None: ...

class MediaRequestWithdrawn(_message.Message):
    __slots__ = ("archive_id", "label", "study_instance_uid", "reason")
    ARCHIVE_ID_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    STUDY_INSTANCE_UID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    archive_id: str
    label: str
    study_instance_uid: str
    reason: str
    def __init__(self, archive_id: _Optional[str] = ..., label: _Optional[str] = ..., study_instance_uid: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...
