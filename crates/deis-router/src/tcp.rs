//! TCP listeners: bytes proxied both ways to a round-robin endpoint.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tracing::debug;

use crate::drain::{ABORTING, Watch};
use crate::pool::ClusterRt;

/// Proxies one accepted connection until either side closes, nothing moves
/// for `idle_timeout`, or the router aborts connections.
pub(crate) async fn proxy(
    mut downstream: TcpStream,
    cluster: Option<Arc<ClusterRt>>,
    idle_timeout: Option<Duration>,
    mut watch: Watch,
) {
    let Some(cluster) = cluster else {
        debug!("tcp listener's cluster does not exist; closing");
        return;
    };
    let mut upstream = None;
    for _ in 0..cluster.endpoints.len() {
        let Some(endpoint) = cluster.pick() else { break };
        match tokio::time::timeout(cluster.connect_timeout, TcpStream::connect(endpoint.addr)).await {
            Ok(Ok(stream)) => {
                upstream = Some(stream);
                break;
            }
            Ok(Err(e)) => debug!(upstream = %endpoint.addr, error = %e, "tcp upstream connect failed"),
            Err(_) => debug!(upstream = %endpoint.addr, "tcp upstream connect timed out"),
        }
    }
    let Some(upstream) = upstream else { return };
    let _ = upstream.set_nodelay(true);

    let start = Instant::now();
    let last = AtomicU64::new(0);
    let mut down = Tracked {
        io: &mut downstream,
        last: &last,
        start,
    };
    let mut up = Tracked {
        io: upstream,
        last: &last,
        start,
    };
    let copy = tokio::io::copy_bidirectional(&mut down, &mut up);
    tokio::pin!(copy);
    let idle = idle_timeout.filter(|d| !d.is_zero());
    // A deadline past the end of time means none.
    let mut deadline = idle.and_then(|d| start.checked_add(d));
    loop {
        tokio::select! {
            result = &mut copy => {
                if let Err(e) = result {
                    debug!(error = %e, "tcp proxy connection ended");
                }
                return;
            }
            () = sleep_until(deadline) => {
                let Some(idle) = idle else { continue };
                let Some(next) = start
                    .checked_add(Duration::from_millis(last.load(Ordering::Relaxed)))
                    .and_then(|t| t.checked_add(idle))
                else {
                    deadline = None;
                    continue;
                };
                if next <= Instant::now() {
                    debug!("tcp proxy connection idle; closing");
                    return;
                }
                deadline = Some(next);
            }
            () = watch.reached(ABORTING) => return,
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// A stream that records when it last read data.
struct Tracked<'a, S> {
    io: S,
    last: &'a AtomicU64,
    start: Instant,
}

impl<S: AsyncRead + Unpin> AsyncRead for Tracked<'_, S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.io).poll_read(cx, buf);
        if matches!(result, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            let millis = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
            self.last.store(millis, Ordering::Relaxed);
        }
        result
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tracked<'_, S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
