//! Header rules of a proxy: hop-by-hop removal, forwarding headers, request ids.

use std::borrow::Cow;

use http::header::{CONNECTION, TE, TRAILER, TRANSFER_ENCODING, UPGRADE};
use http::{HeaderMap, HeaderName, HeaderValue};

use crate::raw::{self, HeadFields};

pub(crate) const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub(crate) const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub(crate) const X_FORWARDED_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");
pub(crate) const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

pub(crate) const HTTP: HeaderValue = HeaderValue::from_static("http");
pub(crate) const HTTPS: HeaderValue = HeaderValue::from_static("https");
const UPGRADE_TOKEN: HeaderValue = HeaderValue::from_static("upgrade");

/// Removes hop-by-hop headers (the fixed ones and those the `Connection`
/// header names). With `keep_upgrade`, `Upgrade` stays and `Connection` is
/// reduced to `upgrade`, for a WebSocket handshake.
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    // Usually there is nothing to remove: one scan instead of six lookups.
    if !keep_upgrade && !headers.keys().any(is_hop_by_hop) {
        return;
    }
    if let Some(first) = headers.get(CONNECTION) {
        // Common values name only headers removed below anyway.
        let simple = matches!(
            first.as_bytes(),
            b"keep-alive" | b"close" | b"Keep-Alive" | b"Close" | b"upgrade" | b"Upgrade"
        ) && headers.get_all(CONNECTION).iter().nth(1).is_none();
        if !simple {
            let named: Vec<HeaderName> =
                list_tokens(headers.get_all(CONNECTION).iter().map(HeaderValue::as_bytes))
                    .filter_map(|token| HeaderName::from_bytes(token).ok())
                    .filter(|name| !(keep_upgrade && name == UPGRADE))
                    .collect();
            for name in named {
                headers.remove(name);
            }
        }
        headers.remove(CONNECTION);
    }
    headers.remove(KEEP_ALIVE);
    headers.remove(PROXY_CONNECTION);
    headers.remove(TRANSFER_ENCODING);
    headers.remove(TE);
    headers.remove(TRAILER);
    if keep_upgrade {
        headers.insert(CONNECTION, UPGRADE_TOKEN);
    } else {
        headers.remove(UPGRADE);
    }
}

/// Headers that describe one hop and are never passed on (RFC 9110
/// §7.6.1, plus the framing header each hop writes for itself).
const HOP_BY_HOP: [HeaderName; 7] = [
    CONNECTION,
    TRANSFER_ENCODING,
    TE,
    TRAILER,
    UPGRADE,
    KEEP_ALIVE,
    PROXY_CONNECTION,
];

fn is_hop_by_hop(name: &HeaderName) -> bool {
    HOP_BY_HOP.contains(name)
}

/// [`is_hop_by_hop`] for a name as received, in any case.
pub(crate) fn is_hop_by_hop_raw(name: &[u8]) -> bool {
    HOP_BY_HOP
        .iter()
        .any(|hop| name.eq_ignore_ascii_case(hop.as_str().as_bytes()))
}

/// Whether an HTTP/1.1 request asks to switch to WebSocket.
pub(crate) fn wants_websocket(headers: &HeaderMap) -> bool {
    let values = |name| headers.get_all(name).into_iter().map(HeaderValue::as_bytes);
    has_token(values(CONNECTION), "upgrade") && has_token(values(UPGRADE), "websocket")
}

/// The elements of comma-separated header values (`Connection: a, b`),
/// trimmed, empty ones skipped.
pub(crate) fn list_tokens<'a>(values: impl IntoIterator<Item = &'a [u8]>) -> impl Iterator<Item = &'a [u8]> {
    values
        .into_iter()
        .flat_map(|v| v.split(|b| *b == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|t| !t.is_empty())
}

/// Whether any element of the values is `token`, in any case.
pub(crate) fn has_token<'a>(values: impl IntoIterator<Item = &'a [u8]>, token: &str) -> bool {
    list_tokens(values).any(|t| t.eq_ignore_ascii_case(token.as_bytes()))
}

/// The header names a `Connection` header lists as hop-by-hop (its values
/// given), less the connection options `close`, `keep-alive` and `upgrade`.
pub(crate) fn connection_named<'a>(
    values: impl IntoIterator<Item = &'a [u8]>,
) -> impl Iterator<Item = &'a [u8]> {
    list_tokens(values).filter(|t| {
        !t.eq_ignore_ascii_case(b"close")
            && !t.eq_ignore_ascii_case(b"keep-alive")
            && !t.eq_ignore_ascii_case(b"upgrade")
    })
}

/// The headers of a head as received that a proxy passes on: not
/// hop-by-hop, and not named by the head's `Connection` header.
pub(crate) fn passed_on(fields: &HeadFields) -> impl Iterator<Item = (&[u8], &[u8])> {
    let named_by_connection = |name: &[u8]| {
        connection_named(fields.values(CONNECTION.as_str())).any(|t| t.eq_ignore_ascii_case(name))
    };
    // Usually `Connection` names no header: one scan instead of one a header.
    let any_named = connection_named(fields.values(CONNECTION.as_str()))
        .next()
        .is_some();
    fields
        .headers()
        .filter(move |(name, _)| !(is_hop_by_hop_raw(name) || (any_named && named_by_connection(name))))
}

/// Appends the client's address to `X-Forwarded-For` (joining repeated
/// headers into one list).
pub(crate) fn append_forwarded_for(headers: &mut HeaderMap, client: &HeaderValue) {
    let mut existing = headers.get_all(X_FORWARDED_FOR).iter();
    let Some(first) = existing.next() else {
        headers.insert(X_FORWARDED_FOR, client.clone());
        return;
    };
    let mut joined = Vec::with_capacity(first.len() + client.len() + 2);
    joined.extend_from_slice(first.as_bytes());
    for more in existing {
        joined.extend_from_slice(b", ");
        joined.extend_from_slice(more.as_bytes());
    }
    joined.extend_from_slice(b", ");
    joined.extend_from_slice(client.as_bytes());
    match HeaderValue::from_bytes(&joined) {
        Ok(value) => {
            headers.insert(X_FORWARDED_FOR, value);
        }
        Err(_) => {
            headers.insert(X_FORWARDED_FOR, client.clone());
        }
    }
}

/// Heroku's rule for keeping a client's request id: 20 to 200 characters of
/// `[A-Za-z0-9+=/_-]`.
pub(crate) fn valid_request_id(value: &[u8]) -> bool {
    (20..=200).contains(&value.len())
        && value
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'=' | b'/' | b'_' | b'-'))
}

/// A fresh UUID v4 request id, as text.
pub(crate) fn request_id() -> [u8; uuid::fmt::Hyphenated::LENGTH] {
    // One draw for all 16 bytes (an array of bytes would be drawn a byte at
    // a time).
    let id = uuid::Builder::from_random_bytes(rand::random::<u128>().to_ne_bytes()).into_uuid();
    let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
    id.hyphenated().encode_lower(&mut text);
    text
}

/// [`request_id`] as a header value.
pub(crate) fn new_request_id() -> HeaderValue {
    HeaderValue::from_bytes(&request_id())
        .unwrap_or(HeaderValue::from_static("00000000-0000-4000-8000-000000000000"))
}

/// What the router adds to a request it forwards.
pub(crate) struct Forwarding<'a> {
    /// The client's address, appended to `X-Forwarded-For`.
    pub(crate) client_ip: &'a [u8],
    /// `X-Forwarded-Proto` and `X-Forwarded-Port`, replacing the client's.
    pub(crate) proto: &'a [u8],
    pub(crate) port: &'a [u8],
    /// A new request id, replacing any the client sent; `None` keeps the
    /// client's.
    pub(crate) fresh_id: Option<&'a [u8]>,
}

/// Writes a request's headers, as received, for the upstream: the rules
/// [`strip_hop_by_hop`] and [`append_forwarded_for`] apply to a header map,
/// without building one. Hop-by-hop headers and those `Connection` names
/// are dropped, `X-Forwarded-For` is joined into one list with the client
/// appended, and the forwarding headers of `forwarding` are set.
pub(crate) fn write_forwarded(out: &mut Vec<u8>, fields: &HeadFields, forwarding: &Forwarding<'_>) {
    let mut forwarded_for = false;
    for (name, value) in passed_on(fields) {
        if name.eq_ignore_ascii_case(X_FORWARDED_FOR.as_str().as_bytes()) {
            forwarded_for = true;
        } else if !(name.eq_ignore_ascii_case(X_FORWARDED_PROTO.as_str().as_bytes())
            || name.eq_ignore_ascii_case(X_FORWARDED_PORT.as_str().as_bytes())
            || (forwarding.fresh_id.is_some() && name.eq_ignore_ascii_case(X_REQUEST_ID.as_str().as_bytes())))
        {
            raw::header_line(out, name, value);
        }
    }
    out.extend_from_slice(X_FORWARDED_FOR.as_str().as_bytes());
    out.extend_from_slice(b": ");
    if forwarded_for {
        for (name, value) in passed_on(fields) {
            if name.eq_ignore_ascii_case(X_FORWARDED_FOR.as_str().as_bytes()) {
                out.extend_from_slice(value);
                out.extend_from_slice(b", ");
            }
        }
    }
    out.extend_from_slice(forwarding.client_ip);
    out.extend_from_slice(b"\r\n");
    raw::header_line(out, X_FORWARDED_PROTO.as_str().as_bytes(), forwarding.proto);
    raw::header_line(out, X_FORWARDED_PORT.as_str().as_bytes(), forwarding.port);
    if let Some(id) = forwarding.fresh_id {
        raw::header_line(out, X_REQUEST_ID.as_str().as_bytes(), id);
    }
}

/// The host part of a Host header or authority: userinfo and port removed,
/// IPv6 brackets kept.
pub(crate) fn host_without_port(raw: &str) -> &str {
    let host = match raw.rfind('@') {
        Some(at) => raw.get(at + 1..).unwrap_or(raw),
        None => raw,
    };
    if host.starts_with('[') {
        return match host.find(']') {
            Some(end) => host.get(..=end).unwrap_or(host),
            None => host,
        };
    }
    match host.rfind(':') {
        Some(colon)
            if host
                .get(colon + 1..)
                .is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit())) =>
        {
            host.get(..colon).unwrap_or(host)
        }
        _ => host,
    }
}

/// Lower-cases a host for matching, allocating only when it has capitals.
pub(crate) fn lowercase(host: &str) -> Cow<'_, str> {
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(host.to_ascii_lowercase())
    } else {
        Cow::Borrowed(host)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_and_userinfo_are_stripped() {
        assert_eq!(host_without_port("example.com:8080"), "example.com");
        assert_eq!(host_without_port("example.com"), "example.com");
        assert_eq!(host_without_port("[::1]:80"), "[::1]");
        assert_eq!(host_without_port("[::1"), "[::1");
        assert_eq!(host_without_port("u:p@example.com:1"), "example.com");
        assert_eq!(host_without_port("example.com:abc"), "example.com:abc");
        assert_eq!(host_without_port(""), "");
        assert_eq!(host_without_port(":"), "");
    }

    #[test]
    fn request_id_rule() {
        assert!(valid_request_id(b"abcdefghij0123456789"));
        assert!(!valid_request_id(b"short"));
        assert!(!valid_request_id(b"abcdefghij0123456789 with space"));
        assert!(valid_request_id(new_request_id().as_bytes()));
        assert_ne!(new_request_id(), new_request_id());
        let id = request_id();
        assert_eq!(
            id[14],
            b'4',
            "a version 4 UUID: {:?}",
            String::from_utf8_lossy(&id)
        );
    }

    #[test]
    fn hop_by_hop_removed_including_connection_named() {
        let mut h = HeaderMap::new();
        h.insert(CONNECTION, HeaderValue::from_static("close, x-secret"));
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(TE, HeaderValue::from_static("trailers"));
        h.insert(UPGRADE, HeaderValue::from_static("h2c"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h, false);
        assert_eq!(h.len(), 1, "{h:?}");
        assert!(h.contains_key("x-kept"));
    }

    #[test]
    fn list_tokens_are_trimmed_and_matched_in_any_case() {
        let values: [&[u8]; 2] = [b" keep-alive ,, Upgrade", b"x-a,"];
        assert_eq!(
            list_tokens(values).collect::<Vec<_>>(),
            [&b"keep-alive"[..], b"Upgrade", b"x-a"]
        );
        assert!(has_token(values, "upgrade"));
        assert!(!has_token(values, "close"));
    }

    #[test]
    fn websocket_keeps_upgrade() {
        let mut h = HeaderMap::new();
        h.insert(CONNECTION, HeaderValue::from_static("keep-alive, Upgrade"));
        h.insert(UPGRADE, HeaderValue::from_static("websocket"));
        assert!(wants_websocket(&h));
        strip_hop_by_hop(&mut h, true);
        assert_eq!(h.get(CONNECTION).unwrap(), "upgrade");
        assert_eq!(h.get(UPGRADE).unwrap(), "websocket");
    }

    #[test]
    fn forwarded_for_appends() {
        let client = HeaderValue::from_static("127.0.0.1");
        let mut h = HeaderMap::new();
        append_forwarded_for(&mut h, &client);
        assert_eq!(h.get(X_FORWARDED_FOR).unwrap(), "127.0.0.1");
        let mut h = HeaderMap::new();
        h.append(X_FORWARDED_FOR, HeaderValue::from_static("1.1.1.1"));
        h.append(X_FORWARDED_FOR, HeaderValue::from_static("2.2.2.2"));
        append_forwarded_for(&mut h, &client);
        assert_eq!(h.get(X_FORWARDED_FOR).unwrap(), "1.1.1.1, 2.2.2.2, 127.0.0.1");
        assert_eq!(h.get_all(X_FORWARDED_FOR).iter().count(), 1);
    }
}
