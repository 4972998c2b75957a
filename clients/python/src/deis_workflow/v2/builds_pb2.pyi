import datetime

from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Build(_message.Message):
    __slots__ = ("uuid", "owner", "app", "image", "sha", "procfile", "dockerfile", "created", "updated")
    class ProcfileEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    UUID_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    APP_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    SHA_FIELD_NUMBER: _ClassVar[int]
    PROCFILE_FIELD_NUMBER: _ClassVar[int]
    DOCKERFILE_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    UPDATED_FIELD_NUMBER: _ClassVar[int]
    uuid: str
    owner: str
    app: str
    image: str
    sha: str
    procfile: _containers.ScalarMap[str, str]
    dockerfile: str
    created: _timestamp_pb2.Timestamp
    updated: _timestamp_pb2.Timestamp
    def __init__(self, uuid: _Optional[str] = ..., owner: _Optional[str] = ..., app: _Optional[str] = ..., image: _Optional[str] = ..., sha: _Optional[str] = ..., procfile: _Optional[_Mapping[str, str]] = ..., dockerfile: _Optional[str] = ..., created: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListBuildsRequest(_message.Message):
    __slots__ = ("app", "limit", "offset")
    APP_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    app: str
    limit: int
    offset: int
    def __init__(self, app: _Optional[str] = ..., limit: _Optional[int] = ..., offset: _Optional[int] = ...) -> None: ...

class ListBuildsResponse(_message.Message):
    __slots__ = ("count", "next", "previous", "results")
    COUNT_FIELD_NUMBER: _ClassVar[int]
    NEXT_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    count: int
    next: str
    previous: str
    results: _containers.RepeatedCompositeFieldContainer[Build]
    def __init__(self, count: _Optional[int] = ..., next: _Optional[str] = ..., previous: _Optional[str] = ..., results: _Optional[_Iterable[_Union[Build, _Mapping]]] = ...) -> None: ...

class GetBuildRequest(_message.Message):
    __slots__ = ("app", "uuid")
    APP_FIELD_NUMBER: _ClassVar[int]
    UUID_FIELD_NUMBER: _ClassVar[int]
    app: str
    uuid: str
    def __init__(self, app: _Optional[str] = ..., uuid: _Optional[str] = ...) -> None: ...

class GetBuildResponse(_message.Message):
    __slots__ = ("build",)
    BUILD_FIELD_NUMBER: _ClassVar[int]
    build: Build
    def __init__(self, build: _Optional[_Union[Build, _Mapping]] = ...) -> None: ...

class CreateBuildRequest(_message.Message):
    __slots__ = ("app", "image", "procfile", "sha", "dockerfile")
    class ProcfileEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    APP_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    PROCFILE_FIELD_NUMBER: _ClassVar[int]
    SHA_FIELD_NUMBER: _ClassVar[int]
    DOCKERFILE_FIELD_NUMBER: _ClassVar[int]
    app: str
    image: str
    procfile: _containers.ScalarMap[str, str]
    sha: str
    dockerfile: str
    def __init__(self, app: _Optional[str] = ..., image: _Optional[str] = ..., procfile: _Optional[_Mapping[str, str]] = ..., sha: _Optional[str] = ..., dockerfile: _Optional[str] = ...) -> None: ...

class CreateBuildResponse(_message.Message):
    __slots__ = ("build", "release_version")
    BUILD_FIELD_NUMBER: _ClassVar[int]
    RELEASE_VERSION_FIELD_NUMBER: _ClassVar[int]
    build: Build
    release_version: int
    def __init__(self, build: _Optional[_Union[Build, _Mapping]] = ..., release_version: _Optional[int] = ...) -> None: ...
