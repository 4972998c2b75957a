//! The Fluentd Forward protocol listener: Fluentd's `out_forward`, Fluent
//! Bit's `forward` output and the fluent-logger libraries send log records
//! here over TCP, and every record becomes a
//! [`LogLine`](deis_scheduler::LogLine) handed to a [`LogSink`].
//!
//! [`serve`] takes a bound listener and spawns the accept loop; the returned
//! [`ForwardServer`] tells the address, counts records and stops the server.
//!
//! # Protocol
//!
//! [Forward protocol v1] over TCP, every event mode:
//!
//! - Message: `[tag, time, record, option?]`
//! - Forward: `[tag, [[time, record], ...], option?]`
//! - PackedForward: `[tag, entries, option?]`, the entries being
//!   concatenated MessagePack `[time, record]` arrays in a bin or (as real
//!   Fluentd sends them) a str;
//! - CompressedPackedForward: the same with option `compressed: "gzip"`,
//!   the entries gzipped (one or more concatenated members).
//!
//! A time is integer seconds, float seconds, or an EventTime (ext type 0:
//! big-endian u32 seconds, u32 nanoseconds); in entries it may also be
//! `[time, metadata]`, as Fluent Bit 2 and later send it. Frames whose
//! option `fluent_signal` (Fluent Bit) is not 0 carry metrics or traces:
//! they are acknowledged and skipped. When the option map has a
//! `chunk`, the server answers `{"ack": chunk}`, echoing the chunk exactly as
//! sent, once every record of the frame is in the sink. Handshakes
//! (`HELO`/`PING`/`PONG`, shared-key authentication), JSON frames and the UDP
//! heartbeat are not supported.
//!
//! Frames are decoded in place (records are not turned into value trees),
//! from a buffer that collects the stream: a frame may arrive split across
//! many reads, and several frames in one read. A frame is checked whole
//! before any of its records reaches the sink: a malformed frame delivers
//! nothing.
//!
//! # Robustness
//!
//! A frame that is not Forward, is larger than
//! [`ForwardOptions::max_frame_bytes`] (compressed, or once inflated), or is
//! cut short by the peer closing the connection gets a warning naming the
//! peer and the reason, and its connection is closed (counted in
//! [`ForwardStats::refused_connections`]); other connections carry on. A
//! connection quiet for [`ForwardOptions::idle_timeout`] is closed. At most
//! [`ForwardOptions::max_connections`] are served at once; more wait in the
//! listen backlog.
//!
//! # From a record to a line
//!
//! Records are maps whose keys and values may be str or bin. Each field of
//! the line is taken from the first of these that has it:
//!
//! - **app**: the record's `app`; the `kubernetes.labels.app` added by
//!   Fluent Bit's and Fluentd's kubernetes filters; `kubernetes.namespace_name`;
//!   the namespace in a Fluent Bit tail tag for a container log file,
//!   `kube.var.log.containers.<pod>_<namespace>_<container>-<64 hex>.log`.
//!   A record with none is not delivered: it is counted in
//!   [`ForwardStats::unattributed`], with a warning at most every
//!   [`UNATTRIBUTED_WARNING_INTERVAL`].
//! - **process**: the record's `process` (`web.1`); for a pod (from
//!   `kubernetes.pod_name`, else the tail tag), `<type>.<instance>`, the
//!   instance being the pod name's last `-` segment and the type the pod's
//!   `type` label, else the type in a Deployment's pod name
//!   `<app>-<type>-<hash>-<suffix>` (pod `myapp-web-5d9f8c7b6-x7k2p` →
//!   `web.x7k2p`), else the container name less an `<app>-` prefix, else
//!   `app`; else the tag's last `.` segment; else `app`.
//! - **source**: the record's `source`: `router` or `deis` ([`LogSource`](deis_scheduler::LogSource));
//!   anything else, or none, is `app`.
//! - **text**: the record's `log`, else `message`, else `msg` (else empty),
//!   with one trailing `\n` or `\r\n` removed; invalid UTF-8 is replaced.
//! - **release**: the record's `release`, else empty.
//! - **time**: the event's time.
//!
//! Empty strings count as missing for app and process.
//!
//! [Forward protocol v1]: https://github.com/fluent/fluentd/wiki/Forward-Protocol-Specification-v1

mod attribution;
mod decode;
mod msgpack;

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use deis_core::accept::AcceptBackoff;
use deis_scheduler::LogSink;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::{JoinHandle, JoinSet};

use decode::{FrameError, decode_frame};
use msgpack::{FrameScanner, Scan};

/// At most one warning about records without an app per this interval.
pub const UNATTRIBUTED_WARNING_INTERVAL: Duration = Duration::from_secs(60);

/// Bytes read at a time, and the smallest buffer growth.
const READ_CHUNK: usize = 64 * 1024;

/// Buffers larger than this are given back once empty.
const KEEP_BUFFER: usize = 1024 * 1024;

/// How the listener treats its peers.
#[derive(Clone, Debug)]
pub struct ForwardOptions {
    /// The largest frame accepted, in bytes, both as received and, for
    /// compressed entries, once inflated (16 MiB by default).
    pub max_frame_bytes: usize,
    /// A connection that sends nothing for this long is closed (5 minutes by
    /// default).
    pub idle_timeout: Duration,
    /// Connections served at once (4096 by default); more wait in the
    /// listen backlog until one closes, so clients cannot take every file
    /// descriptor of the process.
    pub max_connections: usize,
}

impl Default for ForwardOptions {
    fn default() -> Self {
        ForwardOptions {
            max_frame_bytes: 16 * 1024 * 1024,
            idle_timeout: Duration::from_secs(5 * 60),
            max_connections: 4096,
        }
    }
}

/// What the listener has done since it started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ForwardStats {
    /// Connections accepted.
    pub connections: u64,
    /// Records handed to the sink.
    pub records: u64,
    /// Records dropped because no app could be found for them.
    pub unattributed: u64,
    /// Connections closed because of a protocol error: a malformed,
    /// oversized or unfinished frame.
    pub refused_connections: u64,
}

/// A running listener. Dropping it stops the server, as
/// [`ForwardServer::shutdown`] does without waiting.
#[derive(Debug)]
pub struct ForwardServer {
    local_addr: SocketAddr,
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl ForwardServer {
    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Its counters.
    pub fn stats(&self) -> ForwardStats {
        ForwardStats {
            connections: self.shared.connections.load(Ordering::Relaxed),
            records: self.shared.records.load(Ordering::Relaxed),
            unattributed: self.shared.unattributed.load(Ordering::Relaxed),
            refused_connections: self.shared.refused.load(Ordering::Relaxed),
        }
    }

    /// Stops accepting, closes every connection (a frame being delivered is
    /// finished first) and waits for them.
    pub async fn shutdown(mut self) {
        self.stop.send_replace(true);
        if let Some(task) = self.task.take()
            && let Err(e) = task.await
        {
            tracing::warn!(error = %e, "Forward listener task failed");
        }
    }
}

impl Drop for ForwardServer {
    fn drop(&mut self) {
        self.stop.send_replace(true);
    }
}

/// Serves the Forward protocol on `listener`, handing every record to
/// `sink`, until the returned handle is shut down or dropped. Fails only if
/// the listener's address cannot be read.
pub async fn serve(
    listener: TcpListener,
    sink: Arc<dyn LogSink>,
    options: ForwardOptions,
) -> io::Result<ForwardServer> {
    let local_addr = listener.local_addr()?;
    let shared = Arc::new(Shared {
        sink,
        options,
        connections: AtomicU64::new(0),
        records: AtomicU64::new(0),
        unattributed: AtomicU64::new(0),
        refused: AtomicU64::new(0),
        last_unattributed_warning: Mutex::new(None),
    });
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(accept_loop(listener, shared.clone(), stopped));
    tracing::info!(%local_addr, "Forward listener started");
    Ok(ForwardServer {
        local_addr,
        shared,
        stop,
        task: Some(task),
    })
}

struct Shared {
    sink: Arc<dyn LogSink>,
    options: ForwardOptions,
    connections: AtomicU64,
    records: AtomicU64,
    unattributed: AtomicU64,
    refused: AtomicU64,
    last_unattributed_warning: Mutex<Option<Instant>>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Shared {
    fn unattributed(&self, peer: SocketAddr, tag: &str, count: u64) {
        let total = self.unattributed.fetch_add(count, Ordering::Relaxed) + count;
        let mut last = self
            .last_unattributed_warning
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if last.is_none_or(|at| at.elapsed() >= UNATTRIBUTED_WARNING_INTERVAL) {
            *last = Some(Instant::now());
            drop(last);
            tracing::warn!(
                %peer,
                tag,
                dropped = count,
                total,
                "Forward: dropped records with no app (no `app` field, no kubernetes metadata, \
                 no container log tag); the next such warning comes {}s later at the earliest",
                UNATTRIBUTED_WARNING_INTERVAL.as_secs()
            );
        }
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, mut stopped: watch::Receiver<bool>) {
    let slots = Arc::new(Semaphore::new(
        shared.options.max_connections.clamp(1, Semaphore::MAX_PERMITS),
    ));
    // Taken before accepting, so connections beyond the limit wait in the
    // kernel's backlog rather than hold a descriptor here.
    let mut slot = None;
    let mut backoff = AcceptBackoff::default();
    let mut connections = JoinSet::new();
    loop {
        if *stopped.borrow_and_update() {
            break;
        }
        tokio::select! {
            // Also fires when the handle is gone.
            _ = stopped.changed() => {}
            permit = Arc::clone(&slots).acquire_owned(), if slot.is_none() => slot = permit.ok(),
            accepted = listener.accept(), if slot.is_some() => match accepted {
                Ok((stream, peer)) => {
                    backoff.succeeded();
                    shared.connections.fetch_add(1, Ordering::Relaxed);
                    let slot = slot.take();
                    connections.spawn(connection(stream, peer, shared.clone(), stopped.clone(), slot));
                }
                Err(error) => {
                    let pause = backoff.failed();
                    tracing::warn!(%error, retry_in = ?pause, "Forward: cannot accept a connection");
                    // A stop during the pause ends it at once.
                    tokio::select! {
                        _ = tokio::time::sleep(pause) => {}
                        _ = stopped.changed() => {}
                    }
                }
            },
            Some(joined) = connections.join_next(), if !connections.is_empty() => {
                if let Err(e) = joined {
                    tracing::warn!(error = %e, "Forward: a connection task failed");
                }
            }
        }
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
}

/// How a connection ended other than by the peer closing it cleanly.
#[derive(Debug, thiserror::Error)]
enum ConnectionError {
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error("idle for {0:?}")]
    Idle(Duration),
    #[error(transparent)]
    Io(#[from] io::Error),
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    stopped: watch::Receiver<bool>,
    _slot: Option<OwnedSemaphorePermit>,
) {
    tracing::debug!(%peer, "Forward connection");
    let _ = stream.set_nodelay(true);
    match Connection::new(stream, peer, &shared).run(stopped).await {
        Ok(()) => tracing::debug!(%peer, "Forward connection closed"),
        Err(ConnectionError::Frame(e)) => {
            shared.refused.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(%peer, reason = %e, "Forward: closing the connection");
        }
        Err(e @ ConnectionError::Idle(_)) => {
            tracing::debug!(%peer, reason = %e, "Forward: closing the connection");
        }
        Err(ConnectionError::Io(e)) => {
            tracing::info!(%peer, error = %e, "Forward: connection failed");
        }
    }
}

struct Connection<'s> {
    stream: TcpStream,
    peer: SocketAddr,
    shared: &'s Shared,
    /// Bytes received and not yet decoded.
    buf: BytesMut,
    scanner: FrameScanner,
    /// Inflated entries.
    scratch: Vec<u8>,
    ack: Vec<u8>,
}

impl<'s> Connection<'s> {
    fn new(stream: TcpStream, peer: SocketAddr, shared: &'s Shared) -> Self {
        Connection {
            stream,
            peer,
            shared,
            buf: BytesMut::with_capacity(READ_CHUNK),
            scanner: FrameScanner::default(),
            scratch: Vec::new(),
            ack: Vec::new(),
        }
    }

    async fn run(mut self, mut stopped: watch::Receiver<bool>) -> Result<(), ConnectionError> {
        let max = self.shared.options.max_frame_bytes;
        let idle = self.shared.options.idle_timeout;
        if *stopped.borrow_and_update() {
            return Ok(());
        }
        loop {
            let needed = loop {
                match self.scanner.scan(&self.buf, max)? {
                    Scan::Complete(len) => self.frame(len).await?,
                    Scan::Incomplete(needed) => break needed,
                }
            };
            if self.buf.is_empty() && self.buf.capacity() > KEEP_BUFFER {
                self.buf = BytesMut::with_capacity(READ_CHUNK);
            }
            // Grow towards what the frame needs, at most doubling at a time
            // so that memory follows what actually arrives.
            let spare = self.buf.capacity() - self.buf.len();
            let wanted = needed
                .saturating_sub(self.buf.len())
                .min(self.buf.len().max(READ_CHUNK))
                .max(READ_CHUNK);
            if spare < wanted {
                self.buf.reserve(wanted);
            }
            tokio::select! {
                biased;
                _ = stopped.changed() => return Ok(()),
                read = tokio::time::timeout(idle, self.stream.read_buf(&mut self.buf)) => match read {
                    Err(_) => return Err(ConnectionError::Idle(idle)),
                    Ok(Ok(0)) if self.buf.is_empty() => return Ok(()),
                    Ok(Ok(0)) => return Err(FrameError::Truncated(self.buf.len()).into()),
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => return Err(e.into()),
                },
            }
        }
    }

    /// Delivers the frame of `len` bytes at the start of the buffer, and
    /// acknowledges it if asked.
    async fn frame(&mut self, len: usize) -> Result<(), ConnectionError> {
        let max = self.shared.options.max_frame_bytes;
        let frame = self
            .buf
            .get(..len)
            .ok_or(FrameError::malformed("frame end past the buffer"))?;
        let sink = &self.shared.sink;
        let mut count = 0;
        let decoded = decode_frame(frame, max, &mut self.scratch, |line| {
            sink.send(line);
            count += 1;
        })?;
        if let Some(signal) = decoded.skipped_signal {
            tracing::debug!(peer = %self.peer, signal, "Forward: skipping a frame of metrics or traces");
        }
        self.shared.records.fetch_add(count, Ordering::Relaxed);
        if decoded.unattributed > 0 {
            self.shared
                .unattributed(self.peer, &decoded.tag, decoded.unattributed);
        }
        self.ack.clear();
        if let Some(chunk) = decoded.chunk {
            // {"ack": chunk}
            self.ack.extend_from_slice(b"\x81\xa3ack");
            self.ack.extend_from_slice(chunk);
        }
        self.buf.advance(len);
        if self.scratch.capacity() > KEEP_BUFFER {
            self.scratch = Vec::new();
        }
        if !self.ack.is_empty() {
            let idle = self.shared.options.idle_timeout;
            tokio::time::timeout(idle, self.stream.write_all(&self.ack))
                .await
                .map_err(|_| ConnectionError::Idle(idle))??;
        }
        Ok(())
    }
}
