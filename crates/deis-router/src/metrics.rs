//! The router's request metrics: per virtual host, responses by status
//! class and a latency histogram, kept in plain atomics (the proxy path
//! pays two relaxed increments and a bucket search per request) and
//! encoded for Prometheus only when scraped.
//!
//! Exposed as `deis_router_requests_total{app,status}` (status is the
//! class: `2xx`, `4xx`, ...) and `deis_router_request_duration_seconds{app}`
//! (from the request's arrival to the end of its response). `app` is the
//! matched virtual host's name: the app for app hosts, a `deis.` name for
//! the platform's own. Requests that match no virtual host are not counted.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Unit;

/// Upper bounds of the latency buckets, in seconds (`+Inf` is implicit).
const BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0,
];
/// The same bounds in microseconds, for comparing without floats.
const BUCKETS_MICROS: [u64; 14] = [
    1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000, 5_000_000,
    10_000_000, 60_000_000,
];
const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// One virtual host's counters; shared by every route table naming it.
#[derive(Debug)]
pub(crate) struct VhostStats {
    name: Arc<str>,
    /// Responses by status class, 1xx to 5xx.
    responses: [AtomicU64; 5],
    /// Observations per bucket (not cumulative); the last is `+Inf`.
    buckets: [AtomicU64; BUCKETS.len() + 1],
    sum_micros: AtomicU64,
}

impl VhostStats {
    fn new(name: Arc<str>) -> VhostStats {
        VhostStats {
            name,
            responses: Default::default(),
            buckets: Default::default(),
            sum_micros: AtomicU64::new(0),
        }
    }

    /// Counts one answered request.
    pub(crate) fn record(&self, status: u16, elapsed: Duration) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.responses[class].fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        let bucket = BUCKETS_MICROS
            .iter()
            .position(|bound| micros <= *bound)
            .unwrap_or(BUCKETS.len());
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }
}

/// Every virtual host's counters, by name.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    vhosts: Mutex<HashMap<Arc<str>, Arc<VhostStats>>>,
}

impl Stats {
    /// The counters of the virtual host `name` (made on first use; called
    /// when a configuration is compiled, not per request).
    pub(crate) fn vhost(&self, name: &Arc<str>) -> Arc<VhostStats> {
        let mut vhosts = self.vhosts.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(
            vhosts
                .entry(Arc::clone(name))
                .or_insert_with(|| Arc::new(VhostStats::new(Arc::clone(name)))),
        )
    }

    /// Forgets virtual hosts no configuration (nor request in flight) uses
    /// any more, so removed apps do not stay in the metrics forever.
    pub(crate) fn prune(&self) {
        let mut vhosts = self.vhosts.lock().unwrap_or_else(PoisonError::into_inner);
        vhosts.retain(|_, stats| Arc::strong_count(stats) > 1);
    }

    fn sorted(&self) -> Vec<Arc<VhostStats>> {
        let vhosts = self.vhosts.lock().unwrap_or_else(PoisonError::into_inner);
        let mut list: Vec<Arc<VhostStats>> = vhosts.values().cloned().collect();
        drop(vhosts);
        list.sort_by(|a, b| a.name.cmp(&b.name));
        list
    }
}

/// The router's request metrics, for a Prometheus registry
/// (`registry.register_collector(Box::new(router.metrics()))`).
#[derive(Clone, Debug)]
pub struct RouterMetrics(pub(crate) Arc<Stats>);

impl Collector for RouterMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let vhosts = self.0.sorted();
        {
            let mut family = encoder.encode_descriptor(
                "deis_router_requests",
                "HTTP requests the router answered, by virtual host (app) and status class.",
                None,
                MetricType::Counter,
            )?;
            for stats in &vhosts {
                for (class, count) in CLASSES.iter().zip(&stats.responses) {
                    let count = count.load(Ordering::Relaxed);
                    if count == 0 {
                        continue;
                    }
                    let labels = [("app", &*stats.name), ("status", *class)];
                    let counter = prometheus_client::metrics::counter::ConstCounter::new(count);
                    counter.encode(family.encode_family(&labels)?)?;
                }
            }
        }
        let mut family = encoder.encode_descriptor(
            "deis_router_request_duration",
            "Time from a request's arrival at the router to the end of its response, by virtual host (app).",
            Some(&Unit::Seconds),
            MetricType::Histogram,
        )?;
        for stats in &vhosts {
            // Per bucket, not cumulative: the encoder adds them up.
            let buckets: Vec<(f64, u64)> = BUCKETS
                .iter()
                .chain([f64::INFINITY].iter())
                .zip(&stats.buckets)
                .map(|(bound, count)| (*bound, count.load(Ordering::Relaxed)))
                .collect();
            let count: u64 = buckets.iter().map(|(_, n)| n).sum();
            if count == 0 {
                continue;
            }
            let sum = stats.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
            let labels = [("app", &*stats.name)];
            family
                .encode_family(&labels)?
                .encode_histogram::<NoLabelSet>(sum, count, &buckets, None)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::registry::Registry;

    fn scrape(metrics: &RouterMetrics) -> String {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(metrics.clone()));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        text
    }

    #[test]
    fn counts_by_class_and_buckets_cumulatively() {
        let stats = Arc::new(Stats::default());
        let app = stats.vhost(&Arc::from("myapp"));
        app.record(200, Duration::from_micros(800));
        app.record(204, Duration::from_millis(3));
        app.record(503, Duration::from_secs(120));
        app.record(0, Duration::ZERO);
        let text = scrape(&RouterMetrics(Arc::clone(&stats)));
        for expected in [
            "deis_router_requests_total{app=\"myapp\",status=\"2xx\"} 2\n",
            "deis_router_requests_total{app=\"myapp\",status=\"5xx\"} 1\n",
            // Out-of-range statuses count in the nearest class.
            "deis_router_requests_total{app=\"myapp\",status=\"1xx\"} 1\n",
            "deis_router_request_duration_seconds_bucket{le=\"0.001\",app=\"myapp\"} 2\n",
            "deis_router_request_duration_seconds_bucket{le=\"0.005\",app=\"myapp\"} 3\n",
            "deis_router_request_duration_seconds_bucket{le=\"60.0\",app=\"myapp\"} 3\n",
            "deis_router_request_duration_seconds_bucket{le=\"+Inf\",app=\"myapp\"} 4\n",
            "deis_router_request_duration_seconds_count{app=\"myapp\"} 4\n",
            "deis_router_request_duration_seconds_sum{app=\"myapp\"} 120.0038\n",
        ] {
            assert!(text.contains(expected), "{expected:?} not in:\n{text}");
        }
        assert!(!text.contains("status=\"3xx\""), "{text}");
    }

    #[test]
    fn unused_virtual_hosts_are_pruned() {
        let stats = Stats::default();
        let kept = stats.vhost(&Arc::from("kept"));
        drop(stats.vhost(&Arc::from("gone")));
        stats.prune();
        let names: Vec<String> = stats.sorted().iter().map(|s| s.name.to_string()).collect();
        assert_eq!(names, ["kept"]);
        assert!(Arc::ptr_eq(&kept, &stats.vhost(&Arc::from("kept"))));
    }
}
