//! Serving REST and gRPC on one port: a tower service (and layer) that
//! sends gRPC requests to the wrapped service untouched and everything else
//! through the [`Gateway`], which calls the same wrapped service in process.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

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
}

/// Wraps `grpc` (tonic `Routes`, or the routes behind the server's own
/// layers) so that it also answers REST. The gateway's in-process calls go
/// through `grpc` itself, so whatever layers `grpc` has (auth, metrics,
/// limits) apply to REST calls too.
pub fn serve_both<S>(grpc: S, gateway: Gateway) -> RestOrGrpc<S> {
    RestOrGrpc { gateway, inner: grpc }
}

/// [`RestOrGrpc`] as a tower layer, for `tonic::transport::Server::layer`.
/// Add it *before* (outside) layers that should also see the REST calls as
/// gRPC calls, such as metrics:
/// `Server::builder().accept_http1(true).layer(gateway.layer()).layer(metrics)`.
#[derive(Clone, Debug)]
pub struct GatewayLayer {
    gateway: Gateway,
}

impl GatewayLayer {
    /// A layer answering REST with `gateway`.
    pub fn new(gateway: Gateway) -> Self {
        Self { gateway }
    }
}

impl<S> Layer<S> for GatewayLayer {
    type Service = RestOrGrpc<S>;

    fn layer(&self, inner: S) -> Self::Service {
        serve_both(inner, self.gateway.clone())
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
        } else {
            let future = inner.call(request.map(Body::new));
            Box::pin(async move { future.await.map(|response| response.map(Body::new)) })
        }
    }
}
