//! The lean HTTP/1.1 upstream path for the common request: no request body,
//! no upgrade. The request is written and the response read by the
//! request's own task on a pooled socket, without hyper's client connection
//! task and the channels between it and the request.

use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker, ready};

use bytes::{Buf, Bytes, BytesMut};
use deis_uring::UringStream;
use http::header::{CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING};
use http::request::Parts;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Response, StatusCode, Version};
use hyper::body::{Frame, SizeHint};
use hyper::ext::ReasonPhrase;
use tokio::io::{AsyncRead, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::access_log::ProxyError;
use crate::headers;
use crate::pool::EndpointPool;
use crate::workers;

/// Most headers accepted in a request or response head (hyper's default).
pub(crate) const MAX_HEADERS: usize = 100;
/// Largest response head accepted (hyper's default read buffer limit).
const MAX_HEAD: usize = 8192 + 4096 * 100;
pub(crate) const READ_SIZE: usize = 8192;

/// An upstream socket, what was read from it but not yet used, and the
/// buffer requests are written from.
pub(crate) struct RawConn {
    stream: Upstream,
    buf: BytesMut,
    out: Vec<u8>,
}

/// The socket itself: on a worker with an io_uring, it goes through the
/// ring; elsewhere through tokio's reactor.
enum Upstream {
    Tokio(TcpStream),
    Uring(UringStream),
}

impl RawConn {
    /// A new connection, moved onto the calling worker's ring if it has
    /// one.
    pub(crate) fn new(stream: TcpStream) -> io::Result<RawConn> {
        let stream = match workers::ring() {
            Some(ring) => Upstream::Uring(UringStream::new(stream, &ring)?),
            None => Upstream::Tokio(stream),
        };
        Ok(RawConn {
            stream,
            buf: BytesMut::new(),
            out: Vec::new(),
        })
    }

    /// The socket, for a hyper client connection (only when nothing is
    /// buffered, as for an idle pooled socket). `None` for a socket on a
    /// ring, whose read is already waiting.
    pub(crate) fn into_stream(self) -> Option<TcpStream> {
        match self.stream {
            Upstream::Tokio(stream) => Some(stream),
            Upstream::Uring(_) => None,
        }
    }

    /// Whether an idle socket is still open and silent (the upstream has
    /// not closed it nor sent anything unasked).
    pub(crate) fn alive(&self) -> bool {
        let stream = match &self.stream {
            Upstream::Tokio(stream) => stream,
            // The read `watch` started would have completed.
            Upstream::Uring(stream) => return self.buf.is_empty() && stream.idle_and_open(),
        };
        // No readiness event since the last read drained the socket: nothing
        // arrived and no close was seen, known without a system call (the
        // way nginx keeps its idle upstream connections).
        let mut cx = Context::from_waker(Waker::noop());
        if stream.poll_read_ready(&mut cx).is_pending() {
            return true;
        }
        let mut probe = [0u8; 1];
        matches!(stream.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }

    /// Going idle in the pool: on a ring, a read starts, so that the
    /// upstream closing it is seen, as `alive` needs.
    pub(crate) fn watch(&self) {
        if let Upstream::Uring(stream) = &self.stream {
            stream.watch();
        }
    }

    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        // `AsyncRead` rather than `try_read`: a short read clears the
        // socket's readiness, so `alive` needs no probe next time.
        match &mut self.stream {
            Upstream::Tokio(stream) => poll_read_into(stream, &mut self.buf, cx),
            Upstream::Uring(stream) => poll_read_into(stream, &mut self.buf, cx),
        }
    }

    async fn fill(&mut self) -> io::Result<usize> {
        std::future::poll_fn(|cx| self.poll_fill(cx)).await
    }
}

/// Reads what is there into `buf`, growing it by [`READ_SIZE`] when less
/// than half of that is free (reusing its allocation once earlier reads
/// have been handed on and dropped).
pub(crate) fn poll_read_into<R: AsyncRead + Unpin>(
    io: &mut R,
    buf: &mut BytesMut,
    cx: &mut Context<'_>,
) -> Poll<io::Result<usize>> {
    if buf.capacity() - buf.len() < READ_SIZE / 2 {
        buf.reserve(READ_SIZE);
    }
    tokio_util::io::poll_read_buf(Pin::new(io), cx, buf)
}

/// Whether a request can take the lean path.
pub(crate) fn eligible(parts: &Parts, body_empty: bool, upgrade: bool) -> bool {
    body_empty && !upgrade && parts.uri.path_and_query().is_some()
}

/// A request head the lean upstream path can write: one with no body and
/// no upgrade, its forwarding headers decided.
pub(crate) trait UpstreamHead {
    fn method(&self) -> &Method;

    /// Appends the whole head to `out`, ending with the empty line.
    fn write_head(&self, out: &mut Vec<u8>);
}

/// A request hyper parsed, its headers already rewritten for the upstream.
impl UpstreamHead for Parts {
    fn method(&self) -> &Method {
        &self.method
    }

    fn write_head(&self, out: &mut Vec<u8>) {
        let path = self.uri.path_and_query().map_or("/", |p| p.as_str());
        request_line(out, &self.method, path.as_bytes());
        for (name, value) in &self.headers {
            header_line(out, name.as_str().as_bytes(), value.as_bytes());
        }
        out.extend_from_slice(b"\r\n");
    }
}

pub(crate) fn request_line(out: &mut Vec<u8>, method: &Method, target: &[u8]) {
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(target);
    out.extend_from_slice(b" HTTP/1.1\r\n");
}

pub(crate) fn header_line(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Writes the request head (the body is empty).
pub(crate) async fn send(conn: &mut RawConn, request: &impl UpstreamHead) -> io::Result<()> {
    let mut head = std::mem::take(&mut conn.out);
    head.clear();
    request.write_head(&mut head);
    let written = match &mut conn.stream {
        Upstream::Tokio(stream) => stream.write_all(&head).await,
        Upstream::Uring(stream) => stream.write_all(&head).await,
    };
    conn.out = head;
    written
}

/// How the response body is delimited.
#[derive(Clone, Copy, Debug)]
enum Framing {
    Length(u64),
    Chunked(Chunk),
    /// Until the upstream closes.
    Eof,
    Done,
}

#[derive(Clone, Copy, Debug)]
enum Chunk {
    /// Expecting a chunk-size line.
    Size,
    /// Inside a chunk's data.
    Data(u64),
    /// Expecting the CRLF after a chunk's data.
    DataEnd,
    /// Reading trailer lines after the last chunk.
    Trailers,
}

/// Reads the response head (skipping interim 1xx responses).
pub(crate) async fn read_head(
    conn: &mut RawConn,
    method: &Method,
) -> Result<(StatusCode, RawHead, RawFraming), ProxyError> {
    loop {
        let parsed = {
            let mut headers = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
            let mut response = httparse::Response::new(&mut []);
            match httparse::ParserConfig::default().parse_response_with_uninit_headers(
                &mut response,
                &conn.buf,
                &mut headers,
            ) {
                Ok(httparse::Status::Complete(len)) => Some(spans(&conn.buf, &response, len)?),
                Ok(httparse::Status::Partial) => None,
                Err(_) => return Err(ProxyError::BadResponse),
            }
        };
        let Some((status, version, headers, reason, len)) = parsed else {
            if conn.buf.len() >= MAX_HEAD {
                return Err(ProxyError::BadResponse);
            }
            match conn.fill().await {
                Ok(0) | Err(_) => return Err(ProxyError::UpstreamReset),
                Ok(_) => continue,
            }
        };
        let bytes = conn.buf.split_to(len).freeze();
        if status.is_informational() && status != StatusCode::SWITCHING_PROTOCOLS {
            continue;
        }
        if status == StatusCode::SWITCHING_PROTOCOLS {
            // Not asked for: the request did not want an upgrade.
            return Err(ProxyError::BadResponse);
        }
        let head = RawHead {
            fields: HeadFields { bytes, headers },
            reason,
        };
        let framing = framing(method, status, version, &head)?;
        return Ok((status, head, framing));
    }
}

pub(crate) type Span = (usize, usize);

/// The byte range of `part` within `base` (`part` borrowed from it).
pub(crate) fn span_of(base: &[u8], part: &[u8]) -> Span {
    let start = (part.as_ptr() as usize).wrapping_sub(base.as_ptr() as usize);
    (start, start + part.len())
}

/// Where each parsed header's name and value are within `base`, the buffer
/// they were parsed from, appended to `into`.
pub(crate) fn header_spans(base: &[u8], headers: &[httparse::Header<'_>], into: &mut Vec<(Span, Span)>) {
    into.extend(
        headers
            .iter()
            .map(|h| (span_of(base, h.name.as_bytes()), span_of(base, h.value))),
    );
}

/// A message head as received: its bytes, and the byte ranges of each
/// header's name and value in them (validated by the parser), so it can be
/// read and passed on without building a header map.
pub(crate) struct HeadFields {
    pub(crate) bytes: Bytes,
    pub(crate) headers: Vec<(Span, Span)>,
}

impl HeadFields {
    pub(crate) fn slice(&self, (start, end): Span) -> &[u8] {
        self.bytes.get(start..end).unwrap_or_default()
    }

    /// Names and values, in the order received.
    pub(crate) fn headers(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.headers
            .iter()
            .map(|&(name, value)| (self.slice(name), self.slice(value)))
    }

    /// The values of every header called `name` (lower case).
    pub(crate) fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> {
        self.headers()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v)
    }

    /// The first value of the header called `name`.
    pub(crate) fn value(&self, name: &str) -> Option<HeaderValue> {
        let &(_, value) = self
            .headers
            .iter()
            .find(|&&(n, _)| self.slice(n).eq_ignore_ascii_case(name.as_bytes()))?;
        self.shared(value).ok()
    }

    /// A value as a header value sharing the head's bytes.
    fn shared(&self, (start, end): Span) -> Result<HeaderValue, http::header::InvalidHeaderValue> {
        HeaderValue::from_maybe_shared(self.bytes.slice(start..end))
    }
}

/// A response head as the upstream sent it, with its reason phrase.
pub(crate) struct RawHead {
    fields: HeadFields,
    reason: Option<Span>,
}

impl RawHead {
    pub(crate) fn fields(&self) -> &HeadFields {
        &self.fields
    }

    /// The upstream's reason phrase when it is not the standard one for
    /// `status` (passed on, as hyper's client keeps it).
    pub(crate) fn custom_reason(&self, status: StatusCode) -> Option<&[u8]> {
        let reason = self.fields.slice(self.reason?);
        let standard = status.canonical_reason().map(str::as_bytes);
        (!reason.is_empty() && standard != Some(reason)).then_some(reason)
    }

    /// The response as a header map, for hyper to send (the version stays
    /// the router's own HTTP/1.1: the upstream's only decided the framing).
    pub(crate) fn to_response(&self, status: StatusCode) -> Result<Response<()>, ProxyError> {
        let fields = &self.fields;
        let mut map = HeaderMap::with_capacity(fields.headers.len());
        for &(name, value) in &fields.headers {
            let name = HeaderName::from_bytes(fields.slice(name)).map_err(|_| ProxyError::BadResponse)?;
            let value = fields.shared(value).map_err(|_| ProxyError::BadResponse)?;
            map.append(name, value);
        }
        let mut response = Response::new(());
        if let Some(reason) = self.custom_reason(status)
            && let Ok(reason) = ReasonPhrase::try_from(Bytes::copy_from_slice(reason))
        {
            response.extensions_mut().insert(reason);
        }
        *response.status_mut() = status;
        *response.headers_mut() = map;
        Ok(response)
    }
}

type Spans = (StatusCode, Version, Vec<(Span, Span)>, Option<Span>, usize);

/// A parsed response head as byte ranges into the read buffer, so the
/// buffer can be frozen once and sliced without copying.
fn spans(buf: &[u8], response: &httparse::Response<'_, '_>, len: usize) -> Result<Spans, ProxyError> {
    let status = response
        .code
        .and_then(|c| StatusCode::from_u16(c).ok())
        .ok_or(ProxyError::BadResponse)?;
    let version = match response.version {
        Some(0) => Version::HTTP_10,
        _ => Version::HTTP_11,
    };
    let mut headers = Vec::with_capacity(response.headers.len());
    header_spans(buf, response.headers, &mut headers);
    let reason = response.reason.map(|r| span_of(buf, r.as_bytes()));
    Ok((status, version, headers, reason, len))
}

/// The body's framing and whether the connection may be reused after it.
pub(crate) struct RawFraming {
    framing: Framing,
    keep_alive: bool,
}

fn framing(
    method: &Method,
    status: StatusCode,
    version: Version,
    head: &RawHead,
) -> Result<RawFraming, ProxyError> {
    let tokens = |name: HeaderName, token: &str| headers::has_token(head.fields.values(name.as_str()), token);
    let mut keep_alive = if version == Version::HTTP_10 {
        tokens(CONNECTION, "keep-alive")
    } else {
        !tokens(CONNECTION, "close")
    };
    let framing = if *method == Method::HEAD
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        Framing::Done
    } else if let Some(last) = head.fields.values(TRANSFER_ENCODING.as_str()).last() {
        let last_chunked = last
            .rsplit(|b| *b == b',')
            .next()
            .is_some_and(|t| t.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        if version == Version::HTTP_11 && last_chunked {
            Framing::Chunked(Chunk::Size)
        } else {
            keep_alive = false;
            Framing::Eof
        }
    } else if let Some(length) = content_length(head)? {
        match length {
            0 => Framing::Done,
            n => Framing::Length(n),
        }
    } else {
        keep_alive = false;
        Framing::Eof
    };
    Ok(RawFraming { framing, keep_alive })
}

/// The declared body length; repeated values must agree.
fn content_length(head: &RawHead) -> Result<Option<u64>, ProxyError> {
    let mut length = None;
    for value in head.fields.values(CONTENT_LENGTH.as_str()) {
        for part in value.split(|b| *b == b',') {
            let part = part.trim_ascii();
            if part.is_empty() || !part.iter().all(u8::is_ascii_digit) {
                return Err(ProxyError::BadResponse);
            }
            let n: u64 = std::str::from_utf8(part)
                .ok()
                .and_then(|p| p.parse().ok())
                .ok_or(ProxyError::BadResponse)?;
            if length.is_some_and(|l| l != n) {
                return Err(ProxyError::BadResponse);
            }
            length = Some(n);
        }
    }
    Ok(length)
}

/// The upstream response body, read from the socket as the client takes it;
/// the socket goes back to its pool at the end.
pub(crate) struct RawBody {
    conn: Option<(RawConn, Arc<EndpointPool>)>,
    framing: Framing,
    keep_alive: bool,
    /// The head, for the lean server path to pass on as it came.
    head: Option<RawHead>,
}

/// An upstream body that broke off.
#[derive(Debug, thiserror::Error)]
#[error("upstream body: {0}")]
pub(crate) struct BodyError(&'static str);

impl RawBody {
    pub(crate) fn new(
        conn: RawConn,
        pool: Arc<EndpointPool>,
        framing: RawFraming,
        head: Option<RawHead>,
    ) -> RawBody {
        RawBody {
            conn: Some((conn, pool)),
            framing: framing.framing,
            keep_alive: framing.keep_alive,
            head,
        }
    }

    pub(crate) fn head(&self) -> Option<&RawHead> {
        self.head.as_ref()
    }

    pub(crate) fn is_end_stream(&self) -> bool {
        matches!(self.framing, Framing::Done)
    }

    pub(crate) fn size_hint(&self) -> SizeHint {
        match self.framing {
            Framing::Done => SizeHint::with_exact(0),
            Framing::Length(n) => SizeHint::with_exact(n),
            _ => SizeHint::default(),
        }
    }

    /// Pools the socket when the body ended cleanly.
    pub(crate) fn release(&mut self) {
        if matches!(self.framing, Framing::Done)
            && self.keep_alive
            && let Some((conn, pool)) = self.conn.take()
            && conn.buf.is_empty()
        {
            pool.release_raw(conn);
        }
    }

    fn fail(&mut self, what: &'static str) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        self.conn = None;
        self.framing = Framing::Done;
        Poll::Ready(Some(Err(BodyError(what))))
    }

    pub(crate) fn poll_frame(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        loop {
            let Some((conn, _)) = self.conn.as_mut() else {
                return Poll::Ready(None);
            };
            match &mut self.framing {
                Framing::Done => {
                    self.release();
                    self.conn = None;
                    return Poll::Ready(None);
                }
                Framing::Length(remaining) => {
                    if !conn.buf.is_empty() {
                        let take = usize::try_from(*remaining)
                            .unwrap_or(usize::MAX)
                            .min(conn.buf.len());
                        let data = conn.buf.split_to(take).freeze();
                        *remaining -= take as u64;
                        if *remaining == 0 {
                            self.framing = Framing::Done;
                            self.release();
                        }
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                }
                Framing::Eof => {
                    if !conn.buf.is_empty() {
                        let data = conn.buf.split().freeze();
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                }
                Framing::Chunked(state) => match decode_chunk(&mut conn.buf, state) {
                    Ok(Decoded::Data(data)) => return Poll::Ready(Some(Ok(Frame::data(data)))),
                    Ok(Decoded::End) => {
                        self.framing = Framing::Done;
                        continue;
                    }
                    Ok(Decoded::NeedMore) => {}
                    Err(what) => return self.fail(what),
                },
            }
            // More bytes are needed.
            let Some((conn, _)) = self.conn.as_mut() else {
                return Poll::Ready(None);
            };
            if matches!(self.framing, Framing::Chunked(_)) && conn.buf.len() >= MAX_HEAD {
                return self.fail("chunk header too large");
            }
            match ready!(conn.poll_fill(cx)) {
                Ok(0) => {
                    if matches!(self.framing, Framing::Eof) {
                        self.framing = Framing::Done;
                        self.keep_alive = false;
                        self.conn = None;
                        return Poll::Ready(None);
                    }
                    return self.fail("connection closed before the body ended");
                }
                Ok(_) => {}
                Err(_) => return self.fail("read error"),
            }
        }
    }
}

enum Decoded {
    Data(Bytes),
    End,
    NeedMore,
}

/// One step of chunked decoding over the buffered bytes.
fn decode_chunk(buf: &mut BytesMut, state: &mut Chunk) -> Result<Decoded, &'static str> {
    loop {
        match *state {
            Chunk::Size => {
                let Some(line_end) = buf.windows(2).position(|w| w == b"\r\n") else {
                    return Ok(Decoded::NeedMore);
                };
                let line = buf.split_to(line_end + 2);
                let digits = line
                    .iter()
                    .take(line_end)
                    .take_while(|b| b.is_ascii_hexdigit())
                    .count();
                if digits == 0 || digits > 16 {
                    return Err("invalid chunk size");
                }
                let text = std::str::from_utf8(line.get(..digits).unwrap_or_default())
                    .map_err(|_| "invalid chunk size")?;
                let size = u64::from_str_radix(text, 16).map_err(|_| "invalid chunk size")?;
                let rest = line.get(digits..line_end).unwrap_or_default();
                if !rest.iter().all(|b| *b == b' ' || *b == b'\t')
                    && rest.iter().find(|b| **b != b' ' && **b != b'\t') != Some(&b';')
                {
                    return Err("invalid chunk size line");
                }
                *state = if size == 0 {
                    Chunk::Trailers
                } else {
                    Chunk::Data(size)
                };
            }
            Chunk::Data(remaining) => {
                if buf.is_empty() {
                    return Ok(Decoded::NeedMore);
                }
                let take = usize::try_from(remaining).unwrap_or(usize::MAX).min(buf.len());
                let data = buf.split_to(take).freeze();
                let left = remaining - take as u64;
                *state = if left == 0 {
                    Chunk::DataEnd
                } else {
                    Chunk::Data(left)
                };
                return Ok(Decoded::Data(data));
            }
            Chunk::DataEnd => {
                if buf.len() < 2 {
                    return Ok(Decoded::NeedMore);
                }
                if buf.get(..2) != Some(b"\r\n".as_slice()) {
                    return Err("missing CRLF after chunk");
                }
                buf.advance(2);
                *state = Chunk::Size;
            }
            Chunk::Trailers => {
                let Some(line_end) = buf.windows(2).position(|w| w == b"\r\n") else {
                    return Ok(Decoded::NeedMore);
                };
                buf.advance(line_end + 2);
                if line_end == 0 {
                    return Ok(Decoded::End);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(input: &[u8]) -> Result<(Vec<u8>, bool), &'static str> {
        let mut buf = BytesMut::from(input);
        let mut state = Chunk::Size;
        let mut out = Vec::new();
        loop {
            match decode_chunk(&mut buf, &mut state)? {
                Decoded::Data(d) => out.extend_from_slice(&d),
                Decoded::End => return Ok((out, true)),
                Decoded::NeedMore => return Ok((out, false)),
            }
        }
    }

    #[test]
    fn chunked_bodies_decode() {
        assert_eq!(
            decode_all(b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nx-trailer: 1\r\n\r\n").unwrap(),
            (b"hello world".to_vec(), true)
        );
        assert_eq!(decode_all(b"5\r\nhel").unwrap(), (b"hel".to_vec(), false));
        assert!(decode_all(b"zz\r\n").is_err());
        assert!(decode_all(b"1\r\nab\r\n").is_err());
    }
}
