"""A thin, typed layer over the generated ``deis.v2`` gRPC stubs.

:class:`Client` opens one channel to a controller, keeps the caller's token
and sends it as ``authorization: token <key>`` metadata on every call (the
header the controller authenticates). Each service is a generated stub on
the client (``client.apps``, ``client.config``, ...); failed calls raise
:class:`DeisError`. :func:`paginate` walks ``List*`` responses page by page.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Generic, NamedTuple, Optional, Protocol, TypeVar

import grpc

from deis_workflow.v2 import (
    apps_pb2_grpc,
    auth_pb2,
    auth_pb2_grpc,
    builds_pb2_grpc,
    certs_pb2_grpc,
    config_pb2_grpc,
    domains_pb2_grpc,
    drains_pb2_grpc,
    keys_pb2_grpc,
    perms_pb2_grpc,
    platform_pb2_grpc,
    ps_pb2_grpc,
    releases_pb2_grpc,
    settings_pb2_grpc,
    users_pb2_grpc,
)

__all__ = ["Client", "DeisError", "paginate"]

_T = TypeVar("_T")
_T_co = TypeVar("_T_co", covariant=True)
_Req = TypeVar("_Req", bound="_PageRequest")


class DeisError(Exception):
    """A call the controller refused or that failed on the way.

    ``code`` is the gRPC status (``grpc.StatusCode.NOT_FOUND``, ...) and
    ``message`` the controller's explanation.
    """

    code: grpc.StatusCode
    message: str

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message

    @classmethod
    def from_rpc_error(cls, error: grpc.RpcError) -> DeisError:
        """The :class:`DeisError` for a ``grpc.RpcError`` raised by a call."""
        if isinstance(error, grpc.Call):
            return cls(error.code() or grpc.StatusCode.UNKNOWN, error.details() or "")
        return cls(grpc.StatusCode.UNKNOWN, str(error))


class _CallDetails(NamedTuple):
    method: str
    timeout: Optional[float]
    metadata: Optional[Sequence[tuple[str, str | bytes]]]
    credentials: Optional[grpc.CallCredentials]
    wait_for_ready: Optional[bool]
    compression: Optional[grpc.Compression]


class _ClientCallDetails(_CallDetails, grpc.ClientCallDetails):
    """``grpc.ClientCallDetails`` with new metadata."""


class _Unary:
    """A unary response (or its future) whose errors are :class:`DeisError`."""

    def __init__(self, call: Any) -> None:
        self._call = call

    def result(self, timeout: Optional[float] = None) -> Any:
        try:
            return self._call.result(timeout)
        except grpc.RpcError as error:
            if isinstance(error, grpc.Call):
                raise DeisError.from_rpc_error(error) from error
            raise

    def exception(self, timeout: Optional[float] = None) -> Optional[BaseException]:
        error = self._call.exception(timeout)
        if isinstance(error, grpc.RpcError) and isinstance(error, grpc.Call):
            return DeisError.from_rpc_error(error)
        return error

    def __getattr__(self, name: str) -> Any:
        return getattr(self._call, name)


class _Stream:
    """A response stream whose errors are :class:`DeisError`."""

    def __init__(self, call: Any) -> None:
        self._call = call

    def __iter__(self) -> _Stream:
        return self

    def __next__(self) -> Any:
        try:
            return next(self._call)
        except grpc.RpcError as error:
            raise DeisError.from_rpc_error(error) from error

    def __getattr__(self, name: str) -> Any:
        return getattr(self._call, name)


class _Token:
    """The token a client's calls carry (shared with its interceptor)."""

    def __init__(self, value: Optional[str]) -> None:
        self.value = value


class _TokenInterceptor(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
):
    """Adds ``authorization: token <key>`` when a token is set (replacing
    any ``authorization`` the caller passed) and turns errors into
    :class:`DeisError`."""

    def __init__(self, token: _Token) -> None:
        self._token = token

    def _details(self, details: grpc.ClientCallDetails) -> grpc.ClientCallDetails:
        token = (self._token.value or "").strip()
        if not token:
            return details
        metadata = [(k, v) for k, v in (details.metadata or ()) if k.lower() != "authorization"]
        metadata.append(("authorization", f"token {token}"))
        return _ClientCallDetails(
            details.method,
            details.timeout,
            metadata,
            details.credentials,
            getattr(details, "wait_for_ready", None),
            getattr(details, "compression", None),
        )

    def intercept_unary_unary(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        return _Unary(continuation(self._details(client_call_details), request))

    def intercept_unary_stream(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        return _Stream(continuation(self._details(client_call_details), request))

    def intercept_stream_unary(self, continuation: Any, client_call_details: Any, request_iterator: Any) -> Any:
        return _Unary(continuation(self._details(client_call_details), request_iterator))

    def intercept_stream_stream(self, continuation: Any, client_call_details: Any, request_iterator: Any) -> Any:
        return _Stream(continuation(self._details(client_call_details), request_iterator))


def _target(url: str) -> tuple[str, bool]:
    """``host:port`` and whether to use TLS for a controller URL."""
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme not in ("http", "https"):
        raise ValueError(f"controller URL must start with http:// or https://: {url!r}")
    if not parsed.hostname or parsed.username or parsed.password:
        raise ValueError(f"controller URL needs a host (and no user): {url!r}")
    if parsed.path not in ("", "/") or parsed.query or parsed.fragment:
        raise ValueError(f"controller URL must not have a path or query: {url!r}")
    secure = parsed.scheme == "https"
    host = parsed.hostname
    port = parsed.port or (443 if secure else 80)
    return (f"[{host}]:{port}" if ":" in host else f"{host}:{port}"), secure


class Client:
    """A connection to a Deis Workflow controller.

    ``url`` is the controller's URL as ``deis-workflow up`` prints it
    (``http://127.0.0.1:8000``): ``http`` opens a plaintext channel,
    ``https`` a TLS one (verified against ``root_certificates``, PEM, or the
    system's roots). ``token`` is sent with every call; :meth:`login` sets
    it. Use it as a context manager, or call :meth:`close`.
    """

    url: str
    channel: grpc.Channel
    auth: auth_pb2_grpc.AuthServiceStub
    apps: apps_pb2_grpc.AppsServiceStub
    builds: builds_pb2_grpc.BuildsServiceStub
    certs: certs_pb2_grpc.CertsServiceStub
    config: config_pb2_grpc.ConfigServiceStub
    domains: domains_pb2_grpc.DomainsServiceStub
    drains: drains_pb2_grpc.DrainsServiceStub
    keys: keys_pb2_grpc.KeysServiceStub
    perms: perms_pb2_grpc.PermsServiceStub
    platform: platform_pb2_grpc.PlatformServiceStub
    ps: ps_pb2_grpc.PsServiceStub
    releases: releases_pb2_grpc.ReleasesServiceStub
    settings: settings_pb2_grpc.SettingsServiceStub
    users: users_pb2_grpc.UsersServiceStub

    def __init__(
        self,
        url: str,
        token: Optional[str] = None,
        *,
        root_certificates: Optional[bytes] = None,
        options: Sequence[tuple[str, Any]] = (),
    ) -> None:
        target, secure = _target(url)
        self.url = url
        self._token = _Token(token)
        self._root_certificates = root_certificates
        self._options = tuple(options)
        if secure:
            credentials = grpc.ssl_channel_credentials(root_certificates=root_certificates)
            self._raw_channel = grpc.secure_channel(target, credentials, options=self._options)
        else:
            self._raw_channel = grpc.insecure_channel(target, options=self._options)
        self.channel = grpc.intercept_channel(self._raw_channel, _TokenInterceptor(self._token))
        self.auth = auth_pb2_grpc.AuthServiceStub(self.channel)
        self.apps = apps_pb2_grpc.AppsServiceStub(self.channel)
        self.builds = builds_pb2_grpc.BuildsServiceStub(self.channel)
        self.certs = certs_pb2_grpc.CertsServiceStub(self.channel)
        self.config = config_pb2_grpc.ConfigServiceStub(self.channel)
        self.domains = domains_pb2_grpc.DomainsServiceStub(self.channel)
        self.drains = drains_pb2_grpc.DrainsServiceStub(self.channel)
        self.keys = keys_pb2_grpc.KeysServiceStub(self.channel)
        self.perms = perms_pb2_grpc.PermsServiceStub(self.channel)
        self.platform = platform_pb2_grpc.PlatformServiceStub(self.channel)
        self.ps = ps_pb2_grpc.PsServiceStub(self.channel)
        self.releases = releases_pb2_grpc.ReleasesServiceStub(self.channel)
        self.settings = settings_pb2_grpc.SettingsServiceStub(self.channel)
        self.users = users_pb2_grpc.UsersServiceStub(self.channel)

    @property
    def token(self) -> Optional[str]:
        """The token calls carry (``None`` before :meth:`login`)."""
        return self._token.value

    @token.setter
    def token(self, value: Optional[str]) -> None:
        self._token.value = value

    def with_token(self, token: str) -> Client:
        """A new client for the same controller that sends ``token``."""
        return Client(self.url, token, root_certificates=self._root_certificates, options=self._options)

    def register(
        self, username: str, password: str, email: str, *, first_name: str = "", last_name: str = ""
    ) -> auth_pb2.User:
        """Registers a user and returns it; the first user ever registered
        becomes an administrator. Does not log in (see :meth:`login`)."""
        request = auth_pb2.RegisterRequest(
            username=username, password=password, email=email, first_name=first_name, last_name=last_name
        )
        user: auth_pb2.User = self.auth.Register(request).user
        return user

    def login(self, username: str, password: str) -> str:
        """Exchanges a username and password for a new token, which this
        client then sends; returns the token."""
        token: str = self.auth.Login(auth_pb2.LoginRequest(username=username, password=password)).token
        self.token = token
        return token

    def whoami(self) -> auth_pb2.User:
        """The user the token belongs to."""
        user: auth_pb2.User = self.auth.Whoami(auth_pb2.WhoamiRequest()).user
        return user

    def paginate(
        self, method: Callable[[_Req], _Page[_T]], request: _Req, *, page_size: Optional[int] = None
    ) -> Iterator[_T]:
        """Same as :func:`paginate`."""
        return paginate(method, request, page_size=page_size)

    def close(self) -> None:
        """Closes the channel; calls fail afterwards."""
        self._raw_channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _PageRequest(Protocol):
    limit: int
    offset: int

    def CopyFrom(self, other: Any) -> None: ...


class _Page(Protocol, Generic[_T_co]):
    @property
    def results(self) -> Sequence[_T_co]: ...

    @property
    def next(self) -> str: ...

    def HasField(self, field_name: str) -> bool: ...


def paginate(
    method: Callable[[_Req], _Page[_T]], request: _Req, *, page_size: Optional[int] = None
) -> Iterator[_T]:
    """Yields the ``results`` of every page of a ``List*`` call.

    ``method`` is a stub method such as ``client.apps.ListApps`` and
    ``request`` its request; paging starts at ``request.offset`` with
    ``page_size`` (or ``request.limit``; 0 lets the server choose) items per
    page, and follows each response's ``next`` link (``?limit=&offset=``)
    until a page has none. ``request`` itself is not modified.
    """
    current = type(request)()
    current.CopyFrom(request)
    if page_size is not None:
        current.limit = page_size
    while True:
        page = method(current)
        yield from page.results
        if not page.HasField("next"):
            return
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(page.next).query)
        offset = int(query.get("offset", [current.offset + len(page.results)])[0])
        if "limit" in query:
            current.limit = int(query["limit"][0])
        if offset <= current.offset:
            return  # no progress: stop rather than loop forever
        current.offset = offset
