//! The controller's Prometheus metrics:
//!
//! - `deis_grpc_requests_total{service,method,code}` and
//!   `deis_grpc_request_duration_seconds{service,method}`, recorded by a
//!   tower layer around every service of the API (public, internal, health,
//!   reflection). The code is the gRPC status (`OK`, `NotFound`, ...) from
//!   the response headers or, when the call streamed a body, its trailers
//!   (`Canceled` when the client went away first). The duration runs from
//!   the request's arrival to the response headers: all of a unary call,
//!   only the start of a streaming one (`deis logs -f`, `deis run`).
//!   Paths that name no method of the API count as `unknown`, so callers
//!   cannot make up label values.
//! - `deis_deploys_total{outcome}` and `deis_deploy_duration_seconds{outcome}`
//!   (`succeeded` or `failed`): every release handed to the scheduler.
//! - `deis_processes{state}` (`starting`, `up`, `crashed`, `terminating`):
//!   asked of the scheduler when scraped, when it can tell.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, LazyLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use deis_scheduler::Scheduler;
use http_body::{Body, Frame, SizeHint};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

/// Latency buckets of API calls, in seconds (calls that deploy wait for
/// the release to be ready, so the range reaches minutes).
const GRPC_BUCKETS: [f64; 16] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];
/// Deploy durations, in seconds.
const DEPLOY_BUCKETS: [f64; 13] = [
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    service: &'static str,
    method: &'static str,
    code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodLabels {
    service: &'static str,
    method: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// The controller's metrics (one set per controller).
#[derive(Debug)]
pub(crate) struct ControllerMetrics {
    calls: Family<CallLabels, Counter>,
    call_duration: Histograms<MethodLabels>,
    deploys: Family<OutcomeLabels, Counter>,
    deploy_duration: Histograms<OutcomeLabels>,
}

impl ControllerMetrics {
    pub(crate) fn new() -> ControllerMetrics {
        ControllerMetrics {
            calls: Family::default(),
            call_duration: Family::new_with_constructor(|| Histogram::new(GRPC_BUCKETS)),
            deploys: Family::default(),
            deploy_duration: Family::new_with_constructor(|| Histogram::new(DEPLOY_BUCKETS)),
        }
    }

    /// Registers everything, with `scheduler` asked for process counts.
    pub(crate) fn register(&self, registry: &mut Registry, scheduler: Arc<dyn Scheduler>) {
        registry.register(
            "deis_grpc_requests",
            "Calls of the controller's gRPC API, by service, method and gRPC status code",
            self.calls.clone(),
        );
        registry.register_with_unit(
            "deis_grpc_request_duration",
            "Time from a call's arrival to its response headers (all of a unary call), by service and method",
            Unit::Seconds,
            self.call_duration.clone(),
        );
        registry.register(
            "deis_deploys",
            "Releases deployed through the scheduler, by outcome (succeeded, failed)",
            self.deploys.clone(),
        );
        registry.register_with_unit(
            "deis_deploy_duration",
            "Time a deploy took until its release served or failed, by outcome",
            Unit::Seconds,
            self.deploy_duration.clone(),
        );
        registry.register_collector(Box::new(Processes(scheduler)));
    }

    /// Counts a deploy that took `elapsed`.
    pub(crate) fn deployed(&self, succeeded: bool, elapsed: Duration) {
        let labels = OutcomeLabels {
            outcome: if succeeded { "succeeded" } else { "failed" },
        };
        self.deploys.get_or_create(&labels).inc();
        self.deploy_duration
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
    }

    fn called(&self, method: MethodLabels, code: &'static str, elapsed: Duration) {
        self.call_duration
            .get_or_create(&method)
            .observe(elapsed.as_secs_f64());
        self.calls
            .get_or_create(&CallLabels {
                service: method.service,
                method: method.method,
                code,
            })
            .inc();
    }
}

/// `deis_processes{state}`, read from the scheduler at scrape time.
struct Processes(Arc<dyn Scheduler>);

impl std::fmt::Debug for Processes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Processes")
    }
}

impl Collector for Processes {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let Some(counts) = self.0.process_counts() else {
            return Ok(());
        };
        let mut family = encoder.encode_descriptor(
            "deis_processes",
            "App processes by state (starting, up, crashed, terminating).",
            None,
            MetricType::Gauge,
        )?;
        for (state, count) in [
            ("starting", counts.starting),
            ("up", counts.up),
            ("crashed", counts.crashed),
            ("terminating", counts.terminating),
        ] {
            let gauge = ConstGauge::new(i64::try_from(count).unwrap_or(i64::MAX));
            gauge.encode(family.encode_family(&[("state", state)])?)?;
        }
        Ok(())
    }
}

/// Every method the API serves, by request path (`/package.Service/Method`).
static METHODS: LazyLock<HashMap<String, (String, String)>> = LazyLock::new(|| {
    let mut methods = HashMap::new();
    let mut add = |service: &str, method: &str| {
        methods.insert(
            format!("/{service}/{method}"),
            (service.to_owned(), method.to_owned()),
        );
    };
    for service in deis_proto::DESCRIPTOR_POOL.services() {
        for method in service.methods() {
            add(service.full_name(), method.name());
        }
    }
    // Served beside the API, described elsewhere.
    add("grpc.health.v1.Health", "Check");
    add("grpc.health.v1.Health", "Watch");
    add("grpc.reflection.v1.ServerReflection", "ServerReflectionInfo");
    add("grpc.reflection.v1alpha.ServerReflection", "ServerReflectionInfo");
    methods
});

fn method_labels(path: &str) -> MethodLabels {
    match METHODS.get(path) {
        Some((service, method)) => MethodLabels {
            service: service.as_str(),
            method: method.as_str(),
        },
        None => MethodLabels {
            service: "unknown",
            method: "unknown",
        },
    }
}

/// The name of a gRPC status code, as gRPC's own libraries print it.
fn code_name(code: &[u8]) -> &'static str {
    match code {
        b"0" => "OK",
        b"1" => "Canceled",
        b"2" => "Unknown",
        b"3" => "InvalidArgument",
        b"4" => "DeadlineExceeded",
        b"5" => "NotFound",
        b"6" => "AlreadyExists",
        b"7" => "PermissionDenied",
        b"8" => "ResourceExhausted",
        b"9" => "FailedPrecondition",
        b"10" => "Aborted",
        b"11" => "OutOfRange",
        b"12" => "Unimplemented",
        b"13" => "Internal",
        b"14" => "Unavailable",
        b"15" => "DataLoss",
        b"16" => "Unauthenticated",
        _ => "Unknown",
    }
}

fn status_code(headers: &http::HeaderMap) -> Option<&'static str> {
    headers
        .get("grpc-status")
        .map(|value| code_name(value.as_bytes()))
}

/// The tower layer that measures every call of the API.
#[derive(Clone, Debug)]
pub struct GrpcMetricsLayer(pub(crate) Arc<ControllerMetrics>);

impl<S> tower::Layer<S> for GrpcMetricsLayer {
    type Service = GrpcMetricsService<S>;

    fn layer(&self, inner: S) -> GrpcMetricsService<S> {
        GrpcMetricsService {
            inner,
            metrics: Arc::clone(&self.0),
        }
    }
}

/// [`GrpcMetricsLayer`]'s service.
#[derive(Clone, Debug)]
pub struct GrpcMetricsService<S> {
    inner: S,
    metrics: Arc<ControllerMetrics>,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, ReqBody, ResBody> tower::Service<http::Request<ReqBody>> for GrpcMetricsService<S>
where
    S: tower::Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
    ResBody: Body + Unpin,
{
    type Response = http::Response<MeteredBody<ResBody>>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        let start = Instant::now();
        let method = method_labels(request.uri().path());
        let response = self.inner.call(request);
        let metrics = Arc::clone(&self.metrics);
        Box::pin(async move {
            let response = response.await?;
            let mut call = Call {
                metrics,
                method,
                elapsed: start.elapsed(),
                recorded: false,
            };
            // A status in the headers (an error, "trailers-only") ends the
            // call; otherwise it comes in the trailers.
            if let Some(code) = status_code(response.headers()) {
                call.record(code);
            }
            Ok(response.map(|body| MeteredBody { body, call }))
        })
    }
}

/// A call whose status is not counted yet.
struct Call {
    metrics: Arc<ControllerMetrics>,
    method: MethodLabels,
    elapsed: Duration,
    recorded: bool,
}

impl Call {
    fn record(&mut self, code: &'static str) {
        if !self.recorded {
            self.recorded = true;
            self.metrics.called(self.method.clone(), code, self.elapsed);
        }
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        // The body went away before its trailers: the client left.
        self.record("Canceled");
    }
}

/// A response body that counts its call when the trailers pass by.
pub struct MeteredBody<B> {
    body: B,
    call: Call,
}

impl<B: Body<Data = Bytes> + Unpin> Body for MeteredBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.body).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(code) = frame.trailers_ref().and_then(status_code) {
                    this.call.record(code);
                }
            }
            Poll::Ready(Some(Err(_))) => this.call.record("Internal"),
            // Ended without a status: gRPC says the call failed.
            Poll::Ready(None) => this.call.record("Unknown"),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_methods_are_labelled_and_others_are_not() {
        let known = method_labels("/deis.v2.AppsService/CreateApp");
        assert_eq!(
            (known.service, known.method),
            ("deis.v2.AppsService", "CreateApp")
        );
        let health = method_labels("/grpc.health.v1.Health/Check");
        assert_eq!(
            (health.service, health.method),
            ("grpc.health.v1.Health", "Check")
        );
        for made_up in [
            "/deis.v2.AppsService/Nope",
            "/x/y",
            "",
            "/deis.v2.AppsService/CreateApp/x",
        ] {
            let labels = method_labels(made_up);
            assert_eq!(
                (labels.service, labels.method),
                ("unknown", "unknown"),
                "{made_up}"
            );
        }
    }

    #[test]
    fn status_codes_have_grpc_names() {
        assert_eq!(code_name(b"0"), "OK");
        assert_eq!(code_name(b"5"), "NotFound");
        assert_eq!(code_name(b"16"), "Unauthenticated");
        assert_eq!(code_name(b"99"), "Unknown");
        assert_eq!(code_name(b""), "Unknown");
    }
}
