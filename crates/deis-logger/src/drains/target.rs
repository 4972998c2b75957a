//! Drain URLs: what is accepted, and why anything else is refused.

use url::{Host, Url};

/// Where a drain sends lines, as [`parse_drain_url`] understood its URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DrainTarget {
    /// RFC 5424 syslog, octet-counted (RFC 6587), over one kept-open TCP
    /// connection (`syslog://host:port`), or TLS (`syslog+tls://host:port`).
    Syslog {
        /// The host name or IP address (without brackets for IPv6).
        host: String,
        /// The port (always given in the URL).
        port: u16,
        /// Whether the connection is TLS.
        tls: bool,
    },
    /// Batches of newline-delimited JSON POSTed to this `http://` or
    /// `https://` URL (credentials in it are sent as basic authentication).
    Http {
        /// The URL, as given.
        url: Url,
    },
}

/// Why a drain URL was refused: one sentence that says what is accepted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct DrainUrlError {
    message: String,
}

impl DrainUrlError {
    fn new(message: impl Into<String>) -> DrainUrlError {
        DrainUrlError {
            message: message.into(),
        }
    }
}

const ACCEPTED: &str = "use syslog://host:port, syslog+tls://host:port, or an https:// (or http://) URL";

/// Checks a drain URL and says where its lines would go.
///
/// Accepted: `syslog://host:port` (TCP), `syslog+tls://host:port` (TLS) and
/// `https://...` or `http://...`. A syslog URL needs a host and a port, and
/// has no credentials, path, query or fragment. UDP, other schemes and URLs
/// without a host are refused. Error messages never repeat the URL (it may
/// hold credentials).
pub fn parse_drain_url(url: &str) -> Result<DrainTarget, DrainUrlError> {
    let parsed = Url::parse(url.trim()).map_err(|error| {
        DrainUrlError::new(format!("the drain URL is not a valid URL ({error}): {ACCEPTED}"))
    })?;
    match parsed.scheme() {
        scheme @ ("syslog" | "syslog+tls") => syslog(&parsed, scheme == "syslog+tls"),
        "http" | "https" => {
            if host(&parsed).is_none() {
                return Err(DrainUrlError::new(format!(
                    "the drain URL has no host: {ACCEPTED}"
                )));
            }
            if parsed.port() == Some(0) {
                return Err(DrainUrlError::new(format!(
                    "the drain URL's port cannot be 0: {ACCEPTED}"
                )));
            }
            Ok(DrainTarget::Http { url: parsed })
        }
        "udp" | "syslog+udp" | "syslog+udp4" | "syslog+udp6" => Err(DrainUrlError::new(
            "syslog over UDP is not supported (it loses lines silently): use syslog://host:port (TCP) or syslog+tls://host:port",
        )),
        other => Err(DrainUrlError::new(format!(
            "drain URLs with the scheme {other:?} are not supported: {ACCEPTED}"
        ))),
    }
}

fn syslog(url: &Url, tls: bool) -> Result<DrainTarget, DrainUrlError> {
    let scheme = url.scheme();
    let example = format!("{scheme}://logs.example.com:{}", if tls { 6514 } else { 514 });
    let Some(host) = host(url) else {
        return Err(DrainUrlError::new(format!(
            "a syslog drain URL needs a host and a port, as in {example}"
        )));
    };
    let Some(port) = url.port().filter(|port| *port != 0) else {
        return Err(DrainUrlError::new(format!(
            "a syslog drain URL needs a port, as in {example}"
        )));
    };
    if !url.username().is_empty() || url.password().is_some() {
        return Err(DrainUrlError::new(format!(
            "a syslog drain URL cannot hold a user name or password; use {scheme}://host:port"
        )));
    }
    if !matches!(url.path(), "" | "/") || url.query().is_some() || url.fragment().is_some() {
        return Err(DrainUrlError::new(format!(
            "a syslog drain URL has no path, query or fragment; use {scheme}://host:port"
        )));
    }
    Ok(DrainTarget::Syslog { host, port, tls })
}

/// The URL's host, IPv6 addresses without their brackets; `None` when
/// missing or empty.
fn host(url: &Url) -> Option<String> {
    match url.host()? {
        Host::Domain("") => None,
        Host::Domain(domain) => Some(domain.to_owned()),
        Host::Ipv4(address) => Some(address.to_string()),
        Host::Ipv6(address) => Some(address.to_string()),
    }
}

/// `host:port` for messages (IPv6 in brackets).
pub(super) fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// `host:port` of an HTTP URL, for messages (never its credentials or path).
pub(super) fn url_host_port(url: &Url) -> String {
    let host = host(url).unwrap_or_default();
    match url.port_or_known_default() {
        Some(port) => host_port(&host, port),
        None => host,
    }
}
