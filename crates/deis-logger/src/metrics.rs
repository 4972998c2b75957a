//! The logger's counters for Prometheus: `deis_log_lines_total{source}`
//! (lines ingested: `app`, `router`, `deis`) and
//! `deis_log_lines_dropped_total{reason}`:
//!
//! - `follower_lag`: lines a `deis logs -f` follower missed because it read
//!   too slowly;
//! - `drain_buffer_full`: lines a drain could not buffer (its endpoint was
//!   down or slow, or its URL was refused);
//! - `remote_push`: lines a [`crate::remote::RemoteLogger`] could not hand
//!   to the logger (unreachable or slow).
//!
//! Plain atomics, read only when scraped: ingest pays one relaxed increment
//! per line.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use deis_scheduler::LogSource;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;

/// Why lines were dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    /// A follower fell behind.
    FollowerLag,
    /// A drain's buffer was full.
    DrainBufferFull,
    /// A remote logger client could not push.
    RemotePush,
}

const SOURCES: [&str; 3] = ["app", "router", "deis"];
const REASONS: [&str; 3] = ["follower_lag", "drain_buffer_full", "remote_push"];

/// The logger's counters. Cheap to clone (clones share the counters): give
/// the same one to the [`crate::Logger`] or [`crate::remote::RemoteLogger`]
/// of a process and register it once.
#[derive(Clone, Debug, Default)]
pub struct LogMetrics(Arc<Counts>);

#[derive(Debug, Default)]
struct Counts {
    /// Whether a logger counts into these (a process that only pushes to a
    /// remote logger has no lines to show).
    ingests: AtomicBool,
    lines: [AtomicU64; 3],
    dropped: [AtomicU64; 3],
}

fn source_index(source: LogSource) -> usize {
    match source {
        LogSource::App => 0,
        LogSource::Router => 1,
        LogSource::Platform => 2,
    }
}

fn reason_index(reason: DropReason) -> usize {
    match reason {
        DropReason::FollowerLag => 0,
        DropReason::DrainBufferFull => 1,
        DropReason::RemotePush => 2,
    }
}

impl LogMetrics {
    /// A logger ingests into these: `deis_log_lines_total` is exposed.
    pub(crate) fn ingesting(&self) {
        self.0.ingests.store(true, Ordering::Relaxed);
    }

    /// Counts a line ingested.
    pub(crate) fn ingested(&self, source: LogSource) {
        self.0.lines[source_index(source)].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts `lines` dropped.
    pub(crate) fn dropped(&self, reason: DropReason, lines: u64) {
        self.0.dropped[reason_index(reason)].fetch_add(lines, Ordering::Relaxed);
    }

    /// Lines ingested from `source` so far.
    pub fn lines(&self, source: LogSource) -> u64 {
        self.0.lines[source_index(source)].load(Ordering::Relaxed)
    }

    /// Lines dropped for `reason` so far.
    pub fn dropped_lines(&self, reason: DropReason) -> u64 {
        self.0.dropped[reason_index(reason)].load(Ordering::Relaxed)
    }
}

impl Collector for LogMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        if self.0.ingests.load(Ordering::Relaxed) {
            let mut family = encoder.encode_descriptor(
                "deis_log_lines",
                "Log lines the logger ingested, by source (app, router, deis).",
                None,
                MetricType::Counter,
            )?;
            for (source, count) in SOURCES.iter().zip(&self.0.lines) {
                let counter = ConstCounter::new(count.load(Ordering::Relaxed));
                counter.encode(family.encode_family(&[("source", *source)])?)?;
            }
        }
        let mut family = encoder.encode_descriptor(
            "deis_log_lines_dropped",
            "Log lines dropped: a follower too slow (follower_lag), a drain's buffer full (drain_buffer_full), \
             or a remote logger out of reach (remote_push).",
            None,
            MetricType::Counter,
        )?;
        for (reason, count) in REASONS.iter().zip(&self.0.dropped) {
            let counter = ConstCounter::new(count.load(Ordering::Relaxed));
            counter.encode(family.encode_family(&[("reason", *reason)])?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::registry::Registry;

    #[test]
    fn every_source_and_reason_is_exposed() {
        let metrics = LogMetrics::default();
        metrics.ingesting();
        metrics.ingested(LogSource::App);
        metrics.ingested(LogSource::App);
        metrics.ingested(LogSource::Platform);
        metrics.dropped(DropReason::FollowerLag, 7);
        let mut registry = Registry::default();
        registry.register_collector(Box::new(metrics.clone()));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        for expected in [
            "# TYPE deis_log_lines counter\n",
            "deis_log_lines_total{source=\"app\"} 2\n",
            "deis_log_lines_total{source=\"router\"} 0\n",
            "deis_log_lines_total{source=\"deis\"} 1\n",
            "deis_log_lines_dropped_total{reason=\"follower_lag\"} 7\n",
            "deis_log_lines_dropped_total{reason=\"drain_buffer_full\"} 0\n",
            "deis_log_lines_dropped_total{reason=\"remote_push\"} 0\n",
        ] {
            assert!(text.contains(expected), "{expected:?} not in:\n{text}");
        }
        assert_eq!(metrics.lines(LogSource::App), 2);
        assert_eq!(metrics.dropped_lines(DropReason::FollowerLag), 7);
    }

    #[tokio::test]
    async fn a_logger_counts_what_it_ingests_and_what_its_drains_drop() {
        use deis_scheduler::{DrainSpec, LogLine, LogService, LogSink};
        let metrics = LogMetrics::default();
        let drains = crate::DrainOptions {
            buffer_lines: 2,
            ..Default::default()
        };
        let logger = crate::Logger::with_metrics(Default::default(), drains, metrics.clone());
        // Nothing listens there: the buffer fills and stays full.
        let drain = DrainSpec {
            id: "d".into(),
            url: "syslog://127.0.0.1:9".into(),
        };
        logger.set_drains("a", &[drain]).await.unwrap();
        for source in [
            LogSource::App,
            LogSource::App,
            LogSource::Router,
            LogSource::Platform,
            LogSource::App,
        ] {
            logger.send(LogLine {
                time: chrono::Utc::now(),
                app: "a".into(),
                source,
                process: "web.1".into(),
                release: "v2".into(),
                text: "hi".into(),
            });
        }
        assert_eq!(metrics.lines(LogSource::App), 3);
        assert_eq!(metrics.lines(LogSource::Router), 1);
        assert_eq!(metrics.lines(LogSource::Platform), 1);
        assert_eq!(metrics.dropped_lines(DropReason::DrainBufferFull), 3);
        logger.shutdown().await;
    }

    #[test]
    fn without_a_logger_only_drops_are_exposed() {
        let metrics = LogMetrics::default();
        metrics.dropped(DropReason::RemotePush, 3);
        let mut registry = Registry::default();
        registry.register_collector(Box::new(metrics));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(!text.contains("deis_log_lines_total"), "{text}");
        assert!(
            text.contains("deis_log_lines_dropped_total{reason=\"remote_push\"} 3\n"),
            "{text}"
        );
    }
}
