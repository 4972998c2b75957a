//! The lean HTTP/1.1 server path. Most requests a router sees are HTTP/1.1
//! without a body or an upgrade; those are parsed, routed and answered here,
//! on the connection's own task, without hyper's per-request dispatch (the
//! nginx model). The first request that is anything else (a body, an
//! upgrade, `Expect`, HTTP/1.0 or HTTP/2, a malformed or oversized head)
//! hands the connection, with every byte read so far, to hyper, which then
//! serves it to the end. Routing and forwarding are the same code either way
//! ([`proxy::route`]).

use std::cell::RefCell;
use std::future::{Future, poll_fn};
use std::io;
use std::io::Write as _;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context, Poll, ready};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bytes::{Buf, Bytes, BytesMut};
use http::header::{CONNECTION, CONTENT_LENGTH, DATE, EXPECT, TRANSFER_ENCODING, UPGRADE};
use http::{HeaderValue, Method, Response, StatusCode, Uri};
use hyper::body::Body;
use hyper::ext::ReasonPhrase;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tracing::debug;

use crate::body::RespBody;
use crate::drain::{ABORTING, DRAINING, Watch};
use crate::headers;
use crate::listener;
use crate::proxy::{self, ConnCtx};
use crate::raw::{self, HeadFields, MAX_HEADERS, Span, header_line};
use crate::timer::LazyTimer;

/// Response bytes gathered before they are written.
const WRITE_BATCH: usize = 64 * 1024;
/// Body chunks at least this large are written as they are, not copied.
const COPY_LIMIT: usize = 16 * 1024;
/// The response buffer a connection starts with, and the most it keeps
/// between requests: an idle keep-alive connection holds on to it.
const OUT_START: usize = 1024;
const OUT_KEEP: usize = 16 * 1024;
/// What a connection with nothing buffered reads into first (on the stack):
/// a typical request head. Only what arrives is then kept, so an idle
/// keep-alive connection does not hold a read buffer of full size.
const HEAD_SCRATCH: usize = 2048;
/// How long closing the connection cleanly may take.
const SHUTDOWN_LIMIT: std::time::Duration = std::time::Duration::from_secs(1);

/// Serves one HTTP/1.1 connection (plain, or TLS without ALPN `h2`).
pub(crate) async fn serve<I>(ctx: Arc<ConnCtx>, io: I, mut watch: Watch)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // The drain level as the connection's task last saw it; the lean loop
    // reads it between requests.
    let level = AtomicU8::new(0);
    let mut conn = LeanConn {
        ctx: &ctx,
        io,
        buf: BytesMut::new(),
        out: Vec::with_capacity(OUT_START),
        spans: Vec::new(),
        level: &level,
        idle_since: Instant::now(),
        timer: LazyTimer::default(),
    };
    let outcome = {
        let lean = conn.run();
        tokio::pin!(lean);
        poll_fn(|cx| {
            let now = watch.level(cx);
            if now >= ABORTING {
                return Poll::Ready(Outcome::Abort);
            }
            level.store(now, Ordering::Relaxed);
            lean.as_mut().poll(cx)
        })
        .await
    };
    match outcome {
        Outcome::Handoff => {
            let LeanConn { io, buf, .. } = conn;
            let io = Rewind {
                prefix: buf.freeze(),
                io,
            };
            listener::serve_http(Arc::clone(&ctx), io, watch).await;
        }
        // A clean end (FIN, or TLS close_notify), as hyper's; bounded, for
        // a peer that stopped reading.
        Outcome::Close => {
            let _ = tokio::time::timeout(SHUTDOWN_LIMIT, conn.io.shutdown()).await;
        }
        Outcome::Abort => {}
    }
}

enum Outcome {
    Close,
    /// Closed by the router's abort signal: dropped at once.
    Abort,
    /// Hyper takes over, starting with the unconsumed bytes in `buf`.
    Handoff,
}

struct LeanConn<'a, I> {
    ctx: &'a ConnCtx,
    io: I,
    /// Bytes read and not yet consumed (the next request's head).
    buf: BytesMut,
    /// The response being written, reused across requests.
    out: Vec<u8>,
    /// Where the request's headers are in its head, reused likewise.
    spans: Vec<(Span, Span)>,
    level: &'a AtomicU8,
    /// When the connection started waiting for the current request's head.
    idle_since: Instant,
    /// The header read deadline, and each request's upstream timeout.
    timer: LazyTimer,
}

/// A request the lean path serves, as parsed: no header map is built.
pub(crate) struct LeanRequest {
    pub(crate) method: Method,
    pub(crate) uri: Uri,
    /// The head's bytes (the request line too) and where its headers are.
    pub(crate) head: HeadFields,
    /// The client asked to close after this response.
    pub(crate) close: bool,
}

// Returned once per request; a box would be one more allocation each time.
#[allow(clippy::large_enum_variant)]
enum Next {
    Request(LeanRequest),
    Handoff,
    Close,
}

impl<I> LeanConn<'_, I>
where
    I: AsyncRead + AsyncWrite + Unpin,
{
    async fn run(&mut self) -> Outcome {
        loop {
            let request = match self.next_request().await {
                Next::Request(request) => request,
                Next::Handoff => return Outcome::Handoff,
                Next::Close => return Outcome::Close,
            };
            let response = proxy::route_lean(self.ctx, &request, &mut self.timer).await;
            let head_request = request.method == Method::HEAD;
            let close = request.close || self.level.load(Ordering::Relaxed) >= DRAINING;
            // The header positions' storage serves the next request.
            self.spans = request.head.headers;
            match self.write_response(response, head_request, close).await {
                Ok(true) if !close => {}
                Ok(_) => return Outcome::Close,
                Err(e) => {
                    debug!(client = %self.ctx.client, error = %e, "response not delivered");
                    return Outcome::Close;
                }
            }
        }
    }

    /// Reads until a whole request head is buffered, then decides who
    /// serves it.
    async fn next_request(&mut self) -> Next {
        self.idle_since = Instant::now();
        loop {
            if !self.buf.is_empty() {
                match parse_request(&mut self.buf, &mut self.spans) {
                    Parsed::Simple(request) => return Next::Request(request),
                    Parsed::Other => return Next::Handoff,
                    Parsed::Partial => {
                        if self.buf.len() >= self.ctx.inner.options.max_header_size {
                            // Hyper answers 431.
                            return Next::Handoff;
                        }
                    }
                }
            }
            match poll_fn(|cx| self.poll_read_more(cx)).await {
                Ok(0) => return Next::Close,
                Ok(_) => {}
                Err(e) => {
                    debug!(client = %self.ctx.client, error = %e, "connection closed while reading a request");
                    return Next::Close;
                }
            }
        }
    }

    /// Reads more of the next request; gives up at the header read deadline,
    /// or when draining with no request begun.
    fn poll_read_more(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if self.buf.is_empty() && self.level.load(Ordering::Relaxed) >= DRAINING {
            return Poll::Ready(Ok(0));
        }
        let read = if self.buf.is_empty() {
            poll_read_scratch(&mut self.io, &mut self.buf, cx)
        } else {
            raw::poll_read_into(&mut self.io, &mut self.buf, cx)
        };
        if let Poll::Ready(read) = read {
            return Poll::Ready(read);
        }
        ready!(self.poll_header_deadline(cx));
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "request head not received in time",
        )))
    }

    fn poll_header_deadline(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        match self
            .idle_since
            .checked_add(self.ctx.inner.options.header_read_timeout)
        {
            Some(deadline) => self.timer.poll_deadline(deadline.into(), cx),
            None => Poll::Pending,
        }
    }

    /// Writes the response; whether the connection can serve another
    /// request afterwards (the body was delivered whole).
    async fn write_response(
        &mut self,
        response: Response<RespBody>,
        head_request: bool,
        close: bool,
    ) -> io::Result<bool> {
        let (parts, body) = response.into_parts();
        let mut out = std::mem::take(&mut self.out);
        out.clear();
        let framing = encode_head(&mut out, &parts, &body, head_request, close);
        let delivered = match framing {
            Framing::None => {
                drop(body);
                self.io.write_all(&out).await?;
                true
            }
            Framing::Length(length) => self.write_body(&mut out, body, Some(length)).await?,
            Framing::Chunked => self.write_body(&mut out, body, None).await?,
        };
        self.io.flush().await?;
        if out.capacity() > OUT_KEEP {
            // A large response passed through: an idle connection does not
            // keep its buffer.
            out = Vec::with_capacity(OUT_START);
        }
        self.out = out;
        Ok(delivered)
    }

    /// Streams the body after the head in `out`: `length` bytes, or chunked
    /// when `None`. Small bodies that are ready at once go out in the same
    /// write as the head. The body is dropped (writing its access log entry)
    /// before the last bytes go out, so the entry exists once the client has
    /// the whole response.
    async fn write_body(
        &mut self,
        out: &mut Vec<u8>,
        mut body: RespBody,
        length: Option<u64>,
    ) -> io::Result<bool> {
        let mut sent = 0u64;
        loop {
            let frame = if out.is_empty() {
                poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await
            } else {
                match poll_fn(|cx| Poll::Ready(Pin::new(&mut body).poll_frame(cx))).await {
                    Poll::Ready(frame) => frame,
                    Poll::Pending => {
                        // Flushed too: under TLS, what waits for the next
                        // chunk must not wait in the session's buffer.
                        self.io.write_all(out).await?;
                        self.io.flush().await?;
                        out.clear();
                        continue;
                    }
                }
            };
            let data = match frame {
                None => break,
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => data,
                    // Trailers: HTTP/1.1 clients did not ask for them.
                    Err(_) => continue,
                },
                Some(Err(e)) => {
                    // The client sees a short body (or no last chunk) and the
                    // connection closes: it cannot be mistaken for a whole one.
                    debug!(client = %self.ctx.client, error = %e, "upstream body broke off");
                    drop(body);
                    self.io.write_all(out).await?;
                    return Ok(false);
                }
            };
            if data.is_empty() {
                continue;
            }
            let mut data = data;
            if let Some(length) = length {
                let room = length.saturating_sub(sent);
                if data.len() as u64 > room {
                    debug!(client = %self.ctx.client, "body longer than its content-length; cut off");
                    data.truncate(usize::try_from(room).unwrap_or(usize::MAX));
                    out.extend_from_slice(&data);
                    drop(body);
                    self.io.write_all(out).await?;
                    return Ok(false);
                }
            } else {
                write_chunk_size(out, data.len());
            }
            sent += data.len() as u64;
            if data.len() >= COPY_LIMIT {
                self.io.write_all(out).await?;
                out.clear();
                self.io.write_all(&data).await?;
                if length.is_none() {
                    out.extend_from_slice(b"\r\n");
                }
            } else {
                out.extend_from_slice(&data);
                if length.is_none() {
                    out.extend_from_slice(b"\r\n");
                }
            }
            if out.len() >= WRITE_BATCH {
                self.io.write_all(out).await?;
                out.clear();
            }
        }
        drop(body);
        let whole = match length {
            Some(length) => sent == length,
            None => {
                out.extend_from_slice(b"0\r\n\r\n");
                true
            }
        };
        self.io.write_all(out).await?;
        Ok(whole)
    }
}

/// Reads into a scratch buffer on the stack and keeps only what arrived:
/// `buf` grows to the size of the request head, not of a full read buffer.
fn poll_read_scratch<R: AsyncRead + Unpin>(
    io: &mut R,
    buf: &mut BytesMut,
    cx: &mut Context<'_>,
) -> Poll<io::Result<usize>> {
    let mut scratch = [MaybeUninit::<u8>::uninit(); HEAD_SCRATCH];
    let mut read = ReadBuf::uninit(&mut scratch);
    ready!(Pin::new(io).poll_read(cx, &mut read))?;
    buf.extend_from_slice(read.filled());
    Poll::Ready(Ok(read.filled().len()))
}

#[allow(clippy::large_enum_variant)]
enum Parsed {
    Simple(LeanRequest),
    /// Not for the lean path (or not valid HTTP/1.1): hyper decides.
    Other,
    Partial,
}

/// Parses the head at the start of `buf`; only a simple request is
/// consumed from it. `spans` is the storage for its header positions, kept
/// by the connection so a request does not allocate it; a simple request
/// takes it (and gives it back when done).
fn parse_request(buf: &mut BytesMut, spans: &mut Vec<(Span, Span)>) -> Parsed {
    let mut headers = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut []);
    let len = match request.parse_with_uninit_headers(buf, &mut headers) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(_) => return Parsed::Other,
    };
    let (Some(method), Some(path), Some(1)) = (request.method, request.path, request.version) else {
        return Parsed::Other;
    };
    if !path.starts_with('/') || method == "CONNECT" {
        return Parsed::Other;
    }
    let mut close = false;
    for header in request.headers.iter() {
        let name = header.name.as_bytes();
        if name.eq_ignore_ascii_case(TRANSFER_ENCODING.as_str().as_bytes())
            || name.eq_ignore_ascii_case(UPGRADE.as_str().as_bytes())
            || name.eq_ignore_ascii_case(EXPECT.as_str().as_bytes())
            || (name.eq_ignore_ascii_case(CONTENT_LENGTH.as_str().as_bytes()) && header.value != b"0")
        {
            return Parsed::Other;
        }
        if name.eq_ignore_ascii_case(CONNECTION.as_str().as_bytes()) {
            close |= headers::has_token([header.value], "close");
        }
    }
    let Ok(method) = Method::from_bytes(method.as_bytes()) else {
        return Parsed::Other;
    };
    // Byte ranges rather than slices, so `buf` can be split while they live.
    spans.clear();
    raw::header_spans(buf, request.headers, spans);
    let path_span = raw::span_of(buf, path.as_bytes());
    let head = HeadFields {
        bytes: buf.split_to(len).freeze(),
        headers: std::mem::take(spans),
    };
    let Ok(uri) = Uri::from_maybe_shared(head.bytes.slice(path_span.0..path_span.1)) else {
        // A target the parser took and `Uri` does not: hyper answers it,
        // from the bytes as they came.
        let mut whole = BytesMut::with_capacity(head.bytes.len() + buf.len());
        whole.extend_from_slice(&head.bytes);
        whole.extend_from_slice(buf);
        *buf = whole;
        *spans = head.headers;
        return Parsed::Other;
    };
    Parsed::Simple(LeanRequest {
        method,
        uri,
        head,
        close,
    })
}

/// How the response body is delimited on the wire.
enum Framing {
    None,
    Length(u64),
    Chunked,
}

/// Writes the status line and headers, choosing the body's framing the way
/// hyper's server does: a known length as `content-length`, else chunked.
/// An upstream head carried in the body is passed on as it came, less its
/// hop-by-hop headers.
fn encode_head(
    out: &mut Vec<u8>,
    parts: &http::response::Parts,
    body: &RespBody,
    head_request: bool,
    close: bool,
) -> Framing {
    let status = parts.status;
    let raw = body.raw_head();
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    let reason = match raw {
        Some(raw) => raw.custom_reason(status),
        None => parts.extensions.get::<ReasonPhrase>().map(ReasonPhrase::as_bytes),
    };
    out.extend_from_slice(
        reason
            .or_else(|| status.canonical_reason().map(str::as_bytes))
            .unwrap_or_default(),
    );
    out.extend_from_slice(b"\r\n");
    let declared: Option<&[u8]>;
    let has_date: bool;
    match raw {
        Some(raw) => {
            let mut length = None;
            let mut date = false;
            for (name, value) in headers::passed_on(raw.fields()) {
                if name.eq_ignore_ascii_case(CONTENT_LENGTH.as_str().as_bytes()) {
                    length.get_or_insert(value);
                } else {
                    date |= name.eq_ignore_ascii_case(DATE.as_str().as_bytes());
                    header_line(out, name, value);
                }
            }
            declared = length;
            has_date = date;
        }
        None => {
            for (name, value) in &parts.headers {
                if name != CONTENT_LENGTH && name != TRANSFER_ENCODING && name != CONNECTION {
                    header_line(out, name.as_str().as_bytes(), value.as_bytes());
                }
            }
            declared = parts.headers.get(CONTENT_LENGTH).map(HeaderValue::as_bytes);
            has_date = parts.headers.contains_key(DATE);
        }
    }
    let framing = if status.is_informational() || status == StatusCode::NO_CONTENT {
        Framing::None
    } else if head_request || status == StatusCode::NOT_MODIFIED {
        // The length of the body a GET would have had.
        if let Some(declared) = declared {
            header_line(out, b"content-length", declared);
        }
        Framing::None
    } else if let Some(length) = declared
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .or_else(|| body.is_end_stream().then_some(0))
        .or_else(|| body.size_hint().exact())
    {
        let _ = write!(out, "content-length: {length}\r\n");
        Framing::Length(length)
    } else {
        header_line(out, b"transfer-encoding", b"chunked");
        Framing::Chunked
    };
    if !has_date {
        with_http_date(|date| header_line(out, b"date", date));
    }
    if close {
        header_line(out, b"connection", b"close");
    }
    out.extend_from_slice(b"\r\n");
    framing
}

fn write_chunk_size(out: &mut Vec<u8>, size: usize) {
    let _ = write!(out, "{size:x}\r\n");
}

thread_local! {
    /// The `Date` header value, formatted once a second per thread.
    static HTTP_DATE: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
}

fn with_http_date(write: impl FnOnce(&[u8])) {
    let now = SystemTime::now();
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    HTTP_DATE.with(|cached| {
        let mut cached = cached.borrow_mut();
        if cached.0 != secs {
            *cached = (secs, httpdate::fmt_http_date(now));
        }
        write(cached.1.as_bytes());
    });
}

/// An I/O object that yields `prefix` before reading from `io`: how the
/// bytes the lean path already read reach hyper.
struct Rewind<I> {
    prefix: Bytes,
    io: I,
}

impl<I: AsyncRead + Unpin> AsyncRead for Rewind<I> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.prefix.has_remaining() {
            let take = this.prefix.len().min(buf.remaining());
            buf.put_slice(this.prefix.get(..take).unwrap_or_default());
            this.prefix.advance(take);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Rewind<I> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Parsed {
        parse_request(&mut BytesMut::from(text.as_bytes()), &mut Vec::new())
    }

    #[test]
    fn simple_requests_are_parsed_and_consumed() {
        let mut buf = BytesMut::from(
            &b"GET /a?b=1 HTTP/1.1\r\nHost: app.localhost\r\nX-Custom: v\r\nConnection: keep-alive, Close\r\n\r\nGET /next"[..],
        );
        let Parsed::Simple(simple) = parse_request(&mut buf, &mut Vec::new()) else {
            panic!("not simple");
        };
        assert_eq!(simple.method, Method::GET);
        assert_eq!(simple.uri, "/a?b=1");
        assert_eq!(simple.head.value("host").unwrap(), "app.localhost");
        assert_eq!(simple.head.value("x-custom").unwrap(), "v");
        assert!(simple.close);
        assert_eq!(&buf[..], b"GET /next");
    }

    #[test]
    fn anything_else_goes_to_hyper_untouched() {
        for text in [
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc",
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
            "PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n",
            "GET / HTTP/1.0\r\nHost: a\r\n\r\n",
            "GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n",
            "CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n",
            "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            "GET / HTTP/1.1\r\nBad Header: x\r\n\r\n",
        ] {
            let mut buf = BytesMut::from(text.as_bytes());
            assert!(
                matches!(parse_request(&mut buf, &mut Vec::new()), Parsed::Other),
                "{text:?}"
            );
            assert_eq!(&buf[..], text.as_bytes(), "consumed: {text:?}");
        }
        assert!(matches!(parse("GET / HTTP/1.1\r\nHost: a\r\n"), Parsed::Partial));
        assert!(matches!(
            parse("DELETE /x HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n"),
            Parsed::Simple(_)
        ));
    }

    #[test]
    fn a_target_uri_refuses_is_left_whole_for_hyper() {
        // httparse takes `<` in a target; `Uri` does not.
        let text = "GET /a<b HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\n";
        let mut buf = BytesMut::from(text.as_bytes());
        let mut spans = Vec::new();
        assert!(matches!(parse_request(&mut buf, &mut spans), Parsed::Other));
        assert_eq!(&buf[..], text.as_bytes());
    }

    #[test]
    fn chunk_sizes_and_dates_are_formatted() {
        let mut out = Vec::new();
        write_chunk_size(&mut out, 255);
        assert_eq!(out, b"ff\r\n");
        with_http_date(|date| {
            assert!(httpdate::parse_http_date(std::str::from_utf8(date).unwrap()).is_ok());
        });
    }
}
