//! The logger's wiring: in process for `up` and the controller, on its own
//! for the `logger` subcommand, or remote (`--logger-url`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args;
use deis_auth::PlatformSecret;
use deis_logger::forward::{ForwardOptions, ForwardServer};
use deis_logger::remote::RemoteLogger;
use deis_logger::service::LoggerApi;
use deis_logger::{DrainOptions, LogMetrics, Logger, StoreOptions};
use deis_scheduler::LogService;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// What the logger's token is derived for.
const LOGGER_TOKEN_PURPOSE: &str = "logger";

/// The token components present to the logger.
pub(crate) fn logger_token(secret: &PlatformSecret) -> String {
    secret.derive(LOGGER_TOKEN_PURPOSE)
}

#[derive(Args, Clone)]
pub(crate) struct LoggerOpts {
    /// Address of the logger's gRPC API (for components in other processes).
    #[arg(long, env = "DEIS_LOGGER_ADDR", default_value = "127.0.0.1:18001")]
    logger_addr: SocketAddr,
    /// Address of the Fluentd Forward listener (Fluent Bit or Fluentd ship container logs here).
    #[arg(long, env = "DEIS_FORWARD_ADDR", default_value = "127.0.0.1:24224")]
    forward_addr: SocketAddr,
    /// Log lines kept per app.
    #[arg(long, env = "DEIS_LOG_LINES", default_value_t = 1000)]
    log_lines: usize,
    /// Memory for log lines across all apps, in MiB.
    #[arg(long, env = "DEIS_LOG_MEMORY_MB", default_value_t = 256)]
    log_memory_mb: usize,
    /// PEM file of certificate authorities drains trust besides the system's.
    #[arg(long, env = "DEIS_DRAIN_CA_FILE")]
    drain_ca_file: Option<PathBuf>,
}

/// A logger serving its gRPC API and the Forward listener.
pub(crate) struct RunningLogger {
    pub(crate) logger: Arc<Logger>,
    pub(crate) grpc_addr: SocketAddr,
    pub(crate) forward: ForwardServer,
    grpc: JoinHandle<()>,
}

impl RunningLogger {
    pub(crate) async fn shutdown(self) {
        self.grpc.abort();
        self.forward.shutdown().await;
        self.logger.shutdown().await;
    }
}

impl LoggerOpts {
    fn drain_options(&self) -> Result<DrainOptions> {
        let mut options = DrainOptions::default();
        if let Some(path) = &self.drain_ca_file {
            let pem = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
            options.extra_roots = pem::parse_many(&pem)
                .with_context(|| format!("{} is not PEM", path.display()))?
                .into_iter()
                .filter(|block| block.tag() == "CERTIFICATE")
                .map(|block| block.into_contents().into())
                .collect();
        }
        Ok(options)
    }

    /// Starts a logger in this process with its gRPC API and Forward
    /// listener.
    pub(crate) async fn start(&self, token: String) -> Result<RunningLogger> {
        let store = StoreOptions {
            lines_per_app: self.log_lines,
            max_bytes: self.log_memory_mb.saturating_mul(1024 * 1024),
            ..StoreOptions::default()
        };
        let logger = Arc::new(Logger::new(store, self.drain_options()?));
        let grpc_listener = crate::bind(self.logger_addr, "logger").await?;
        let grpc_addr = grpc_listener.local_addr()?;
        let service = LoggerApi::new(logger.clone(), token).into_service();
        let grpc = tokio::spawn(async move {
            if let Err(e) = tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(crate::incoming::incoming(grpc_listener, "logger API"))
                .await
            {
                tracing::error!(error = %e, "the logger's gRPC API stopped");
            }
        });
        let forward_listener = TcpListener::bind(self.forward_addr)
            .await
            .with_context(|| format!("cannot listen for Forward on {}", self.forward_addr))?;
        let forward =
            deis_logger::forward::serve(forward_listener, logger.clone(), ForwardOptions::default())
                .await
                .context("cannot start the Forward listener")?;
        Ok(RunningLogger {
            logger,
            grpc_addr,
            forward,
            grpc,
        })
    }
}

/// The logger at `url` (another process), counting lines it cannot push
/// into `metrics`.
pub(crate) fn remote(
    url: &str,
    secret: &PlatformSecret,
    metrics: &LogMetrics,
) -> Result<Arc<dyn LogService>> {
    Ok(Arc::new(
        RemoteLogger::with_metrics(url, &logger_token(secret), metrics.clone())
            .context("cannot use the logger URL")?,
    ))
}

#[derive(Args, Clone)]
pub(crate) struct LoggerArgs {
    #[command(flatten)]
    logger: LoggerOpts,
    /// Where the platform keeps its state (for the platform secret).
    #[arg(long, env = "DEIS_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// The platform secret (default: the one in the data directory).
    #[arg(long, env = "DEIS_PLATFORM_SECRET", hide_env_values = true)]
    platform_secret: Option<String>,
    #[command(flatten)]
    metrics: crate::metrics::MetricsOpts,
}

/// Runs only the logger, for split deployments.
pub(crate) async fn logger(args: LoggerArgs) -> Result<()> {
    let secret = crate::platform_secret(
        args.platform_secret.as_deref(),
        &crate::ensure_data_dir(args.data_dir.as_deref())?,
    )?;
    let running = args.logger.start(logger_token(&secret)).await?;
    let _metrics = crate::metrics::Sources {
        logs: Some(running.logger.metrics()),
        ..Default::default()
    }
    .serve(&args.metrics, crate::metrics::Component::Logger)
    .await?;
    tracing::info!(grpc = %running.grpc_addr, forward = %running.forward.local_addr(), "logger listening");
    crate::shutdown_signal().await;
    running.shutdown().await;
    Ok(())
}
