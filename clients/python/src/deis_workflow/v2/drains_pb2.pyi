import datetime

from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Drain(_message.Message):
    __slots__ = ("id", "app", "url", "owner", "created", "delivered", "dropped", "buffered", "healthy", "last_error")
    ID_FIELD_NUMBER: _ClassVar[int]
    APP_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    DELIVERED_FIELD_NUMBER: _ClassVar[int]
    DROPPED_FIELD_NUMBER: _ClassVar[int]
    BUFFERED_FIELD_NUMBER: _ClassVar[int]
    HEALTHY_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    id: str
    app: str
    url: str
    owner: str
    created: _timestamp_pb2.Timestamp
    delivered: int
    dropped: int
    buffered: int
    healthy: bool
    last_error: str
    def __init__(self, id: _Optional[str] = ..., app: _Optional[str] = ..., url: _Optional[str] = ..., owner: _Optional[str] = ..., created: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., delivered: _Optional[int] = ..., dropped: _Optional[int] = ..., buffered: _Optional[int] = ..., healthy: _Optional[bool] = ..., last_error: _Optional[str] = ...) -> None: ...

class ListDrainsRequest(_message.Message):
    __slots__ = ("app",)
    APP_FIELD_NUMBER: _ClassVar[int]
    app: str
    def __init__(self, app: _Optional[str] = ...) -> None: ...

class ListDrainsResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[Drain]
    def __init__(self, results: _Optional[_Iterable[_Union[Drain, _Mapping]]] = ...) -> None: ...

class AddDrainRequest(_message.Message):
    __slots__ = ("app", "url")
    APP_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    app: str
    url: str
    def __init__(self, app: _Optional[str] = ..., url: _Optional[str] = ...) -> None: ...

class AddDrainResponse(_message.Message):
    __slots__ = ("drain",)
    DRAIN_FIELD_NUMBER: _ClassVar[int]
    drain: Drain
    def __init__(self, drain: _Optional[_Union[Drain, _Mapping]] = ...) -> None: ...

class RemoveDrainRequest(_message.Message):
    __slots__ = ("app", "drain")
    APP_FIELD_NUMBER: _ClassVar[int]
    DRAIN_FIELD_NUMBER: _ClassVar[int]
    app: str
    drain: str
    def __init__(self, app: _Optional[str] = ..., drain: _Optional[str] = ...) -> None: ...

class RemoveDrainResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
