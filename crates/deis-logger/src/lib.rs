//! The logger: every app's log lines in one place.
//!
//! Lines arrive from the runtime and the router (in process through
//! [`deis_scheduler::LogSink`], or over gRPC: [`service`]) and from Fluentd
//! or Fluent Bit over the Forward protocol ([`forward`]). Each app keeps a
//! ring of its newest lines ([`store`]), bounded per app and in total;
//! followers get the tail and then every new line; per-app [`drains`] ship
//! lines to syslog or HTTPS endpoints. [`remote`] is the same logger seen
//! from another process.

use std::sync::Arc;

use deis_scheduler::{DrainSpec, DrainStats, LogError, LogFollow, LogLine, LogQuery, LogService, LogSink};

pub mod drains;
pub mod forward;
pub mod metrics;
pub mod remote;
pub mod service;
pub mod store;

pub use drains::{DrainOptions, Drains};
pub use metrics::LogMetrics;
pub use store::{LogStore, StoreOptions, StoreUsage};

/// The logger in this process: the store and the drains.
pub struct Logger {
    store: LogStore,
    drains: Drains,
    metrics: LogMetrics,
}

impl Logger {
    /// A logger keeping what `store` says and delivering to drains as
    /// `drains` says.
    pub fn new(store: StoreOptions, drains: DrainOptions) -> Logger {
        Logger::with_metrics(store, drains, LogMetrics::default())
    }

    /// [`Logger::new`], counting into `metrics`.
    pub fn with_metrics(store: StoreOptions, drains: DrainOptions, metrics: LogMetrics) -> Logger {
        metrics.ingesting();
        Logger {
            store: LogStore::with_metrics(store, metrics.clone()),
            drains: Drains::with_metrics(drains, metrics.clone()),
            metrics,
        }
    }

    /// Takes a line already shared (the gRPC and Forward ingest paths).
    pub fn ingest(&self, line: Arc<LogLine>) {
        self.metrics.ingested(line.source);
        self.drains.offer(&line);
        self.store.push(line);
    }

    /// Its counters, for a Prometheus registry.
    pub fn metrics(&self) -> &LogMetrics {
        &self.metrics
    }

    /// What the store holds.
    pub fn usage(&self) -> StoreUsage {
        self.store.usage()
    }

    /// Stops the drains' delivery tasks.
    pub async fn shutdown(&self) {
        self.drains.shutdown().await;
    }
}

/// A drain URL the logger can deliver to, or why not (one sentence).
pub(crate) fn check_drain_url(url: &str) -> Result<(), LogError> {
    drains::parse_drain_url(url)
        .map(drop)
        .map_err(|e| LogError::Invalid(format!("That drain URL cannot be used: {e}.")))
}

impl LogSink for Logger {
    fn send(&self, line: LogLine) {
        self.ingest(Arc::new(line));
    }
}

#[async_trait::async_trait]
impl LogService for Logger {
    fn check_drain_url(&self, url: &str) -> Result<(), LogError> {
        check_drain_url(url)
    }

    async fn tail(&self, app: &str, query: &LogQuery) -> Result<Vec<Arc<LogLine>>, LogError> {
        Ok(self.store.tail(app, query))
    }

    async fn follow(&self, app: &str, query: &LogQuery) -> Result<LogFollow, LogError> {
        Ok(self.store.follow(app, query))
    }

    async fn set_drains(&self, app: &str, drains: &[DrainSpec]) -> Result<(), LogError> {
        for drain in drains {
            self.check_drain_url(&drain.url)?;
        }
        self.drains.set(app, drains);
        Ok(())
    }

    async fn drain_stats(&self, app: &str) -> Result<Vec<DrainStats>, LogError> {
        Ok(self.drains.stats(app))
    }

    async fn forget(&self, app: &str) -> Result<(), LogError> {
        self.store.forget(app);
        self.drains.forget(app);
        Ok(())
    }
}
