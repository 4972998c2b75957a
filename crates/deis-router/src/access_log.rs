//! Access log entries and their Heroku-style rendering.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderValue, Method, Uri};

/// Receives one entry per HTTP request the router answered, when the
/// response has been sent (or abandoned). Called on the connection's task:
/// keep it cheap (buffer, or hand off to another task).
pub trait AccessLog: Send + Sync {
    /// Records one finished request.
    fn log(&self, entry: &AccessEntry);

    /// Whether entries are wanted at all; `false` lets the router skip
    /// building them.
    fn enabled(&self) -> bool {
        true
    }
}

/// Discards every entry (for callers that log elsewhere, and benchmarks).
#[derive(Clone, Copy, Debug, Default)]
pub struct NoAccessLog;

impl AccessLog for NoAccessLog {
    fn log(&self, _entry: &AccessEntry) {}

    fn enabled(&self) -> bool {
        false
    }
}

/// Emits every entry as a [`format_heroku`] line through `tracing` at info
/// level (target `deis_router::access`), so it lands wherever the process
/// logs go.
#[derive(Clone, Copy, Debug, Default)]
pub struct TracingAccessLog;

impl AccessLog for TracingAccessLog {
    fn log(&self, entry: &AccessEntry) {
        tracing::info!(target: "deis_router::access", "{}", format_heroku(entry));
    }
}

/// Why the router itself answered with an error instead of the app.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProxyError {
    /// The route names a cluster the configuration does not have (503).
    NoCluster,
    /// The cluster has no endpoints (503).
    NoEndpoints,
    /// No endpoint accepted a connection within the retries (503).
    ConnectFailed,
    /// The response headers did not arrive within the route's timeout (504).
    Timeout,
    /// The upstream closed or reset the connection before answering (503).
    UpstreamReset,
    /// The upstream answered with something that is not HTTP/1.1 (502).
    BadResponse,
}

impl ProxyError {
    /// Heroku's router error code for this failure.
    pub fn heroku_code(self) -> &'static str {
        match self {
            ProxyError::NoCluster => "H99",
            ProxyError::NoEndpoints => "H14",
            ProxyError::ConnectFailed => "H19",
            ProxyError::Timeout => "H12",
            ProxyError::UpstreamReset => "H13",
            ProxyError::BadResponse => "H17",
        }
    }

    /// A short human description, as in Heroku's router logs.
    pub fn description(self) -> &'static str {
        match self {
            ProxyError::NoCluster => "Platform error",
            ProxyError::NoEndpoints => "No web processes running",
            ProxyError::ConnectFailed => "Backend connection failed",
            ProxyError::Timeout => "Request timeout",
            ProxyError::UpstreamReset => "Connection closed without response",
            ProxyError::BadResponse => "Poorly formatted HTTP response",
        }
    }
}

/// One answered request, as the access log sees it.
#[derive(Clone, Debug)]
pub struct AccessEntry {
    /// The matched virtual host's name (the app, for app hosts); `None` when
    /// no virtual host matched.
    pub virtual_host: Option<Arc<str>>,
    /// Request method.
    pub method: Method,
    /// Request target as received; [`AccessEntry::path`] gives path and query.
    pub uri: Uri,
    /// Host header (HTTP/1) or `:authority` (HTTP/2), port included.
    pub host: Option<HeaderValue>,
    /// Status sent to the client.
    pub status: u16,
    /// Response body bytes sent to the client.
    pub bytes_sent: u64,
    /// The client's address.
    pub client_addr: SocketAddr,
    /// The request id sent upstream (the client's, or a generated UUID).
    pub request_id: HeaderValue,
    /// The endpoint the request was last sent (or tried) to.
    pub upstream: Option<SocketAddr>,
    /// Time until an upstream connection was ready (pooled: about zero).
    pub connect: Duration,
    /// Time from the request's arrival to the end of the response.
    pub total: Duration,
    /// `"http"` or `"https"`: the listener's scheme.
    pub protocol: &'static str,
    /// Set when the router answered with an error of its own.
    pub error: Option<ProxyError>,
}

impl AccessEntry {
    /// Path and query of the request (`/` when the target had none).
    pub fn path(&self) -> &str {
        self.uri.path_and_query().map_or("/", |pq| pq.as_str())
    }
}

/// Renders an entry as a Heroku router log line, e.g.
/// `at=info method=GET path="/" host=myapp.example.com request_id=… fwd="10.0.0.1"
/// dyno=10.1.2.3:5000 connect=0ms service=3ms status=200 bytes=123 protocol=http`.
/// Router-generated errors become `at=error code=H12 desc="Request timeout" …`.
pub fn format_heroku(entry: &AccessEntry) -> String {
    let mut line = String::with_capacity(256);
    match entry.error {
        Some(error) => {
            let _ = write!(
                line,
                "at=error code={} desc=\"{}\" ",
                error.heroku_code(),
                error.description()
            );
        }
        None => line.push_str("at=info "),
    }
    let _ = write!(line, "method={} path=\"", entry.method);
    push_escaped(&mut line, entry.path().as_bytes());
    line.push_str("\" host=");
    if let Some(host) = &entry.host {
        push_bare(&mut line, host.as_bytes());
    }
    line.push_str(" request_id=");
    push_bare(&mut line, entry.request_id.as_bytes());
    let _ = write!(line, " fwd=\"{}\" dyno=", entry.client_addr.ip());
    if let Some(upstream) = entry.upstream {
        let _ = write!(line, "{upstream}");
    }
    let connect = entry.connect.as_millis();
    let service = entry.total.saturating_sub(entry.connect).as_millis();
    let _ = write!(
        line,
        " connect={connect}ms service={service}ms status={} bytes={} protocol={}",
        entry.status, entry.bytes_sent, entry.protocol
    );
    line
}

/// Appends bytes for a quoted field: `"` and `\` escaped, non-printables as `\xNN`.
fn push_escaped(line: &mut String, bytes: &[u8]) {
    for &b in bytes {
        match b {
            b'"' => line.push_str("\\\""),
            b'\\' => line.push_str("\\\\"),
            0x21..=0x7e | b' ' => line.push(char::from(b)),
            _ => {
                let _ = write!(line, "\\x{b:02x}");
            }
        }
    }
}

/// Appends bytes for an unquoted field: anything but visible ASCII as `\xNN`.
fn push_bare(line: &mut String, bytes: &[u8]) {
    for &b in bytes {
        match b {
            0x21..=0x7e if b != b'"' => line.push(char::from(b)),
            _ => {
                let _ = write!(line, "\\x{b:02x}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> AccessEntry {
        AccessEntry {
            virtual_host: Some(Arc::from("myapp")),
            method: Method::GET,
            uri: Uri::from_static("/a/b?c=1"),
            host: Some(HeaderValue::from_static("myapp.localhost")),
            status: 200,
            bytes_sent: 123,
            client_addr: "127.0.0.1:5555".parse().unwrap(),
            request_id: HeaderValue::from_static("0123456789abcdef0123"),
            upstream: None,
            connect: Duration::from_millis(1),
            total: Duration::from_millis(4),
            protocol: "http",
            error: None,
        }
    }

    #[test]
    fn info_line() {
        assert_eq!(
            format_heroku(&entry()),
            "at=info method=GET path=\"/a/b?c=1\" host=myapp.localhost request_id=0123456789abcdef0123 \
             fwd=\"127.0.0.1\" dyno= connect=1ms service=3ms status=200 bytes=123 protocol=http"
        );
    }

    #[test]
    fn error_line_has_code_and_upstream() {
        let mut e = entry();
        e.error = Some(ProxyError::Timeout);
        e.status = 504;
        e.upstream = Some("10.0.0.2:5000".parse().unwrap());
        let line = format_heroku(&e);
        assert!(
            line.starts_with("at=error code=H12 desc=\"Request timeout\" method=GET"),
            "{line}"
        );
        assert!(line.contains(" dyno=10.0.0.2:5000 "), "{line}");
        assert!(line.contains(" status=504 "), "{line}");
    }

    #[test]
    fn hostile_bytes_are_escaped() {
        let mut e = entry();
        e.host = Some(HeaderValue::from_bytes(b"a b\"c").unwrap());
        e.uri = "/x%22?q=\"".parse().unwrap_or_else(|_| Uri::from_static("/x"));
        let line = format_heroku(&e);
        assert!(line.contains("host=a\\x20b\\x22c "), "{line}");
        assert!(!line.contains("path=\"/x\"\""), "{line}");
    }
}
