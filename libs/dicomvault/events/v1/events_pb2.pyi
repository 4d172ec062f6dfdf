import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class InstanceStored(_message.Message):
    __slots__ = ("sop_class_uid", "sop_instance_uid", "study_instance_uid", "series_instance_uid", "patient_id", "patient_name", "study_date", "modality", "transfer_syntax_uid", "size_bytes", "sha256", "storage_key", "calling_ae", "received_time", "tier", "called_ae", "source", "issuer_of_patient_id", "patient_birth_date", "patient_sex", "study_time", "accession_number", "study_id", "study_description", "referring_physician_name", "series_number", "series_description", "series_date", "series_time", "body_part_examined", "station_name", "instance_number", "institution_name", "content_date", "content_time", "number_of_frames", "specific_character_set", "peer_address", "user_id", "association_id")
    SOP_CLASS_UID_FIELD_NUMBER: _ClassVar[int]
    SOP_INSTANCE_UID_FIELD_NUMBER: _ClassVar[int]
    STUDY_INSTANCE_UID_FIELD_NUMBER: _ClassVar[int]
    SERIES_INSTANCE_UID_FIELD_NUMBER: _ClassVar[int]
    PATIENT_ID_FIELD_NUMBER: _ClassVar[int]
    PATIENT_NAME_FIELD_NUMBER: _ClassVar[int]
    STUDY_DATE_FIELD_NUMBER: _ClassVar[int]
    MODALITY_FIELD_NUMBER: _ClassVar[int]
    TRANSFER_SYNTAX_UID_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    STORAGE_KEY_FIELD_NUMBER: _ClassVar[int]
    CALLING_AE_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_TIME_FIELD_NUMBER: _ClassVar[int]
    TIER_FIELD_NUMBER: _ClassVar[int]
    CALLED_AE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    ISSUER_OF_PATIENT_ID_FIELD_NUMBER: _ClassVar[int]
    PATIENT_BIRTH_DATE_FIELD_NUMBER: _ClassVar[int]
    PATIENT_SEX_FIELD_NUMBER: _ClassVar[int]
    STUDY_TIME_FIELD_NUMBER: _ClassVar[int]
    ACCESSION_NUMBER_FIELD_NUMBER: _ClassVar[int]
    STUDY_ID_FIELD_NUMBER: _ClassVar[int]
    STUDY_DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    REFERRING_PHYSICIAN_NAME_FIELD_NUMBER: _ClassVar[int]
    SERIES_NUMBER_FIELD_NUMBER: _ClassVar[int]
    SERIES_DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    SERIES_DATE_FIELD_NUMBER: _ClassVar[int]
    SERIES_TIME_FIELD_NUMBER: _ClassVar[int]
    BODY_PART_EXAMINED_FIELD_NUMBER: _ClassVar[int]
    STATION_NAME_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_NUMBER_FIELD_NUMBER: _ClassVar[int]
    INSTITUTION_NAME_FIELD_NUMBER: _ClassVar[int]
    CONTENT_DATE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TIME_FIELD_NUMBER: _ClassVar[int]
    NUMBER_OF_FRAMES_FIELD_NUMBER: _ClassVar[int]
    SPECIFIC_CHARACTER_SET_FIELD_NUMBER: _ClassVar[int]
    PEER_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    ASSOCIATION_ID_FIELD_NUMBER: _ClassVar[int]
    sop_class_uid: str
    sop_instance_uid: str
    study_instance_uid: str
    series_instance_uid: str
    patient_id: str
    patient_name: str
    study_date: str
    modality: str
    transfer_syntax_uid: str
    size_bytes: int
    sha256: str
    storage_key: str
    calling_ae: str
    received_time: _timestamp_pb2.Timestamp
    tier: str
    called_ae: str
    source: str
    issuer_of_patient_id: str
    patient_birth_date: str
    patient_sex: str
    study_time: str
    accession_number: str
    study_id: str
    study_description: str
    referring_physician_name: str
    series_number: str
    series_description: str
    series_date: str
    series_time: str
    body_part_examined: str
    station_name: str
    instance_number: str
    institution_name: str
    content_date: str
    content_time: str
    number_of_frames: int
    specific_character_set: str
    peer_address: str
    user_id: str
    association_id: str
    def __init__(self, sop_class_uid: _Optional[str] = ..., sop_instance_uid: _Optional[str] = ..., study_instance_uid: _Optional[str] = ..., series_instance_uid: _Optional[str] = ..., patient_id: _Optional[str] = ..., patient_name: _Optional[str] = ..., study_date: _Optional[str] = ..., modality: _Optional[str] = ..., transfer_syntax_uid: _Optional[str] = ..., size_bytes: _Optional[int] = ..., sha256: _Optional[str] = ..., storage_key: _Optional[str] = ..., calling_ae: _Optional[str] = ..., received_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., tier: _Optional[str] = ..., called_ae: _Optional[str] = ..., source: _Optional[str] = ..., issuer_of_patient_id: _Optional[str] = ..., patient_birth_date: _Optional[str] = ..., patient_sex: _Optional[str] = ..., study_time: _Optional[str] = ..., accession_number: _Optional[str] = ..., study_id: _Optional[str] = ..., study_description: _Optional[str] = ..., referring_physician_name: _Optional[str] = ..., series_number: _Optional[str] = ..., series_description: _Optional[str] = ..., series_date: _Optional[str] = ..., series_time: _Optional[str] = ..., body_part_examined: _Optional[str] = ..., station_name: _Optional[str] = ..., instance_number: _Optional[str] = ..., institution_name: _Optional[str] = ..., content_date: _Optional[str] = ..., content_time: _Optional[str] = ..., number_of_frames: _Optional[int] = ..., specific_character_set: _Optional[str] = ..., peer_address: _Optional[str] = ..., user_id: _Optional[str] = ..., association_id: _Optional[str] = ...) -> None: ...

class StudyStable(_message.Message):
    __slots__ = ("study_instance_uid", "patient_id", "number_of_series", "number_of_instances", "size_bytes", "modalities", "calling_aes", "station_names", "last_received_time", "revision")
    STUDY_INSTANCE_UID_FIELD_NUMBER: _ClassVar[int]
    PATIENT_ID_FIELD_NUMBER: _ClassVar[int]
    NUMBER_OF_SERIES_FIELD_NUMBER: _ClassVar[int]
    NUMBER_OF_INSTANCES_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    MODALITIES_FIELD_NUMBER: _ClassVar[int]
    CALLING_AES_FIELD_NUMBER: _ClassVar[int]
    STATION_NAMES_FIELD_NUMBER: _ClassVar[int]
    LAST_RECEIVED_TIME_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    study_instance_uid: str
    patient_id: str
    number_of_series: int
    number_of_instances: int
    size_bytes: int
    modalities: _containers.RepeatedScalarFieldContainer[str]
    calling_aes: _containers.RepeatedScalarFieldContainer[str]
    station_names: _containers.RepeatedScalarFieldContainer[str]
    last_received_time: _timestamp_pb2.Timestamp
    revision: int
    def __init__(self, study_instance_uid: _Optional[str] = ..., patient_id: _Optional[str] = ..., number_of_series: _Optional[int] = ..., number_of_instances: _Optional[int] = ..., size_bytes: _Optional[int] = ..., modalities: _Optional[_Iterable[str]] = ..., calling_aes: _Optional[_Iterable[str]] = ..., station_names: _Optional[_Iterable[str]] = ..., last_received_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., revision: _Optional[int] = ...) -> None: ...

class RecallRequested(_message.Message):
    __slots__ = ("study_instance_uid", "requested_by", "reason", "sop_instance_uids")
    STUDY_INSTANCE_UID_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_BY_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    SOP_INSTANCE_UIDS_FIELD_NUMBER: _ClassVar[int]
    study_instance_uid: str
    requested_by: str
    reason: str
    sop_instance_uids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, study_instance_uid: _Optional[str] = ..., requested_by: _Optional[str] = ..., reason: _Optional[str] = ..., sop_instance_uids: _Optional[_Iterable[str]] = ...) -> None: ...

class StudyArchived(_message.Message):
    __slots__ = ("study_instance_uid", "tier", "archive_id", "location", "number_of_instances", "size_bytes", "sop_instance_uids", "verified", "job_id", "sha256s")
    STUDY_INSTANCE_UID_FIELD_NUMBER: _ClassVar[int]
    TIER_FIELD_NUMBER: _ClassVar[int]
    ARCHIVE_ID_FIELD_NUMBER: _ClassVar[int]
    LOCATION_FIELD_NUMBER: _ClassVar[int]
    NUMBER_OF_INSTANCES_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    SOP_INSTANCE_UIDS_FIELD_NUMBER: _ClassVar[int]
    VERIFIED_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    SHA256S_FIELD_NUMBER: _ClassVar[int]
    study_instance_uid: str
    tier: str
    archive_id: str
    location: str
    number_of_instances: int
    size_bytes: int
    sop_instance_uids: _containers.RepeatedScalarFieldContainer[str]
    verified: bool
    job_id: str
    sha256s: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, study_instance_uid: _Optional[str] = ..., tier: _Optional[str] = ..., archive_id: _Optional[str] = ..., location: _Optional[str] = ..., number_of_instances: _Optional[int] = ..., size_bytes: _Optional[int] = ..., sop_instance_uids: _Optional[_Iterable[str]] = ..., verified: _Optional[bool] = ..., job_id: _Optional[str] = ..., sha256s: _Optional[_Iterable[str]] = ...) -> None: ...

class StudyEvicted(_message.Message):
    __slots__ = ("study_instance_uid", "tier", "archive_id", "location", "reason", "requested_by", "peer_address")
    STUDY_INSTANCE_UID_FIELD_NUMBER: _ClassVar[int]
    TIER_FIELD_NUMBER: _ClassVar[int]
    ARCHIVE_ID_FIELD_NUMBER: _ClassVar[int]
    LOCATION_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_BY_FIELD_NUMBER: _ClassVar[int]
    PEER_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    study_instance_uid: str
    tier: str
    archive_id: str
    location: str
    reason: str
    requested_by: str
    peer_address: str
    def __init__(self, study_instance_uid: _Optional[str] = ..., tier: _Optional[str] = ..., archive_id: _Optional[str] = ..., location: _Optional[str] = ..., reason: _Optional[str] = ..., requested_by: _Optional[str] = ..., peer_address: _Optional[str] = ...) -> None: ...
