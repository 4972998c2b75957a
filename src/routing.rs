//! Routing: the controller's routing state served as an xDS feed (for real
//! Envoy, proxyless gRPC and the embedded router), and the Envoy bootstrap
//! that points at it.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use clap::builder::BoolishValueParser;
use deis_auth::PlatformSecret;
use deis_controller::Controller;
use deis_router::xds::XdsOptions;
use deis_router::{AccessEntry, AccessLog, Router, RouterOptions};
use deis_routing::{BuilderRoute, RouterSettings, TlsCertificate};
use deis_scheduler::LogSink;
use deis_xds::{Ads, Feed};

/// The purpose the feed's token is derived for.
const XDS_TOKEN_PURPOSE: &str = "xds";
/// The gRPC health service name that reports the feed's clients.
const ADS_SERVICE: &str = "envoy.service.discovery.v3.AggregatedDiscoveryService";

#[derive(Args, Clone)]
pub(crate) struct RouterOpts {
    /// Address of the routing feed (Envoy xDS: ADS over gRPC).
    #[arg(long, env = "DEIS_XDS_ADDR", default_value = "127.0.0.1:18000")]
    pub(crate) xds_addr: SocketAddr,
    /// Address routers listen on for apps.
    #[arg(long, env = "DEIS_ROUTER_BIND", default_value = "127.0.0.1")]
    router_bind: IpAddr,
    /// HTTPS port of the routers (used once a certificate exists).
    #[arg(long, env = "DEIS_ROUTER_HTTPS_PORT", default_value_t = 8443)]
    router_https_port: u16,
    /// Also expose the builder's SSH server through the routers on this port, as Deis's router did.
    #[arg(long, env = "DEIS_ROUTER_BUILDER_PORT")]
    router_builder_port: Option<u16>,
    /// PEM certificate served for *.<platform-domain> over HTTPS.
    #[arg(long, env = "DEIS_PLATFORM_CERT", requires = "platform_key")]
    platform_cert: Option<PathBuf>,
    /// PEM private key of --platform-cert.
    #[arg(long, env = "DEIS_PLATFORM_KEY", requires = "platform_cert")]
    platform_key: Option<PathBuf>,
    /// Seconds a connection to an app process may take (Deis: 30).
    #[arg(long, env = "DEIS_ROUTER_CONNECT_TIMEOUT", default_value_t = 30)]
    router_connect_timeout: u64,
    /// Seconds a request may wait for its response before a 504 (Deis: 1300).
    #[arg(long, env = "DEIS_ROUTER_REQUEST_TIMEOUT", default_value_t = 1300)]
    router_request_timeout: u64,
}

impl RouterOpts {
    /// The routers' settings; `builder` is where the builder's SSH server
    /// listens (exposed only with --router-builder-port).
    pub(crate) fn settings(
        &self,
        platform_domain: &str,
        http_port: u16,
        builder: Option<SocketAddr>,
    ) -> Result<RouterSettings> {
        let platform_certificate = match (&self.platform_cert, &self.platform_key) {
            (Some(cert), Some(key)) => {
                let read = |path: &PathBuf| {
                    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
                };
                let (chain, private_key) = (read(cert)?, read(key)?);
                deis_core::cert::parse_certificate(&chain)
                    .with_context(|| format!("{} is not a usable certificate", cert.display()))?;
                deis_core::cert::parse_private_key(&private_key)
                    .with_context(|| format!("{} is not a usable private key", key.display()))?;
                deis_core::cert::check_key_pair(&chain, &private_key).with_context(|| {
                    format!("{} is not the private key of {}", key.display(), cert.display())
                })?;
                Some(TlsCertificate {
                    name: "platform".into(),
                    server_names: vec![format!("*.{platform_domain}")],
                    certificate_chain: chain,
                    private_key,
                })
            }
            _ => None,
        };
        Ok(RouterSettings {
            platform_domain: platform_domain.to_owned(),
            bind: self.router_bind,
            http_port,
            https_port: self.router_https_port,
            platform_certificate,
            builder: self
                .router_builder_port
                .zip(builder)
                .map(|(port, target)| BuilderRoute { port, target }),
            connect_timeout: Duration::from_secs(self.router_connect_timeout),
            request_timeout: Duration::from_secs(self.router_request_timeout),
        })
    }
}

/// The feed's token for Envoy and the embedded router.
pub(crate) fn xds_token(secret: &PlatformSecret) -> String {
    secret.derive(XDS_TOKEN_PURPOSE)
}

/// Starts the feed: follows the controller's routing state and serves it
/// over ADS (with gRPC health: not serving while a client rejects its
/// config) on `addr`. Returns the bound address and the feed.
pub(crate) async fn start_feed(
    controller: &Controller,
    settings: RouterSettings,
    addr: SocketAddr,
    token: String,
) -> Result<(SocketAddr, Feed)> {
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| {
        format!("cannot listen on {addr} for the routing feed (is another deis-workflow running?)")
    })?;
    let bound = listener.local_addr()?;
    let feed = Feed::new();
    feed.follow(settings, controller.routing_state());

    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status(ADS_SERVICE, tonic_health::ServingStatus::Serving)
        .await;
    let mut healthy = feed.health();
    tokio::spawn(async move {
        loop {
            let status = if *healthy.borrow_and_update() {
                tonic_health::ServingStatus::Serving
            } else {
                tonic_health::ServingStatus::NotServing
            };
            reporter.set_service_status(ADS_SERVICE, status).await;
            if healthy.changed().await.is_err() {
                return;
            }
        }
    });
    let incoming = crate::incoming::incoming(listener, "routing feed");
    let ads = Ads::new(feed.clone(), token).into_service();
    tokio::spawn(async move {
        let served = tonic::transport::Server::builder()
            .add_service(health)
            .add_service(ads)
            .serve_with_incoming(incoming)
            .await;
        if let Err(err) = served {
            tracing::error!(error = %err, "the routing feed stopped");
        }
    });
    tracing::info!(addr = %bound, "routing feed (xDS) listening");
    Ok((bound, feed))
}

#[derive(Args, Clone)]
pub(crate) struct EnvoyBootstrapArgs {
    /// Where the platform keeps its state (for the platform secret).
    #[arg(long, env = "DEIS_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// The platform secret (default: the one in the data directory).
    #[arg(long, env = "DEIS_PLATFORM_SECRET", hide_env_values = true)]
    platform_secret: Option<String>,
    /// Where Envoy finds the routing feed (host:port).
    #[arg(long, env = "DEIS_XDS_ADDR", default_value = "127.0.0.1:18000")]
    xds_addr: String,
    /// Envoy's admin port on 127.0.0.1.
    #[arg(long, default_value_t = 9901)]
    admin_port: u16,
    /// Envoy's node id.
    #[arg(long, default_value = "envoy")]
    node_id: String,
    /// Use incremental (delta) xDS.
    #[arg(long)]
    delta: bool,
}

/// Prints an Envoy bootstrap for this platform's feed.
pub(crate) fn envoy_bootstrap(args: &EnvoyBootstrapArgs) -> Result<()> {
    let secret = match &args.platform_secret {
        Some(secret) => PlatformSecret::new(secret.clone())?,
        None => {
            let dir = crate::ensure_data_dir(args.data_dir.as_deref())?;
            PlatformSecret::load_or_create(&dir.join("platform-secret"))?
        }
    };
    let (host, port) = args
        .xds_addr
        .rsplit_once(':')
        .and_then(|(host, port)| Some((host, port.parse::<u16>().ok()?)))
        .with_context(|| format!("--xds-addr {} is not host:port", args.xds_addr))?;
    let token = xds_token(&secret);
    let bootstrap = deis_xds::Bootstrap {
        node_id: &args.node_id,
        admin_port: args.admin_port,
        xds_host: host.trim_start_matches('[').trim_end_matches(']'),
        xds_port: port,
        xds_token: &token,
        delta: args.delta,
    };
    print!("{}", bootstrap.render());
    Ok(())
}

/// Which router serves apps in `up`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum RouterKind {
    /// The embedded edge router, in this process, reading the feed.
    Embedded,
    /// None: only the feed (for real Envoy, see `envoy-bootstrap`).
    None,
}

/// Router access lines go to `deis logs` as `<app>[router]: ...`, as on
/// Heroku.
struct AppRouterLog(Arc<dyn LogSink>);

impl AccessLog for AppRouterLog {
    fn log(&self, entry: &AccessEntry) {
        let Some(app) = entry.virtual_host.as_deref() else {
            return;
        };
        if app.starts_with("deis.") {
            return;
        }
        self.0.send(deis_scheduler::LogLine {
            time: chrono::Utc::now(),
            app: app.to_owned(),
            source: deis_scheduler::LogSource::Router,
            process: "router".into(),
            release: String::new(),
            text: deis_router::format_heroku(entry),
        });
    }
}

/// A router and the task feeding it.
pub(crate) struct RunningRouter {
    router: Router,
    follower: tokio::task::JoinHandle<()>,
}

impl RunningRouter {
    fn follow(router: Router, endpoint: String, token: String, node_id: String) -> RunningRouter {
        let options = XdsOptions {
            endpoint,
            token,
            node_id,
        };
        let follower = tokio::spawn(deis_router::xds::follow(router.clone(), options));
        RunningRouter { router, follower }
    }

    /// The router (for its status).
    pub(crate) fn router(&self) -> Router {
        self.router.clone()
    }

    /// Stops following the feed, then lets in-flight requests finish.
    pub(crate) async fn shutdown(self) {
        self.follower.abort();
        self.router.shutdown().await;
    }
}

/// Starts the embedded router on the feed at `feed`; returns once it serves
/// its HTTP listener (or after `within`, with a warning).
pub(crate) async fn start_embedded_router(
    feed: SocketAddr,
    token: String,
    logs: Arc<dyn LogSink>,
    io_uring: bool,
    within: Duration,
) -> RunningRouter {
    let options = RouterOptions {
        io_uring,
        ..RouterOptions::default()
    };
    let router = Router::new(options, Arc::new(AppRouterLog(logs)));
    let running = RunningRouter::follow(
        router.clone(),
        format!("http://{feed}"),
        token,
        "embedded-router".into(),
    );
    let deadline = tokio::time::Instant::now() + within;
    while router.local_addrs().is_empty() {
        if tokio::time::Instant::now() > deadline {
            tracing::warn!("the embedded router has no listeners yet; apps may not answer at first");
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    running
}

#[derive(Args, Clone)]
pub(crate) struct RouterArgs {
    /// Where the routing feed is (host:port).
    #[arg(long, env = "DEIS_XDS_ADDR", default_value = "127.0.0.1:18000")]
    xds_addr: String,
    /// The feed's token [default: derived from the platform secret].
    #[arg(long, env = "DEIS_XDS_TOKEN", hide_env_values = true)]
    xds_token: Option<String>,
    /// Where the platform keeps its state (for the platform secret).
    #[arg(long, env = "DEIS_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// The platform secret (default: the one in the data directory).
    #[arg(long, env = "DEIS_PLATFORM_SECRET", hide_env_values = true)]
    platform_secret: Option<String>,
    /// This router's node id in the feed's logs and health.
    #[arg(long, default_value = "router")]
    node_id: String,
    /// Log every request (Heroku-style lines on stderr).
    #[arg(long)]
    access_log: bool,
    /// Send access lines to the apps' logs at this logger (http://host:port of `deis-workflow logger`).
    #[arg(long, env = "DEIS_LOGGER_URL")]
    logger_url: Option<String>,
    /// Worker threads serving connections [default: one per CPU].
    #[arg(long, env = "DEIS_ROUTER_WORKERS")]
    workers: Option<usize>,
    /// Serve plain HTTP/1.1 sockets with epoll alone, not io_uring.
    #[arg(long, env = "DEIS_ROUTER_NO_IO_URING", value_parser = BoolishValueParser::new())]
    no_io_uring: bool,
    #[command(flatten)]
    metrics: crate::metrics::MetricsOpts,
}

/// Runs only the edge router, for split deployments and benchmarks.
pub(crate) async fn router(args: RouterArgs) -> Result<()> {
    let secret = || -> Result<PlatformSecret> {
        Ok(match &args.platform_secret {
            Some(secret) => PlatformSecret::new(secret.clone())?,
            None => {
                let dir = crate::ensure_data_dir(args.data_dir.as_deref())?;
                PlatformSecret::load_or_create(&dir.join("platform-secret"))?
            }
        })
    };
    let token = match &args.xds_token {
        Some(token) => token.clone(),
        None => xds_token(&secret()?),
    };
    let log_metrics = deis_logger::LogMetrics::default();
    let access_log: Arc<dyn AccessLog> = if let Some(url) = &args.logger_url {
        Arc::new(AppRouterLog(crate::logging::remote(
            url,
            &secret()?,
            &log_metrics,
        )?))
    } else if args.access_log {
        Arc::new(deis_router::TracingAccessLog)
    } else {
        Arc::new(deis_router::NoAccessLog)
    };
    let mut options = RouterOptions::default();
    if let Some(workers) = args.workers {
        options.workers = workers.max(1);
    }
    options.io_uring = !args.no_io_uring;
    let router = Router::new(options, access_log);
    let _metrics = crate::metrics::Sources {
        router: Some(router.metrics()),
        logs: args.logger_url.is_some().then_some(&log_metrics),
        ..Default::default()
    }
    .serve(&args.metrics, crate::metrics::Component::Router)
    .await?;
    let running = RunningRouter::follow(
        router,
        format!("http://{}", args.xds_addr),
        token,
        args.node_id.clone(),
    );
    tracing::info!(feed = %args.xds_addr, "router following the routing feed");
    crate::shutdown_signal().await;
    running.shutdown().await;
    Ok(())
}
