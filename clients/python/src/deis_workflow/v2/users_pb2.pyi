from deis_workflow.v2 import auth_pb2 as _auth_pb2
from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ListUsersRequest(_message.Message):
    __slots__ = ("limit", "offset")
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    limit: int
    offset: int
    def __init__(self, limit: _Optional[int] = ..., offset: _Optional[int] = ...) -> None: ...

class ListUsersResponse(_message.Message):
    __slots__ = ("count", "next", "previous", "results")
    COUNT_FIELD_NUMBER: _ClassVar[int]
    NEXT_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    count: int
    next: str
    previous: str
    results: _containers.RepeatedCompositeFieldContainer[_auth_pb2.User]
    def __init__(self, count: _Optional[int] = ..., next: _Optional[str] = ..., previous: _Optional[str] = ..., results: _Optional[_Iterable[_Union[_auth_pb2.User, _Mapping]]] = ...) -> None: ...

class AdminPerm(_message.Message):
    __slots__ = ("username", "is_superuser")
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    IS_SUPERUSER_FIELD_NUMBER: _ClassVar[int]
    username: str
    is_superuser: bool
    def __init__(self, username: _Optional[str] = ..., is_superuser: _Optional[bool] = ...) -> None: ...

class ListAdminsRequest(_message.Message):
    __slots__ = ("limit", "offset")
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    limit: int
    offset: int
    def __init__(self, limit: _Optional[int] = ..., offset: _Optional[int] = ...) -> None: ...

class ListAdminsResponse(_message.Message):
    __slots__ = ("count", "next", "previous", "results")
    COUNT_FIELD_NUMBER: _ClassVar[int]
    NEXT_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    count: int
    next: str
    previous: str
    results: _containers.RepeatedCompositeFieldContainer[AdminPerm]
    def __init__(self, count: _Optional[int] = ..., next: _Optional[str] = ..., previous: _Optional[str] = ..., results: _Optional[_Iterable[_Union[AdminPerm, _Mapping]]] = ...) -> None: ...

class GrantAdminRequest(_message.Message):
    __slots__ = ("username",)
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    username: str
    def __init__(self, username: _Optional[str] = ...) -> None: ...

class GrantAdminResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RevokeAdminRequest(_message.Message):
    __slots__ = ("username",)
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    username: str
    def __init__(self, username: _Optional[str] = ...) -> None: ...

class RevokeAdminResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
