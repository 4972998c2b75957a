//! Listening sockets: the accept loop and the per-connection server.

use std::convert::Infallible;
use std::future::{Future, poll_fn};
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use std::task::Poll;
use std::time::Duration;

use deis_uring::UringStream;
use http::HeaderValue;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::{debug, warn};

use crate::drain::{ABORTING, DRAINING, Watch};
use crate::lean_server;
use crate::proxy::{self, ConnCtx};
use crate::router::Inner;
use crate::tcp;
use crate::workers;

/// Binds a listening socket (`SO_REUSEADDR`, so a restart can take the port
/// back at once), detached from any runtime so each worker can adopt a copy.
pub(crate) fn bind(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.set_nodelay(true)?;
    socket.bind(addr)?;
    socket.listen(1024)?.into_std()
}

/// How a listener currently serves new connections.
pub(crate) enum ConnKind {
    Http,
    Https(Arc<rustls::ServerConfig>),
    Tcp(Option<Arc<crate::pool::ClusterRt>>, Option<Duration>),
}

/// The first and the longest pause after a failed `accept()`; each failure
/// in a row doubles it.
const ACCEPT_PAUSE: (Duration, Duration) = (Duration::from_millis(10), Duration::from_secs(1));

/// Accepts until the task is aborted (listener closed) or the router is
/// gone. Every worker runs one on its own copy of the socket.
pub(crate) async fn accept_loop(
    listener: std::net::TcpListener,
    id: u64,
    inner: Weak<Inner>,
    limit: Arc<Semaphore>,
) {
    let listener = match TcpListener::from_std(listener) {
        Ok(listener) => listener,
        Err(e) => {
            debug!(error = %e, "cannot adopt listening socket");
            return;
        }
    };
    let mut pause = ACCEPT_PAUSE.0;
    loop {
        let Ok(permit) = Arc::clone(&limit).acquire_owned().await else {
            return;
        };
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of descriptors, usually: the connection stays in the
                // backlog, and retrying at once would spin.
                warn!(%error, retry_in = ?pause, "cannot accept a connection");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(ACCEPT_PAUSE.1);
                continue;
            }
        };
        pause = ACCEPT_PAUSE.0;
        let Some(inner) = inner.upgrade() else { return };
        tokio::spawn(serve_connection(inner, id, stream, peer, permit));
    }
}

async fn serve_connection(
    inner: Arc<Inner>,
    id: u64,
    stream: TcpStream,
    peer: SocketAddr,
    _permit: OwnedSemaphorePermit,
) {
    let _ = stream.set_nodelay(true);
    let Some((kind, generation, port_header)) = inner.connection_setup(id) else {
        return;
    };
    let watch = inner.conns.register(generation);
    let client_ip = peer.ip().to_canonical();
    let ctx = |https: bool| {
        Arc::new(ConnCtx {
            inner: Arc::clone(&inner),
            listener: id,
            generation,
            client: peer,
            client_ip,
            client_ip_header: HeaderValue::from_str(&client_ip.to_string())
                .unwrap_or(HeaderValue::from_static("unknown")),
            port_header: port_header.clone(),
            https,
        })
    };
    // The connection's task holds the largest of these futures for as long
    // as the connection lives, idle or not. TLS (a session, and hyper for
    // HTTP/2) and TCP proxying are boxed so that plain HTTP connections,
    // the many idle keep-alive ones among them, stay small.
    match kind {
        ConnKind::Tcp(cluster, idle_timeout) => {
            Box::pin(tcp::proxy(stream, cluster, idle_timeout, watch)).await
        }
        ConnKind::Http => match workers::ring() {
            Some(ring) => match UringStream::new(stream, &ring) {
                Ok(stream) => lean_server::serve(ctx(false), stream, watch).await,
                Err(e) => debug!(client = %peer, error = %e, "connection unusable"),
            },
            None => lean_server::serve(ctx(false), stream, watch).await,
        },
        ConnKind::Https(config) => {
            Box::pin(async {
                let acceptor = tokio_rustls::TlsAcceptor::from(config);
                match tokio::time::timeout(inner.options.tls_handshake_timeout, acceptor.accept(stream)).await
                {
                    // HTTP/2 goes straight to hyper; HTTP/1.1 starts lean.
                    Ok(Ok(tls)) if tls.get_ref().1.alpn_protocol() == Some(b"h2") => {
                        serve_http(ctx(true), tls, watch).await;
                    }
                    Ok(Ok(tls)) => lean_server::serve(ctx(true), tls, watch).await,
                    Ok(Err(e)) => debug!(client = %peer, error = %e, "tls handshake failed"),
                    Err(_) => debug!(client = %peer, "tls handshake timed out"),
                }
            })
            .await
        }
    }
}

/// Serves HTTP/1.1 and HTTP/2 on one connection. On a drain signal the
/// connection finishes its in-flight requests and closes; on abort it is
/// dropped.
pub(crate) async fn serve_http<I>(ctx: Arc<ConnCtx>, io: I, mut watch: Watch)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let inner = Arc::clone(&ctx.inner);
    let client = ctx.client;
    let service = service_fn(move |req| {
        let ctx = Arc::clone(&ctx);
        async move { Ok::<_, Infallible>(proxy::handle(&ctx, req).await) }
    });
    let conn = inner
        .http
        .serve_connection_with_upgrades(TokioIo::new(io), service);
    tokio::pin!(conn);
    let mut draining = false;
    // One atomic load per wake-up decides between serving, draining and
    // aborting; the connection is polled in the same step.
    let result = poll_fn(|cx| {
        let level = watch.level(cx);
        if level >= ABORTING {
            return Poll::Ready(Ok(()));
        }
        if level >= DRAINING && !draining {
            draining = true;
            conn.as_mut().graceful_shutdown();
        }
        conn.as_mut().poll(cx)
    })
    .await;
    if let Err(e) = result {
        debug!(client = %client, error = %e, "connection error");
    }
}
