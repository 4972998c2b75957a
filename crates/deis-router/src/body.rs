//! The response body the router sends: a local reply or the upstream's body
//! streamed through. It counts bytes, returns the upstream connection to its
//! pool when the body has been read to the end, and writes the access log
//! entry when dropped.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};

use crate::access_log::{AccessEntry, AccessLog};
use crate::pool::{EndpointPool, Sender};
use crate::raw::RawBody;

/// The entry being built for one request, written when its body is dropped.
/// `None` when the access log is disabled.
pub(crate) type Log = Option<Box<PendingLog>>;

pub(crate) struct PendingLog {
    pub(crate) sink: Arc<dyn AccessLog>,
    pub(crate) start: Instant,
    pub(crate) entry: AccessEntry,
}

pub(crate) enum Kind {
    Empty,
    Full(Option<Bytes>),
    /// `conn`: the connection to pool once the body has ended (`None`
    /// when it must not be reused).
    Upstream {
        body: Incoming,
        conn: Option<(Sender, Arc<EndpointPool>)>,
    },
    /// The upstream's body on the lean path.
    Raw(RawBody),
}

/// Why a response body broke off.
pub(crate) type BodyError = Box<dyn std::error::Error + Send + Sync>;

pub(crate) struct RespBody {
    kind: Kind,
    /// Boxed: it is large and the body is moved several times.
    log: Log,
    bytes: u64,
}

impl RespBody {
    pub(crate) fn new(kind: Kind, log: Log) -> RespBody {
        RespBody { kind, log, bytes: 0 }
    }

    fn release(&mut self) {
        match &mut self.kind {
            Kind::Upstream { conn, .. } => {
                if let Some((sender, pool)) = conn.take() {
                    pool.release(sender);
                }
            }
            Kind::Raw(body) => body.release(),
            Kind::Empty | Kind::Full(_) => {}
        }
    }
}

impl Body for RespBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        match &mut this.kind {
            Kind::Empty => Poll::Ready(None),
            Kind::Full(data) => Poll::Ready(data.take().map(|data| {
                this.bytes += data.len() as u64;
                Ok(Frame::data(data))
            })),
            Kind::Upstream { body, conn } => {
                match Pin::new(body).poll_frame(cx) {
                    Poll::Ready(Some(Ok(frame))) => {
                        if let Some(data) = frame.data_ref() {
                            this.bytes += data.len() as u64;
                        }
                        Poll::Ready(Some(Ok(frame)))
                    }
                    Poll::Ready(None) => {
                        this.release();
                        Poll::Ready(None)
                    }
                    Poll::Ready(Some(Err(e))) => {
                        // The connection is broken: never pool it.
                        conn.take();
                        Poll::Ready(Some(Err(e.into())))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
            Kind::Raw(body) => match body.poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    if let Some(data) = frame.data_ref() {
                        this.bytes += data.len() as u64;
                    }
                    Poll::Ready(Some(Ok(frame)))
                }
                Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
                Poll::Ready(None) => Poll::Ready(None),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Empty => true,
            Kind::Full(data) => data.is_none(),
            Kind::Upstream { body, .. } => body.is_end_stream(),
            Kind::Raw(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Empty => SizeHint::with_exact(0),
            Kind::Full(data) => SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64)),
            Kind::Upstream { body, .. } => body.size_hint(),
            Kind::Raw(body) => body.size_hint(),
        }
    }
}

impl Drop for RespBody {
    fn drop(&mut self) {
        // A body hyper never polled because it was known to be empty
        // (HEAD, 204, 304) still leaves its connection reusable.
        let ended = match &self.kind {
            Kind::Upstream { body, .. } => body.is_end_stream(),
            Kind::Raw(body) => body.is_end_stream(),
            Kind::Empty | Kind::Full(_) => false,
        };
        if ended {
            self.release();
        }
        if let Some(mut log) = self.log.take() {
            log.entry.bytes_sent = self.bytes;
            log.entry.total = log.start.elapsed();
            log.sink.log(&log.entry);
        }
    }
}
