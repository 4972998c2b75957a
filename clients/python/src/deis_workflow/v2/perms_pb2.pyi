from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class ListAppPermsRequest(_message.Message):
    __slots__ = ("app",)
    APP_FIELD_NUMBER: _ClassVar[int]
    app: str
    def __init__(self, app: _Optional[str] = ...) -> None: ...

class ListAppPermsResponse(_message.Message):
    __slots__ = ("users",)
    USERS_FIELD_NUMBER: _ClassVar[int]
    users: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, users: _Optional[_Iterable[str]] = ...) -> None: ...

class GrantAppPermRequest(_message.Message):
    __slots__ = ("app", "username")
    APP_FIELD_NUMBER: _ClassVar[int]
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    app: str
    username: str
    def __init__(self, app: _Optional[str] = ..., username: _Optional[str] = ...) -> None: ...

class GrantAppPermResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RevokeAppPermRequest(_message.Message):
    __slots__ = ("app", "username")
    APP_FIELD_NUMBER: _ClassVar[int]
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    app: str
    username: str
    def __init__(self, app: _Optional[str] = ..., username: _Optional[str] = ...) -> None: ...

class RevokeAppPermResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
