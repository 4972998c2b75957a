import datetime

from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Pod(_message.Message):
    __slots__ = ("name", "state", "type", "release", "started")
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    RELEASE_FIELD_NUMBER: _ClassVar[int]
    STARTED_FIELD_NUMBER: _ClassVar[int]
    name: str
    state: str
    type: str
    release: str
    started: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., state: _Optional[str] = ..., type: _Optional[str] = ..., release: _Optional[str] = ..., started: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListPodsRequest(_message.Message):
    __slots__ = ("app", "type", "name")
    APP_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    app: str
    type: str
    name: str
    def __init__(self, app: _Optional[str] = ..., type: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class ListPodsResponse(_message.Message):
    __slots__ = ("results", "count")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[Pod]
    count: int
    def __init__(self, results: _Optional[_Iterable[_Union[Pod, _Mapping]]] = ..., count: _Optional[int] = ...) -> None: ...

class ScalePodsRequest(_message.Message):
    __slots__ = ("app", "structure")
    class StructureEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    APP_FIELD_NUMBER: _ClassVar[int]
    STRUCTURE_FIELD_NUMBER: _ClassVar[int]
    app: str
    structure: _containers.ScalarMap[str, int]
    def __init__(self, app: _Optional[str] = ..., structure: _Optional[_Mapping[str, int]] = ...) -> None: ...

class ScalePodsResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RestartPodsRequest(_message.Message):
    __slots__ = ("app", "type", "name")
    APP_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    app: str
    type: str
    name: str
    def __init__(self, app: _Optional[str] = ..., type: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class RestartPodsResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[Pod]
    def __init__(self, results: _Optional[_Iterable[_Union[Pod, _Mapping]]] = ...) -> None: ...
