//! Serving REST and gRPC on one port: a tower service (and layer) that
//! sends gRPC requests to the wrapped service (within the deadline their
//! `grpc-timeout` header sets) and everything else through the
//! [`Gateway`], which calls the same wrapped service in process.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use tonic::body::Body;
use tower::{Layer, Service};

use crate::{BoxError, Gateway};

/// Routes by content type: `application/grpc*` to the inner service, the
/// rest through the gateway. Build it with [`serve_both`] or [`GatewayLayer`].
#[derive(Clone, Debug)]
pub struct RestOrGrpc<S> {
    gateway: Gateway,
    inner: S,
    /// Whether gRPC requests may reach `inner` directly (false on a REST port).
    grpc: bool,
}

/// Wraps `grpc` (tonic `Routes`, or the routes behind the server's own
/// layers) so that it also answers REST. The gateway's in-process calls go
/// through `grpc` itself, so whatever layers `grpc` has (auth, metrics,
/// limits) apply to REST calls too.
pub fn serve_both<S>(grpc: S, gateway: Gateway) -> RestOrGrpc<S> {
    RestOrGrpc {
        gateway,
        inner: grpc,
        grpc: true,
    }
}

/// [`RestOrGrpc`] as a tower layer, for `tonic::transport::Server::layer`.
/// Add it *before* (outside) layers that should also see the REST calls as
/// gRPC calls, such as metrics:
/// `Server::builder().accept_http1(true).layer(gateway.layer()).layer(metrics)`.
#[derive(Clone, Debug)]
pub struct GatewayLayer {
    gateway: Gateway,
    grpc: bool,
}

impl GatewayLayer {
    /// A layer answering REST with `gateway`, and passing gRPC through.
    pub fn new(gateway: Gateway) -> Self {
        Self { gateway, grpc: true }
    }

    /// A layer answering REST with `gateway` and refusing gRPC requests
    /// (UNIMPLEMENTED), for a port of its own.
    pub fn rest_only(gateway: Gateway) -> Self {
        Self { gateway, grpc: false }
    }
}

impl<S> Layer<S> for GatewayLayer {
    type Service = RestOrGrpc<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RestOrGrpc {
            gateway: self.gateway.clone(),
            inner,
            grpc: self.grpc,
        }
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B, ResBody> Service<Request<B>> for RestOrGrpc<S>
where
    S: Service<Request<Body>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError> + Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
    ResBody: http_body::Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Response<Body>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        // Use the service that was driven to readiness; keep a fresh clone.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        if Gateway::is_rest(&request) {
            let gateway = self.gateway.clone();
            Box::pin(async move { Ok(gateway.handle(request, inner).await) })
        } else if !self.grpc {
            let status = tonic::Status::unimplemented(
                "this port serves the REST API only; use the controller's gRPC address",
            );
            Box::pin(async move { Ok(status.into_http()) })
        } else {
            let deadline = grpc_timeout(request.headers());
            let future = inner.call(request.map(Body::new));
            Box::pin(async move {
                let Some(deadline) = deadline else {
                    return future.await.map(|response| response.map(Body::new));
                };
                match tokio::time::timeout(deadline, future).await {
                    Ok(result) => result.map(|response| response.map(Body::new)),
                    Err(_) => Ok(tonic::Status::deadline_exceeded("the call's deadline passed").into_http()),
                }
            })
        }
    }
}

/// The deadline a gRPC request's `grpc-timeout` header sets (at most eight
/// digits and a unit, per the gRPC HTTP/2 protocol); none if absent or
/// malformed.
fn grpc_timeout(headers: &http::HeaderMap) -> Option<Duration> {
    let text = headers.get("grpc-timeout")?.to_str().ok()?;
    let split = text.len().checked_sub(1)?;
    let (digits, unit) = (text.get(..split)?, text.get(split..)?);
    if digits.is_empty() || digits.len() > 8 {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.checked_mul(3600)?),
        "M" => Duration::from_secs(n.checked_mul(60)?),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::grpc_timeout;

    #[test]
    fn reads_grpc_timeouts() {
        for (value, want) in [
            ("5S", Some(Duration::from_secs(5))),
            ("250m", Some(Duration::from_millis(250))),
            ("2H", Some(Duration::from_secs(7200))),
            ("1n", Some(Duration::from_nanos(1))),
            ("123456789S", None),
            ("S", None),
            ("5x", None),
            ("-5S", None),
            ("", None),
        ] {
            let mut headers = http::HeaderMap::new();
            headers.insert("grpc-timeout", value.parse().unwrap());
            assert_eq!(grpc_timeout(&headers), want, "{value}");
        }
    }
}
