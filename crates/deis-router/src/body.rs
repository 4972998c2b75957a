//! The response body the router sends: a local reply or the upstream's body
//! streamed through. It counts bytes, returns the upstream connection to its
//! pool when the body has been read to the end, and writes the access log
//! entry and the virtual host's metrics when dropped.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};

use crate::access_log::{AccessEntry, AccessLog};
use crate::metrics::VhostStats;
use crate::pool::{EndpointPool, Sender};
use crate::raw::{RawBody, RawHead};

/// What is recorded about one request when its body is dropped.
pub(crate) struct Log {
    /// The access log entry being built; `None` when the access log is
    /// disabled.
    pub(crate) access: Option<Box<PendingLog>>,
    /// The matched virtual host's metrics (`None`: no virtual host matched).
    pub(crate) stats: Option<Arc<VhostStats>>,
    pub(crate) start: Instant,
    /// The status sent.
    pub(crate) status: u16,
}

pub(crate) struct PendingLog {
    pub(crate) sink: Arc<dyn AccessLog>,
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
    log: Log,
    bytes: u64,
}

impl RespBody {
    pub(crate) fn new(kind: Kind, log: Log) -> RespBody {
        RespBody { kind, log, bytes: 0 }
    }

    /// The upstream's response head as received, when the response's
    /// headers were left in it (the lean server path).
    pub(crate) fn raw_head(&self) -> Option<&RawHead> {
        match &self.kind {
            Kind::Raw(body) => body.head(),
            _ => None,
        }
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
        let log = &mut self.log;
        if log.stats.is_none() && log.access.is_none() {
            return;
        }
        let total = log.start.elapsed();
        if let Some(stats) = &log.stats {
            stats.record(log.status, total);
        }
        if let Some(mut pending) = log.access.take() {
            pending.entry.status = log.status;
            pending.entry.bytes_sent = self.bytes;
            pending.entry.total = total;
            pending.sink.log(&pending.entry);
        }
    }
}
