//! Serving the API on a listener: gRPC over HTTP/2 and REST over HTTP/1.1
//! or HTTP/2, with hyper directly rather than `tonic::transport::Server`.
//!
//! Why not tonic's server: it wraps every service in its own `grpc-timeout`
//! layer, outside any layer of ours, so a REST request carrying that header
//! would be cut short and answered in gRPC's form before the REST gateway
//! saw it. Here the gateway is outermost, and gRPC deadlines are enforced
//! by [`deis_gateway::RestOrGrpc`] for gRPC requests only.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use deis_core::accept::AcceptBackoff;
use http::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tonic::body::Body;
use tonic::transport::server::TcpConnectInfo;

/// Most connections served at once; more wait in the listen backlog.
const MAX_CONNECTIONS: usize = 4096;
/// How long requests in progress may run after shutdown begins.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// How long a client may take to send an HTTP/1.1 request's headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves `service` on `listener` until `shutdown` resolves, then lets
/// requests in progress finish for up to [`SHUTDOWN_GRACE`].
pub(crate) async fn serve<S>(
    service: S,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()>
where
    S: tower::Service<Request<Body>, Response = Response<Body>, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    let local_addr = listener.local_addr().ok();
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut http = auto::Builder::new(TokioExecutor::new());
    http.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    http.http2()
        .timer(TokioTimer::new())
        // Detect dead peers on long-lived streams (`deis logs -f`).
        .keep_alive_interval(Duration::from_secs(60))
        .keep_alive_timeout(Duration::from_secs(20));
    tokio::pin!(shutdown);
    let mut backoff = AcceptBackoff::default();
    loop {
        let permit = tokio::select! {
            () = &mut shutdown => break,
            permit = Arc::clone(&slots).acquire_owned() => permit.map_err(std::io::Error::other)?,
        };
        let (stream, remote_addr) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => {
                    backoff.succeeded();
                    accepted
                }
                Err(error) => {
                    let pause = backoff.failed();
                    tracing::warn!(%error, retry_in = ?pause, "cannot accept an API connection");
                    tokio::time::sleep(pause).await;
                    continue;
                }
            },
        };
        tune(&stream);
        let info = TcpConnectInfo {
            local_addr,
            remote_addr: Some(remote_addr),
        };
        let service = service.clone();
        // The connection's addresses, where tonic's `Request::remote_addr`
        // looks for them (the login limiter counts failures per address).
        let service = tower::ServiceExt::map_request(service, move |mut request: Request<_>| {
            request.extensions_mut().insert(info.clone());
            request.map(Body::new)
        });
        let connection = graceful.watch(
            http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service))
                .into_owned(),
        );
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "API connection ended");
            }
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::debug!("API connections still open after the shutdown grace period");
    }
    Ok(())
}

/// Without TCP_NODELAY, small responses wait for the peer's delayed ACK
/// (~40 ms on Linux); keepalive finds peers that vanished.
fn tune(stream: &TcpStream) {
    let _ = stream.set_nodelay(true);
    let socket = socket2::SockRef::from(stream);
    let _ = socket.set_tcp_keepalive(&socket2::TcpKeepalive::new().with_time(Duration::from_secs(60)));
}
