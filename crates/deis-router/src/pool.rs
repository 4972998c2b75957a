//! Upstream clusters and per-endpoint pools of keep-alive HTTP/1.1
//! connections.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tracing::debug;

use crate::raw::RawConn;
use crate::workers;

/// The sending half of an upstream HTTP/1.1 connection (whose I/O half
/// runs as a task of the worker that opened it).
pub(crate) type Sender = http1::SendRequest<Incoming>;

/// A cluster ready for balancing.
pub(crate) struct ClusterRt {
    pub(crate) connect_timeout: Duration,
    pub(crate) endpoints: Vec<Arc<EndpointPool>>,
    /// Shared with the same-named cluster of later configs, so round-robin
    /// continues across updates.
    pub(crate) next: Arc<AtomicUsize>,
}

impl ClusterRt {
    /// The next endpoint, round-robin; `None` when there are none.
    pub(crate) fn pick(&self) -> Option<&Arc<EndpointPool>> {
        self.pick_avoiding(None)
    }

    /// The next endpoint, round-robin, but not `avoid` (the one a retry
    /// just failed on) while there is another.
    pub(crate) fn pick_avoiding(&self, avoid: Option<SocketAddr>) -> Option<&Arc<EndpointPool>> {
        let count = self.endpoints.len();
        if count == 0 {
            return None;
        }
        let index = self.next.fetch_add(1, Ordering::Relaxed) % count;
        let chosen = self.endpoints.get(index)?;
        if count > 1 && Some(chosen.addr) == avoid {
            return self.endpoints.get((index + 1) % count);
        }
        Some(chosen)
    }
}

/// Idle connections to one endpoint, most recently used last, one list per
/// worker: a connection is registered with the I/O driver of the worker
/// that opened it, so only that worker reuses it.
pub(crate) struct EndpointPool {
    pub(crate) addr: SocketAddr,
    /// Worker 0's lists (and the only ones without workers).
    home: Mutex<Lists>,
    /// Workers 1.. .
    others: Box<[Mutex<Lists>]>,
    max_idle: usize,
    idle_timeout: Duration,
}

struct Idle {
    sender: Sender,
    since: Instant,
}

/// A socket of the lean path ([`crate::raw`]), idle between requests, with
/// its buffers (kept, so a request does not allocate them again).
struct RawIdle {
    conn: RawConn,
    since: Instant,
}

/// One worker's idle connections: hyper client connections and bare
/// sockets of the lean path.
#[derive(Default)]
struct Lists {
    hyper: Vec<Idle>,
    raw: Vec<RawIdle>,
}

impl Lists {
    fn len(&self) -> usize {
        self.hyper.len() + self.raw.len()
    }
}

/// Why a connection to an endpoint could not be made.
#[derive(Debug)]
pub(crate) enum ConnectError {
    Io(std::io::Error),
    Timeout,
    Handshake(hyper::Error),
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnectError::Io(e) => write!(f, "{e}"),
            ConnectError::Timeout => f.write_str("connect timeout"),
            ConnectError::Handshake(e) => write!(f, "{e}"),
        }
    }
}

impl EndpointPool {
    pub(crate) fn new(
        addr: SocketAddr,
        slots: usize,
        max_idle: usize,
        idle_timeout: Duration,
    ) -> EndpointPool {
        let others = (1..slots).map(|_| Mutex::new(Lists::default())).collect();
        EndpointPool {
            addr,
            home: Mutex::new(Lists::default()),
            others,
            max_idle,
            idle_timeout,
        }
    }

    /// The calling worker's idle list.
    fn lock(&self) -> MutexGuard<'_, Lists> {
        let list = match workers::current() {
            0 => &self.home,
            worker => self.others.get(worker - 1).unwrap_or(&self.home),
        };
        list.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A pooled connection ready for a request, if any.
    pub(crate) fn checkout(&self) -> Option<Sender> {
        // Expiry is left to `sweep`, which keeps the clock off this path.
        let mut idle = self.lock();
        while let Some(conn) = idle.hyper.pop() {
            if conn.sender.is_ready() {
                return Some(conn.sender);
            }
        }
        None
    }

    /// An idle socket of the lean path that is still open, if any.
    pub(crate) fn checkout_raw(&self) -> Option<RawConn> {
        let mut idle = self.lock();
        while let Some(idle) = idle.raw.pop() {
            if idle.conn.alive() {
                return Some(idle.conn);
            }
        }
        None
    }

    /// Gives back a socket of the lean path after a complete exchange.
    pub(crate) fn release_raw(&self, conn: RawConn) {
        let mut idle = self.lock();
        if idle.len() < self.max_idle {
            conn.watch();
            idle.raw.push(RawIdle {
                conn,
                since: Instant::now(),
            });
        }
    }

    /// Gives back a connection whose response has been read to the end.
    pub(crate) fn release(self: &Arc<Self>, mut sender: Sender) {
        if sender.is_closed() {
            return;
        }
        if sender.is_ready() {
            self.push(sender);
            return;
        }
        // The connection task has not caught up yet (or the request body is
        // still being sent): pool it once it is ready.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let pool = Arc::clone(self);
            runtime.spawn(async move {
                if sender.ready().await.is_ok() {
                    pool.push(sender);
                }
            });
        }
    }

    fn push(&self, sender: Sender) {
        let mut idle = self.lock();
        if idle.len() < self.max_idle {
            idle.hyper.push(Idle {
                sender,
                since: Instant::now(),
            });
        }
    }

    /// Drops idle connections that expired or were closed by the upstream.
    pub(crate) fn sweep(&self) {
        let now = Instant::now();
        for list in std::iter::once(&self.home).chain(self.others.iter()) {
            let stale: (Vec<Idle>, Vec<RawIdle>) = {
                let mut idle = list.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                let (keep, stale) = std::mem::take(&mut idle.hyper).into_iter().partition(|conn| {
                    !conn.sender.is_closed() && now.saturating_duration_since(conn.since) <= self.idle_timeout
                });
                idle.hyper = keep;
                // A socket is only registered with its own worker's driver,
                // so closure is not probed here; checkout probes it.
                let (keep, stale_raw) = std::mem::take(&mut idle.raw)
                    .into_iter()
                    .partition(|conn| now.saturating_duration_since(conn.since) <= self.idle_timeout);
                idle.raw = keep;
                (stale, stale_raw)
            };
            drop(stale);
        }
    }

    /// Opens a new connection to the endpoint; its I/O runs as a task on
    /// the calling worker.
    pub(crate) async fn connect(
        &self,
        timeout: Duration,
        builder: &http1::Builder,
    ) -> Result<Sender, ConnectError> {
        // An idle socket of the lean path serves as well as a new one.
        let stream = match self.checkout_raw().and_then(RawConn::into_stream) {
            Some(stream) => stream,
            None => self.connect_raw(timeout).await?,
        };
        let (sender, conn) = builder
            .handshake(TokioIo::new(stream))
            .await
            .map_err(ConnectError::Handshake)?;
        let addr = self.addr;
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                debug!(upstream = %addr, error = %e, "upstream connection error");
            }
        });
        Ok(sender)
    }

    /// Opens a new socket to the endpoint.
    pub(crate) async fn connect_raw(&self, timeout: Duration) -> Result<TcpStream, ConnectError> {
        let stream = match tokio::time::timeout(timeout, TcpStream::connect(self.addr)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => return Err(ConnectError::Io(e)),
            Err(_) => return Err(ConnectError::Timeout),
        };
        let _ = stream.set_nodelay(true);
        Ok(stream)
    }
}
