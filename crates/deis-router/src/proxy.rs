//! One HTTP request: route it, then answer locally or forward it upstream.

use std::future::{Future, poll_fn};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{CONTENT_TYPE, COOKIE, EXPECT, HOST, LOCATION};
use http::request::Parts;
use http::uri::PathAndQuery;
use http::{Extensions, HeaderValue, Method, Request, Response, StatusCode, Uri, Version};
use hyper::body::{Body as _, Incoming};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tracing::debug;

use crate::access_log::{AccessEntry, ProxyError};
use crate::body::{Kind, Log, PendingLog, RespBody};
use crate::drain::ABORTING;
use crate::headers::{
    self, X_FORWARDED_PORT, X_FORWARDED_PROTO, X_REQUEST_ID, append_forwarded_for, host_without_port,
    strip_hop_by_hop, wants_websocket,
};
use crate::lean_server::LeanRequest;
use crate::pool::{ClusterRt, EndpointPool, Sender};
use crate::raw::{self, RawBody, RawConn, RawFraming, RawHead, UpstreamHead};
use crate::router::Inner;
use crate::routes::{ActionRt, RouteTableRt};
use crate::timer::LazyTimer;

/// What every request on one downstream connection shares.
pub(crate) struct ConnCtx {
    pub(crate) inner: Arc<Inner>,
    pub(crate) listener: u64,
    /// The listener generation the connection belongs to.
    pub(crate) generation: u64,
    pub(crate) client: SocketAddr,
    pub(crate) client_ip: IpAddr,
    /// The client's IP, ready for `X-Forwarded-For`.
    pub(crate) client_ip_header: HeaderValue,
    /// The listener's port, ready for `X-Forwarded-Port`.
    pub(crate) port_header: HeaderValue,
    pub(crate) https: bool,
}

impl ConnCtx {
    fn scheme(&self) -> &'static str {
        if self.https { "https" } else { "http" }
    }
}

/// Answers one request hyper parsed.
pub(crate) async fn handle(ctx: &ConnCtx, req: Request<Incoming>) -> Response<RespBody> {
    let (mut parts, body) = req.into_parts();
    let table = ctx.inner.route_table(ctx.listener);
    // HTTP/2 carries the host in :authority, HTTP/1 in Host.
    let host = match (parts.version, parts.uri.authority()) {
        (Version::HTTP_2, Some(authority)) => HeaderValue::from_str(authority.as_str()).ok(),
        _ => parts.headers.get(HOST).cloned(),
    };
    let request_id = match parts.headers.get(X_REQUEST_ID) {
        Some(id) if headers::valid_request_id(id.as_bytes()) => id.clone(),
        _ => {
            let id = headers::new_request_id();
            parts.headers.insert(X_REQUEST_ID, id.clone());
            id
        }
    };
    let view = RequestView {
        method: &parts.method,
        uri: &parts.uri,
        host: host.as_ref(),
        request_id: request_id.as_bytes(),
    };
    match decide(ctx, table.as_deref(), &view) {
        Routed::Answer(response) => response,
        Routed::Forward(target) => {
            if parts.method == Method::CONNECT {
                return local(StatusCode::METHOD_NOT_ALLOWED, "", None, target.log);
            }
            // Boxed: the forwarding state is large, and hyper moves the
            // request's future into place once per request.
            Box::pin(forward(ctx, parts, body, host, target)).await
        }
    }
}

/// Answers one request the lean server parsed (HTTP/1.1, origin-form, no
/// body, no upgrade), forwarding it from its head as received; the
/// connection's `timer` serves for the upstream timeout.
pub(crate) async fn route_lean(
    ctx: &ConnCtx,
    request: &LeanRequest,
    timer: &mut LazyTimer,
) -> Response<RespBody> {
    let table = ctx.inner.route_table(ctx.listener);
    let host = request.head.value(HOST.as_str());
    let kept_id = request
        .head
        .values("x-request-id")
        .next()
        .filter(|id| headers::valid_request_id(id));
    let fresh_id;
    let request_id = match kept_id {
        Some(id) => id,
        None => {
            fresh_id = headers::request_id();
            &fresh_id[..]
        }
    };
    let view = RequestView {
        method: &request.method,
        uri: &request.uri,
        host: host.as_ref(),
        request_id,
    };
    match decide(ctx, table.as_deref(), &view) {
        Routed::Answer(response) => response,
        Routed::Forward(target) => {
            let upstream = LeanUpstream {
                request,
                forwarding: headers::Forwarding {
                    client_ip: ctx.client_ip_header.as_bytes(),
                    proto: ctx.scheme().as_bytes(),
                    port: ctx.port_header.as_bytes(),
                    fresh_id: kept_id.is_none().then_some(request_id),
                },
            };
            forward_raw(&upstream, target, true, Some(timer)).await
        }
    }
}

/// What routing reads of a request, whoever parsed it.
struct RequestView<'a> {
    method: &'a Method,
    uri: &'a Uri,
    /// The Host header (HTTP/1) or authority (HTTP/2).
    host: Option<&'a HeaderValue>,
    /// The id the request is forwarded with.
    request_id: &'a [u8],
}

/// What the route table says to do with a request.
// Returned once per request; a box would be one more allocation each time.
#[allow(clippy::large_enum_variant)]
enum Routed<'t> {
    /// The router answers itself (unknown host, denied, a redirect...).
    Answer(Response<RespBody>),
    Forward(Target<'t>),
}

/// The cluster a request goes to, with its route's limits, and the request's
/// log so far.
struct Target<'t> {
    cluster: &'t ClusterRt,
    timeout: Option<Duration>,
    retries: u32,
    log: Log,
}

/// Looks the request up in the listener's route table (`None`: no routes),
/// on the configuration current when it arrived.
fn decide<'t>(ctx: &ConnCtx, table: Option<&'t RouteTableRt>, request: &RequestView<'_>) -> Routed<'t> {
    let access = ctx.inner.access_log.enabled().then(|| {
        Box::new(PendingLog {
            sink: Arc::clone(&ctx.inner.access_log),
            entry: AccessEntry {
                virtual_host: None,
                method: request.method.clone(),
                uri: request.uri.clone(),
                host: request.host.cloned(),
                status: 0,
                bytes_sent: 0,
                client_addr: ctx.client,
                request_id: HeaderValue::from_bytes(request.request_id)
                    .unwrap_or(HeaderValue::from_static("")),
                upstream: None,
                connect: Duration::ZERO,
                total: Duration::ZERO,
                protocol: ctx.scheme(),
                error: None,
            },
        })
    });
    let mut log = Log {
        access,
        stats: None,
        start: Instant::now(),
        status: 0,
    };

    let host_str = request
        .host
        .and_then(|h| h.to_str().ok())
        .map(host_without_port)
        .unwrap_or("");
    let Some(table) = table else {
        return Routed::Answer(local(StatusCode::NOT_FOUND, "", None, log));
    };
    let Some(vhost) = table.find(&headers::lowercase(host_str)) else {
        return Routed::Answer(local(StatusCode::NOT_FOUND, "", None, log));
    };
    log.stats = Some(Arc::clone(&vhost.stats));
    if let Some(access) = &mut log.access {
        access.entry.virtual_host = Some(Arc::clone(&vhost.name));
    }
    if !vhost.allows(ctx.client_ip) {
        return Routed::Answer(local(StatusCode::FORBIDDEN, "access denied\n", None, log));
    }
    let Some(action) = vhost.route(request.uri.path()) else {
        return Routed::Answer(local(StatusCode::NOT_FOUND, "", None, log));
    };
    let response = match action {
        ActionRt::Respond {
            status,
            content_type,
            body,
        } => {
            let mut response = Response::new(RespBody::new(
                Kind::Full(Some(body.clone())),
                finish(log, *status),
            ));
            *response.status_mut() = *status;
            if let Some(content_type) = content_type {
                response.headers_mut().insert(CONTENT_TYPE, content_type.clone());
            }
            response
        }
        ActionRt::Redirect { scheme, port, status } => {
            let scheme = scheme.as_deref().unwrap_or(ctx.scheme());
            let port = match port {
                Some(80) if scheme == "http" => None,
                Some(443) if scheme == "https" => None,
                other => *other,
            };
            let path = request.uri.path_and_query().map_or("/", PathAndQuery::as_str);
            let location = match (host_str, port) {
                ("", _) => path.to_owned(),
                (host, Some(port)) => format!("{scheme}://{host}:{port}{path}"),
                (host, None) => format!("{scheme}://{host}{path}"),
            };
            match HeaderValue::from_maybe_shared(Bytes::from(location)) {
                Ok(location) => {
                    let mut response = Response::new(RespBody::new(Kind::Empty, finish(log, *status)));
                    *response.status_mut() = *status;
                    response.headers_mut().insert(LOCATION, location);
                    response
                }
                Err(_) => local(StatusCode::BAD_REQUEST, "bad request\n", None, log),
            }
        }
        ActionRt::Forward { cluster: None, .. } => local(
            StatusCode::SERVICE_UNAVAILABLE,
            "no cluster\n",
            Some(ProxyError::NoCluster),
            log,
        ),
        ActionRt::Forward {
            cluster: Some(cluster),
            timeout,
            retries,
        } => {
            return Routed::Forward(Target {
                cluster,
                timeout: *timeout,
                retries: *retries,
                log,
            });
        }
    };
    Routed::Answer(response)
}

/// A lean request as it goes upstream: its head as received, with the
/// forwarding rules applied while it is written.
struct LeanUpstream<'a> {
    request: &'a LeanRequest,
    forwarding: headers::Forwarding<'a>,
}

impl UpstreamHead for LeanUpstream<'_> {
    fn method(&self) -> &Method {
        &self.request.method
    }

    fn write_head(&self, out: &mut Vec<u8>) {
        let target = self
            .request
            .uri
            .path_and_query()
            .map_or("/", PathAndQuery::as_str);
        raw::request_line(out, &self.request.method, target.as_bytes());
        headers::write_forwarded(out, &self.request.head, &self.forwarding);
        out.extend_from_slice(b"\r\n");
    }
}

fn finish(mut log: Log, status: StatusCode) -> Log {
    log.status = status.as_u16();
    log
}

/// A reply of the router's own, Envoy's wording for the error bodies.
fn local(
    status: StatusCode,
    body: &'static str,
    error: Option<ProxyError>,
    mut log: Log,
) -> Response<RespBody> {
    if let Some(access) = &mut log.access {
        access.entry.error = error;
    }
    let kind = if body.is_empty() {
        Kind::Empty
    } else {
        Kind::Full(Some(Bytes::from_static(body.as_bytes())))
    };
    let mut response = Response::new(RespBody::new(kind, finish(log, status)));
    *response.status_mut() = status;
    if !body.is_empty() {
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    }
    response
}

/// An upstream exchange, given up with [`ProxyError::Timeout`] `timeout`
/// after the request's `start`. Polled in place (not moved into a `Timeout`), the timer beside
/// it, so the `Attempt` it records into stays readable afterwards. The
/// connection's own `timer` serves when there is one; else a new one.
async fn within<T>(
    start: Instant,
    timeout: Option<Duration>,
    timer: Option<&mut LazyTimer>,
    exchange: impl Future<Output = Result<T, ProxyError>>,
) -> Result<T, ProxyError> {
    tokio::pin!(exchange);
    let deadline = timeout.and_then(|limit| start.checked_add(limit));
    let Some(deadline) = deadline.map(tokio::time::Instant::from_std) else {
        return exchange.await;
    };
    let mut own = LazyTimer::default();
    let timer = timer.unwrap_or(&mut own);
    poll_fn(|cx| {
        if let Poll::Ready(result) = exchange.as_mut().poll(cx) {
            return Poll::Ready(result);
        }
        timer
            .poll_deadline(deadline, cx)
            .map(|()| Err(ProxyError::Timeout))
    })
    .await
}

fn error_reply(error: ProxyError, log: Log) -> Response<RespBody> {
    let (status, body) = match error {
        ProxyError::NoCluster => (StatusCode::SERVICE_UNAVAILABLE, "no cluster\n"),
        ProxyError::NoEndpoints => (StatusCode::SERVICE_UNAVAILABLE, "no healthy upstream\n"),
        ProxyError::ConnectFailed => (
            StatusCode::SERVICE_UNAVAILABLE,
            "upstream connect error or disconnect/reset before headers. reset reason: connection failure\n",
        ),
        ProxyError::Timeout => (StatusCode::GATEWAY_TIMEOUT, "upstream request timeout\n"),
        ProxyError::UpstreamReset => (
            StatusCode::SERVICE_UNAVAILABLE,
            "upstream connect error or disconnect/reset before headers. reset reason: connection termination\n",
        ),
        ProxyError::BadResponse => (StatusCode::BAD_GATEWAY, "upstream sent an invalid response\n"),
    };
    local(status, body, Some(error), log)
}

/// Where the exchange got to, kept even when a timeout cancels it.
#[derive(Default)]
struct Attempt {
    endpoint: Option<SocketAddr>,
    connect: Duration,
}

impl Attempt {
    /// Notes the endpoint and connect time in the access log entry.
    fn record(&self, log: &mut Log) {
        if let Some(access) = &mut log.access {
            access.entry.upstream = self.endpoint;
            access.entry.connect = self.connect;
        }
    }
}

async fn forward(
    ctx: &ConnCtx,
    mut parts: Parts,
    body: Incoming,
    host: Option<HeaderValue>,
    target: Target<'_>,
) -> Response<RespBody> {
    let h2 = parts.version == Version::HTTP_2;
    let upgrade = !h2 && wants_websocket(&parts.headers);
    let downstream_upgrade = if upgrade {
        parts.extensions.remove::<OnUpgrade>()
    } else {
        None
    };

    let headers = &mut parts.headers;
    // Room for the forwarding headers, so the map grows at most once.
    headers.reserve(4);
    if h2 {
        headers.remove(http::header::TE);
        if !headers.contains_key(HOST)
            && let Some(host) = host
        {
            headers.insert(HOST, host);
        }
        join_cookies(headers);
    } else {
        strip_hop_by_hop(headers, upgrade);
    }
    // The router answers `Expect: 100-continue` itself (hyper sends the 100
    // when the body is first read), as Envoy does.
    headers.remove(EXPECT);
    append_forwarded_for(headers, &ctx.client_ip_header);
    headers.insert(
        X_FORWARDED_PROTO,
        if ctx.https { headers::HTTPS } else { headers::HTTP },
    );
    headers.insert(X_FORWARDED_PORT, ctx.port_header.clone());

    if parts.uri.scheme().is_some() || parts.uri.authority().is_some() {
        let path = parts
            .uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        parts.uri = Uri::from(path);
    }
    parts.version = Version::HTTP_11;
    parts.extensions = Extensions::new();
    if raw::eligible(&parts, body.is_end_stream(), upgrade) {
        return forward_raw(&parts, target, false, None).await;
    }
    let req = Request::from_parts(parts, body);

    let mut log = target.log;
    let mut attempt = Attempt::default();
    let result = within(
        log.start,
        target.timeout,
        None,
        exchange(ctx, target.cluster, req, target.retries, &mut attempt),
    )
    .await;
    attempt.record(&mut log);
    let (mut response, sender, pool) = match result {
        Ok(ok) => ok,
        Err(error) => return error_reply(error, log),
    };

    if response.status() == StatusCode::SWITCHING_PROTOCOLS {
        let Some(downstream_upgrade) = downstream_upgrade else {
            return error_reply(ProxyError::BadResponse, log);
        };
        let upstream_upgrade = hyper::upgrade::on(&mut response);
        tunnel(ctx, downstream_upgrade, upstream_upgrade);
        let (mut head, _) = response.into_parts();
        strip_hop_by_hop(&mut head.headers, true);
        let status = head.status;
        return Response::from_parts(head, RespBody::new(Kind::Empty, finish(log, status)));
    }

    let (mut head, body) = response.into_parts();
    strip_hop_by_hop(&mut head.headers, false);
    // The client talks to the router, whatever HTTP version the app speaks
    // (Python's http.server answers HTTP/1.0): as nginx and Envoy do.
    head.version = Version::HTTP_11;
    // A connection that was asked to upgrade is not reused.
    let conn = if upgrade { None } else { Some((sender, pool)) };
    let status = head.status;
    Response::from_parts(
        head,
        RespBody::new(Kind::Upstream { body, conn }, finish(log, status)),
    )
}

/// `forward` for a request without a body or upgrade: the lean path.
/// With `pass_head`, the upstream's head rides in the body for the lean
/// server to pass on, and the response's own headers stay empty.
async fn forward_raw(
    request: &impl UpstreamHead,
    target: Target<'_>,
    pass_head: bool,
    timer: Option<&mut LazyTimer>,
) -> Response<RespBody> {
    let mut log = target.log;
    let mut attempt = Attempt::default();
    let result = within(
        log.start,
        target.timeout,
        timer,
        exchange_raw(target.cluster, request, target.retries, &mut attempt),
    )
    .await;
    attempt.record(&mut log);
    let (status, head, framing, conn, pool) = match result {
        Ok(ok) => ok,
        Err(error) => return error_reply(error, log),
    };
    if pass_head {
        let mut response = Response::new(RespBody::new(
            Kind::Raw(RawBody::new(conn, pool, framing, Some(head))),
            finish(log, status),
        ));
        *response.status_mut() = status;
        return response;
    }
    let (mut parts, ()) = match head.to_response(status) {
        Ok(response) => response.into_parts(),
        Err(error) => return error_reply(error, log),
    };
    strip_hop_by_hop(&mut parts.headers, false);
    Response::from_parts(
        parts,
        RespBody::new(
            Kind::Raw(RawBody::new(conn, pool, framing, None)),
            finish(log, status),
        ),
    )
}

/// `exchange` on the lean path: an idle socket if one is open, else a new
/// one; connect failures move on to the next endpoint, up to `retries`
/// times. A safe request (GET, HEAD, OPTIONS) that the upstream drops
/// before any answer (a process killed, a pooled socket it had just closed)
/// is sent again to the next endpoint within the same budget: nothing
/// reached the client yet, and repeating it changes nothing upstream.
async fn exchange_raw(
    cluster: &ClusterRt,
    request: &impl UpstreamHead,
    retries: u32,
    attempt: &mut Attempt,
) -> Result<(StatusCode, RawHead, RawFraming, RawConn, Arc<EndpointPool>), ProxyError> {
    let safe = matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    let mut start = None;
    let mut failures = 0u32;
    let mut fail = |error: ProxyError| {
        failures = failures.saturating_add(1);
        if failures > retries { Err(error) } else { Ok(()) }
    };
    loop {
        // A retry goes to another endpoint than the one that just failed.
        let Some(endpoint) = cluster.pick_avoiding(attempt.endpoint) else {
            return Err(ProxyError::NoEndpoints);
        };
        attempt.endpoint = Some(endpoint.addr);
        let mut conn = if let Some(conn) = endpoint.checkout_raw() {
            conn
        } else {
            let started = *start.get_or_insert_with(Instant::now);
            match endpoint.connect_raw(cluster.connect_timeout).await {
                Ok(stream) => {
                    attempt.connect = started.elapsed();
                    match RawConn::new(stream) {
                        Ok(conn) => conn,
                        Err(e) => {
                            debug!(upstream = %endpoint.addr, error = %e, "upstream socket unusable");
                            fail(ProxyError::ConnectFailed)?;
                            continue;
                        }
                    }
                }
                Err(e) => {
                    debug!(upstream = %endpoint.addr, error = %e, "upstream connect failed");
                    fail(ProxyError::ConnectFailed)?;
                    continue;
                }
            }
        };
        if let Err(e) = raw::send(&mut conn, request).await {
            debug!(upstream = %endpoint.addr, error = %e, "upstream request failed");
            if safe {
                fail(ProxyError::UpstreamReset)?;
                continue;
            }
            return Err(ProxyError::UpstreamReset);
        }
        match raw::read_head(&mut conn, request.method()).await {
            Ok((status, head, framing)) => return Ok((status, head, framing, conn, Arc::clone(endpoint))),
            Err(ProxyError::UpstreamReset) if safe => {
                debug!(upstream = %endpoint.addr, "upstream closed before answering; trying again");
                fail(ProxyError::UpstreamReset)?;
            }
            Err(e) => {
                debug!(upstream = %endpoint.addr, error = ?e, "upstream request failed");
                return Err(e);
            }
        }
    }
}

/// Sends the request to an endpoint: a pooled connection if one is idle,
/// else a new one; connect failures move on to the next endpoint, up to
/// `retries` times.
async fn exchange(
    ctx: &ConnCtx,
    cluster: &ClusterRt,
    mut req: Request<Incoming>,
    retries: u32,
    attempt: &mut Attempt,
) -> Result<(Response<Incoming>, Sender, Arc<EndpointPool>), ProxyError> {
    // The clock is read only when a connection has to be made.
    let mut start = None;
    let mut failures = 0u32;
    loop {
        // A retry goes to another endpoint than the one that just failed.
        let Some(endpoint) = cluster.pick_avoiding(attempt.endpoint) else {
            return Err(ProxyError::NoEndpoints);
        };
        attempt.endpoint = Some(endpoint.addr);
        let (mut sender, fresh) = if let Some(sender) = endpoint.checkout() {
            (sender, false)
        } else {
            let started = *start.get_or_insert_with(Instant::now);
            match endpoint
                .connect(cluster.connect_timeout, &ctx.inner.upstream)
                .await
            {
                Ok(sender) => {
                    attempt.connect = started.elapsed();
                    (sender, true)
                }
                Err(e) => {
                    debug!(upstream = %endpoint.addr, error = %e, "upstream connect failed");
                    failures = failures.saturating_add(1);
                    if failures > retries {
                        return Err(ProxyError::ConnectFailed);
                    }
                    continue;
                }
            }
        };
        match sender.try_send_request(req).await {
            Ok(response) => return Ok((response, sender, Arc::clone(endpoint))),
            Err(mut e) => match e.take_message() {
                // Not sent (a pooled connection the upstream had just
                // closed): try again; only fresh connections count.
                Some(unsent) => {
                    req = unsent;
                    if fresh {
                        failures = failures.saturating_add(1);
                        if failures > retries {
                            return Err(ProxyError::ConnectFailed);
                        }
                    }
                }
                None => {
                    let e = e.into_error();
                    debug!(upstream = %endpoint.addr, error = %e, "upstream request failed");
                    return Err(if e.is_parse() {
                        ProxyError::BadResponse
                    } else {
                        ProxyError::UpstreamReset
                    });
                }
            },
        }
    }
}

/// Joins the two sides of a WebSocket once both have switched protocols.
fn tunnel(ctx: &ConnCtx, downstream: OnUpgrade, upstream: OnUpgrade) {
    let mut watch = ctx.inner.conns.register(ctx.generation);
    tokio::spawn(async move {
        let (downstream, upstream) = match tokio::try_join!(downstream, upstream) {
            Ok(both) => both,
            Err(e) => {
                debug!(error = %e, "websocket upgrade failed");
                return;
            }
        };
        let mut downstream = TokioIo::new(downstream);
        let mut upstream = TokioIo::new(upstream);
        tokio::select! {
            result = tokio::io::copy_bidirectional(&mut downstream, &mut upstream) => {
                if let Err(e) = result {
                    debug!(error = %e, "websocket tunnel ended");
                }
            }
            () = watch.reached(ABORTING) => {}
        }
    });
}

/// HTTP/2 may split cookies over several headers; HTTP/1.1 wants one.
fn join_cookies(headers: &mut http::HeaderMap) {
    let mut cookies = headers.get_all(COOKIE).iter();
    let (Some(first), Some(_)) = (cookies.next(), cookies.next()) else {
        return;
    };
    let mut joined = first.as_bytes().to_vec();
    for more in headers.get_all(COOKIE).iter().skip(1) {
        joined.extend_from_slice(b"; ");
        joined.extend_from_slice(more.as_bytes());
    }
    if let Ok(value) = HeaderValue::from_bytes(&joined) {
        headers.insert(COOKIE, value);
    }
}
