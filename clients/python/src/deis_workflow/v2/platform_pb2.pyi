from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class GetPlatformInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetPlatformInfoResponse(_message.Message):
    __slots__ = ("api_version", "platform_version", "builder_host", "builder_port", "platform_domain", "registration_mode", "memory_limits", "cpu_limits", "autoscaling")
    API_VERSION_FIELD_NUMBER: _ClassVar[int]
    PLATFORM_VERSION_FIELD_NUMBER: _ClassVar[int]
    BUILDER_HOST_FIELD_NUMBER: _ClassVar[int]
    BUILDER_PORT_FIELD_NUMBER: _ClassVar[int]
    PLATFORM_DOMAIN_FIELD_NUMBER: _ClassVar[int]
    REGISTRATION_MODE_FIELD_NUMBER: _ClassVar[int]
    MEMORY_LIMITS_FIELD_NUMBER: _ClassVar[int]
    CPU_LIMITS_FIELD_NUMBER: _ClassVar[int]
    AUTOSCALING_FIELD_NUMBER: _ClassVar[int]
    api_version: str
    platform_version: str
    builder_host: str
    builder_port: int
    platform_domain: str
    registration_mode: str
    memory_limits: str
    cpu_limits: str
    autoscaling: str
    def __init__(self, api_version: _Optional[str] = ..., platform_version: _Optional[str] = ..., builder_host: _Optional[str] = ..., builder_port: _Optional[int] = ..., platform_domain: _Optional[str] = ..., registration_mode: _Optional[str] = ..., memory_limits: _Optional[str] = ..., cpu_limits: _Optional[str] = ..., autoscaling: _Optional[str] = ...) -> None: ...
