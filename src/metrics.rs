//! Prometheus metrics: every component of this process registers its own
//! into one registry, served at `http://<--metrics-addr>/metrics`
//! (OpenMetrics text when the scraper asks for it, as Prometheus does, else
//! the Prometheus text format). Any other path is a 404.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use bytes::Bytes;
use clap::Args;
use deis_builder::Builder;
use deis_controller::Controller;
use deis_core::accept::AcceptBackoff;
use deis_logger::LogMetrics;
use deis_router::RouterMetrics;
use deis_xds::Feed;
use http::header::{ACCEPT, ALLOW, CONTENT_TYPE};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// Scrapes served at once; more wait for their turn.
const MAX_CONNECTIONS: usize = 64;
/// How long a scraper may take to send its request head.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Which process serves the metrics, for the default address.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Component {
    /// `up` and `controller` (they cannot run side by side anyway).
    Controller,
    Builder,
    Router,
    Logger,
}

#[derive(Args, Clone)]
pub(crate) struct MetricsOpts {
    /// Address of the Prometheus endpoint, http://<addr>/metrics [default: 127.0.0.1:9100 for up and
    /// controller, 127.0.0.1:9101 builder, 127.0.0.1:9102 router, 127.0.0.1:9103 logger].
    #[arg(long, env = "DEIS_METRICS_ADDR")]
    metrics_addr: Option<SocketAddr>,
}

impl MetricsOpts {
    /// Where `component` serves its metrics: the given address, else its
    /// own default (split components on one machine do not collide).
    pub(crate) fn addr(&self, component: Component) -> SocketAddr {
        self.metrics_addr.unwrap_or_else(|| {
            let port = match component {
                Component::Controller => 9100,
                Component::Builder => 9101,
                Component::Router => 9102,
                Component::Logger => 9103,
            };
            SocketAddr::from(([127, 0, 0, 1], port))
        })
    }
}

/// What this process runs: each component present registers its metrics.
#[derive(Default)]
pub(crate) struct Sources<'a> {
    pub(crate) controller: Option<&'a Controller>,
    pub(crate) builder: Option<&'a Builder>,
    pub(crate) logs: Option<&'a LogMetrics>,
    pub(crate) router: Option<RouterMetrics>,
    pub(crate) feed: Option<&'a Feed>,
}

impl Sources<'_> {
    /// Registers every component's metrics and serves them where `opts`
    /// says (`component`'s default otherwise).
    pub(crate) async fn serve(self, opts: &MetricsOpts, component: Component) -> Result<MetricsServer> {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(ProcessMetrics));
        if let Some(controller) = self.controller {
            controller.register_metrics(&mut registry);
        }
        if let Some(builder) = self.builder {
            builder.register_metrics(&mut registry);
        }
        if let Some(logs) = self.logs {
            registry.register_collector(Box::new(logs.clone()));
        }
        if let Some(router) = self.router {
            registry.register_collector(Box::new(router));
        }
        if let Some(feed) = self.feed {
            registry.register_collector(Box::new(FeedMetrics(feed.clone())));
        }
        serve(registry, opts.addr(component)).await
    }
}

/// The `/metrics` endpoint, serving until dropped.
pub(crate) struct MetricsServer {
    pub(crate) addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Binds `addr` and serves `registry` there.
pub(crate) async fn serve(registry: Registry, addr: SocketAddr) -> Result<MetricsServer> {
    let listener = TcpListener::bind(addr).await.with_context(|| {
        format!("cannot listen on {addr} for metrics (is another deis-workflow running? see --metrics-addr)")
    })?;
    let addr = listener.local_addr()?;
    let registry = Arc::new(registry);
    let task = tokio::spawn(accept(listener, registry));
    tracing::info!(%addr, "metrics at /metrics");
    Ok(MetricsServer { addr, task })
}

async fn accept(listener: TcpListener, registry: Arc<Registry>) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut backoff = AcceptBackoff::default();
    loop {
        let Ok(permit) = Arc::clone(&slots).acquire_owned().await else {
            return;
        };
        let stream = match listener.accept().await {
            Ok((stream, _)) => {
                backoff.succeeded();
                stream
            }
            Err(error) => {
                let pause = backoff.failed();
                tracing::warn!(%error, retry_in = ?pause, "cannot accept a metrics connection");
                tokio::time::sleep(pause).await;
                continue;
            }
        };
        let registry = Arc::clone(&registry);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let registry = Arc::clone(&registry);
                async move { Ok::<_, Infallible>(respond(&registry, &request)) }
            });
            // One scrape per connection: an idle client cannot hold a slot.
            let served = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .keep_alive(false)
                .serve_connection(TokioIo::new(stream), service)
                .await;
            if let Err(e) = served {
                tracing::debug!(error = %e, "metrics connection ended");
            }
            drop(permit);
        });
    }
}

fn plain(status: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// Whether the scraper accepts OpenMetrics (Prometheus asks for it first).
fn wants_openmetrics(request: &Request<Incoming>) -> bool {
    request
        .headers()
        .get_all(ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .any(|value| value.contains("application/openmetrics-text"))
}

fn respond(registry: &Registry, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    if request.uri().path() != "/metrics" {
        return plain(StatusCode::NOT_FOUND, "not found: metrics are at /metrics\n");
    }
    if request.method() != Method::GET && request.method() != Method::HEAD {
        let mut response = plain(StatusCode::METHOD_NOT_ALLOWED, "use GET\n");
        response
            .headers_mut()
            .insert(ALLOW, http::HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    let openmetrics = wants_openmetrics(request);
    let mut text = String::with_capacity(16 * 1024);
    let encoded = if openmetrics {
        prometheus_client::encoding::text::encode(&mut text, registry)
    } else {
        prometheus_client::encoding::prometheus_text::encode(&mut text, registry)
    };
    if encoded.is_err() {
        return plain(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the metrics could not be encoded\n",
        );
    }
    let mut response = Response::new(Full::new(Bytes::from(text)));
    response.headers_mut().insert(
        CONTENT_TYPE,
        http::HeaderValue::from_static(if openmetrics {
            OPENMETRICS
        } else {
            prometheus_client::encoding::prometheus_text::CONTENT_TYPE
        }),
    );
    response
}

/// `deis_xds_clients`, `deis_xds_acks_total` and `deis_xds_nacks_total`,
/// read from the routing feed when scraped.
pub(crate) struct FeedMetrics(pub(crate) Feed);

impl std::fmt::Debug for FeedMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FeedMetrics")
    }
}

impl Collector for FeedMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let clients = i64::try_from(self.0.clients().len()).unwrap_or(i64::MAX);
        let (acks, nacks) = self.0.acknowledgements();
        ConstGauge::new(clients).encode(encoder.encode_descriptor(
            "deis_xds_clients",
            "Routers (Envoy, the embedded router, gRPC clients) connected to the routing feed.",
            None,
            MetricType::Gauge,
        )?)?;
        ConstCounter::new(acks).encode(encoder.encode_descriptor(
            "deis_xds_acks",
            "Routing feed responses clients accepted.",
            None,
            MetricType::Counter,
        )?)?;
        ConstCounter::new(nacks).encode(encoder.encode_descriptor(
            "deis_xds_nacks",
            "Routing feed responses clients rejected (NACKs).",
            None,
            MetricType::Counter,
        )?)
    }
}

/// The process's own figures, under the names every Prometheus client
/// library gives them, so the usual alerts (descriptors running out, memory)
/// work unchanged. Read from `/proc` and `getrusage` at each scrape; a
/// figure that cannot be read is left out.
#[derive(Debug)]
struct ProcessMetrics;

impl ProcessMetrics {
    fn open_fds() -> Option<i64> {
        let entries = std::fs::read_dir("/proc/self/fd").ok()?;
        i64::try_from(entries.count()).ok()
    }

    fn max_fds() -> Option<i64> {
        use nix::sys::resource::{Resource, getrlimit};
        let (soft, _) = getrlimit(Resource::RLIMIT_NOFILE).ok()?;
        Some(i64::try_from(soft).unwrap_or(i64::MAX))
    }

    fn cpu_seconds() -> Option<f64> {
        use nix::sys::resource::{UsageWho, getrusage};
        let usage = getrusage(UsageWho::RUSAGE_SELF).ok()?;
        let seconds = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
        Some(seconds(usage.user_time()) + seconds(usage.system_time()))
    }

    fn resident_memory_bytes() -> Option<i64> {
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let kib: i64 = status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))?
            .trim()
            .strip_suffix("kB")?
            .trim()
            .parse()
            .ok()?;
        Some(kib.saturating_mul(1024))
    }
}

impl Collector for ProcessMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let gauges = [
            ("process_open_fds", "Open file descriptors.", Self::open_fds()),
            (
                "process_max_fds",
                "The limit on open file descriptors.",
                Self::max_fds(),
            ),
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
                Self::resident_memory_bytes(),
            ),
        ];
        for (name, help, value) in gauges {
            if let Some(value) = value {
                ConstGauge::new(value).encode(encoder.encode_descriptor(
                    name,
                    help,
                    None,
                    MetricType::Gauge,
                )?)?;
            }
        }
        if let Some(seconds) = Self::cpu_seconds() {
            ConstCounter::new(seconds).encode(encoder.encode_descriptor(
                "process_cpu_seconds",
                "User and system CPU time spent in seconds.",
                None,
                MetricType::Counter,
            )?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_component_has_its_own_default_port() {
        let opts = MetricsOpts { metrics_addr: None };
        assert_eq!(opts.addr(Component::Controller).to_string(), "127.0.0.1:9100");
        assert_eq!(opts.addr(Component::Logger).to_string(), "127.0.0.1:9103");
        let given = MetricsOpts {
            metrics_addr: Some("127.0.0.1:0".parse().unwrap()),
        };
        assert_eq!(given.addr(Component::Router).port(), 0);
    }

    async fn get(addr: SocketAddr, request: &str) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.unwrap();
        String::from_utf8_lossy(&response).into_owned()
    }

    #[tokio::test]
    async fn serves_metrics_in_either_format_and_404_elsewhere() {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(FeedMetrics(Feed::new())));
        registry.register_collector(Box::new(ProcessMetrics));
        let server = serve(registry, "127.0.0.1:0".parse().unwrap()).await.unwrap();
        let close = "Connection: close\r\n";

        let text = get(
            server.addr,
            &format!("GET /metrics HTTP/1.1\r\nHost: x\r\n{close}\r\n"),
        )
        .await;
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
        assert!(text.contains("content-type: text/plain; version=0.0.4"), "{text}");
        assert!(text.contains("\ndeis_xds_nacks_total 0\n"), "{text}");
        let sample = |name: &str| -> f64 {
            let line = text
                .lines()
                .find(|line| line.starts_with(&format!("{name} ")))
                .unwrap_or_else(|| panic!("no {name} in {text}"));
            line.rsplit(' ').next().unwrap().parse().unwrap()
        };
        let (soft, _) = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).unwrap();
        assert_eq!(sample("process_max_fds"), soft as f64);
        // At least stdio and the listening socket.
        assert!(sample("process_open_fds") >= 4.0, "{text}");
        assert!(sample("process_resident_memory_bytes") > 1e6, "{text}");
        assert!(sample("process_cpu_seconds_total") > 0.0, "{text}");
        assert!(!text.contains("# EOF"), "{text}");

        let open = get(
            server.addr,
            &format!(
                "GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: application/openmetrics-text;version=1.0.0,text/plain;q=0.5\r\n{close}\r\n"
            ),
        )
        .await;
        assert!(open.contains(&format!("content-type: {OPENMETRICS}")), "{open}");
        assert!(open.trim_end().ends_with("# EOF"), "{open}");

        let missing = get(
            server.addr,
            &format!("GET /other HTTP/1.1\r\nHost: x\r\n{close}\r\n"),
        )
        .await;
        assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");
        let post = get(
            server.addr,
            &format!("POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n{close}\r\n"),
        )
        .await;
        assert!(post.starts_with("HTTP/1.1 405"), "{post}");
        let garbage = get(server.addr, "\x00\x01 not http at all\r\n\r\n").await;
        assert!(
            garbage.is_empty() || garbage.starts_with("HTTP/1.1 400"),
            "{garbage}"
        );
        // Still serving after all that.
        let again = get(server.addr, "GET /metrics HTTP/1.0\r\n\r\n").await;
        assert!(
            again.starts_with("HTTP/1.0 200") || again.starts_with("HTTP/1.1 200"),
            "{again}"
        );
    }
}
