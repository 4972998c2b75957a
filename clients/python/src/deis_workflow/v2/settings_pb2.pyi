import datetime

from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Autoscale(_message.Message):
    __slots__ = ("min", "max", "cpu_percent")
    MIN_FIELD_NUMBER: _ClassVar[int]
    MAX_FIELD_NUMBER: _ClassVar[int]
    CPU_PERCENT_FIELD_NUMBER: _ClassVar[int]
    min: int
    max: int
    cpu_percent: int
    def __init__(self, min: _Optional[int] = ..., max: _Optional[int] = ..., cpu_percent: _Optional[int] = ...) -> None: ...

class AppSettings(_message.Message):
    __slots__ = ("uuid", "owner", "app", "maintenance", "routable", "whitelist", "autoscale", "label", "created", "updated")
    class AutoscaleEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: Autoscale
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Autoscale, _Mapping]] = ...) -> None: ...
    class LabelEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    UUID_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    APP_FIELD_NUMBER: _ClassVar[int]
    MAINTENANCE_FIELD_NUMBER: _ClassVar[int]
    ROUTABLE_FIELD_NUMBER: _ClassVar[int]
    WHITELIST_FIELD_NUMBER: _ClassVar[int]
    AUTOSCALE_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    UPDATED_FIELD_NUMBER: _ClassVar[int]
    uuid: str
    owner: str
    app: str
    maintenance: bool
    routable: bool
    whitelist: _containers.RepeatedScalarFieldContainer[str]
    autoscale: _containers.MessageMap[str, Autoscale]
    label: _containers.ScalarMap[str, str]
    created: _timestamp_pb2.Timestamp
    updated: _timestamp_pb2.Timestamp
    def __init__(self, uuid: _Optional[str] = ..., owner: _Optional[str] = ..., app: _Optional[str] = ..., maintenance: _Optional[bool] = ..., routable: _Optional[bool] = ..., whitelist: _Optional[_Iterable[str]] = ..., autoscale: _Optional[_Mapping[str, Autoscale]] = ..., label: _Optional[_Mapping[str, str]] = ..., created: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetAppSettingsRequest(_message.Message):
    __slots__ = ("app",)
    APP_FIELD_NUMBER: _ClassVar[int]
    app: str
    def __init__(self, app: _Optional[str] = ...) -> None: ...

class GetAppSettingsResponse(_message.Message):
    __slots__ = ("settings",)
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    settings: AppSettings
    def __init__(self, settings: _Optional[_Union[AppSettings, _Mapping]] = ...) -> None: ...

class UpdateAppSettingsRequest(_message.Message):
    __slots__ = ("app", "maintenance", "routable", "autoscale", "label")
    class LabelEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: _struct_pb2.Value
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ...) -> None: ...
    APP_FIELD_NUMBER: _ClassVar[int]
    MAINTENANCE_FIELD_NUMBER: _ClassVar[int]
    ROUTABLE_FIELD_NUMBER: _ClassVar[int]
    AUTOSCALE_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    app: str
    maintenance: bool
    routable: bool
    autoscale: _struct_pb2.Struct
    label: _containers.MessageMap[str, _struct_pb2.Value]
    def __init__(self, app: _Optional[str] = ..., maintenance: _Optional[bool] = ..., routable: _Optional[bool] = ..., autoscale: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., label: _Optional[_Mapping[str, _struct_pb2.Value]] = ...) -> None: ...

class UpdateAppSettingsResponse(_message.Message):
    __slots__ = ("settings",)
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    settings: AppSettings
    def __init__(self, settings: _Optional[_Union[AppSettings, _Mapping]] = ...) -> None: ...

class ListWhitelistRequest(_message.Message):
    __slots__ = ("app",)
    APP_FIELD_NUMBER: _ClassVar[int]
    app: str
    def __init__(self, app: _Optional[str] = ...) -> None: ...

class ListWhitelistResponse(_message.Message):
    __slots__ = ("addresses",)
    ADDRESSES_FIELD_NUMBER: _ClassVar[int]
    addresses: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, addresses: _Optional[_Iterable[str]] = ...) -> None: ...

class AddWhitelistRequest(_message.Message):
    __slots__ = ("app", "addresses")
    APP_FIELD_NUMBER: _ClassVar[int]
    ADDRESSES_FIELD_NUMBER: _ClassVar[int]
    app: str
    addresses: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, app: _Optional[str] = ..., addresses: _Optional[_Iterable[str]] = ...) -> None: ...

class AddWhitelistResponse(_message.Message):
    __slots__ = ("addresses",)
    ADDRESSES_FIELD_NUMBER: _ClassVar[int]
    addresses: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, addresses: _Optional[_Iterable[str]] = ...) -> None: ...

class RemoveWhitelistRequest(_message.Message):
    __slots__ = ("app", "addresses")
    APP_FIELD_NUMBER: _ClassVar[int]
    ADDRESSES_FIELD_NUMBER: _ClassVar[int]
    app: str
    addresses: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, app: _Optional[str] = ..., addresses: _Optional[_Iterable[str]] = ...) -> None: ...

class RemoveWhitelistResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Tls(_message.Message):
    __slots__ = ("uuid", "owner", "app", "https_enforced", "created", "updated")
    UUID_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    APP_FIELD_NUMBER: _ClassVar[int]
    HTTPS_ENFORCED_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    UPDATED_FIELD_NUMBER: _ClassVar[int]
    uuid: str
    owner: str
    app: str
    https_enforced: bool
    created: _timestamp_pb2.Timestamp
    updated: _timestamp_pb2.Timestamp
    def __init__(self, uuid: _Optional[str] = ..., owner: _Optional[str] = ..., app: _Optional[str] = ..., https_enforced: _Optional[bool] = ..., created: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetTlsRequest(_message.Message):
    __slots__ = ("app",)
    APP_FIELD_NUMBER: _ClassVar[int]
    app: str
    def __init__(self, app: _Optional[str] = ...) -> None: ...

class GetTlsResponse(_message.Message):
    __slots__ = ("tls",)
    TLS_FIELD_NUMBER: _ClassVar[int]
    tls: Tls
    def __init__(self, tls: _Optional[_Union[Tls, _Mapping]] = ...) -> None: ...

class SetTlsRequest(_message.Message):
    __slots__ = ("app", "https_enforced")
    APP_FIELD_NUMBER: _ClassVar[int]
    HTTPS_ENFORCED_FIELD_NUMBER: _ClassVar[int]
    app: str
    https_enforced: bool
    def __init__(self, app: _Optional[str] = ..., https_enforced: _Optional[bool] = ...) -> None: ...

class SetTlsResponse(_message.Message):
    __slots__ = ("tls",)
    TLS_FIELD_NUMBER: _ClassVar[int]
    tls: Tls
    def __init__(self, tls: _Optional[_Union[Tls, _Mapping]] = ...) -> None: ...
