//! The builder's Prometheus metrics: `deis_builds_total{outcome}` and
//! `deis_build_duration_seconds{outcome}` (`succeeded` or `failed`), one
//! per push to a deploying branch, from the start of the build to the
//! release (or the failure).

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

/// Build durations, in seconds (the default timeout is 15 minutes).
const BUCKETS: [f64; 12] = [
    1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

/// Builds by outcome and their durations. Cheap to clone (clones share).
#[derive(Clone, Debug)]
pub(crate) struct BuildMetrics {
    builds: Family<OutcomeLabels, Counter>,
    durations: Family<OutcomeLabels, Histogram, fn() -> Histogram>,
}

impl BuildMetrics {
    pub(crate) fn new() -> BuildMetrics {
        BuildMetrics {
            builds: Family::default(),
            durations: Family::new_with_constructor(|| Histogram::new(BUCKETS)),
        }
    }

    pub(crate) fn register(&self, registry: &mut Registry) {
        registry.register(
            "deis_builds",
            "Builds of pushes, by outcome (succeeded, failed)",
            self.builds.clone(),
        );
        registry.register_with_unit(
            "deis_build_duration",
            "Time from a push's build starting to its release (or failure), by outcome",
            Unit::Seconds,
            self.durations.clone(),
        );
    }

    /// Counts a build that took `elapsed`.
    pub(crate) fn built(&self, succeeded: bool, elapsed: Duration) {
        let labels = OutcomeLabels {
            outcome: if succeeded { "succeeded" } else { "failed" },
        };
        self.builds.get_or_create(&labels).inc();
        self.durations
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_are_counted_by_outcome() {
        let metrics = BuildMetrics::new();
        metrics.built(true, Duration::from_secs(3));
        metrics.built(false, Duration::from_millis(500));
        metrics.built(true, Duration::from_secs(45));
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        for expected in [
            "deis_builds_total{outcome=\"succeeded\"} 2\n",
            "deis_builds_total{outcome=\"failed\"} 1\n",
            "deis_build_duration_seconds_sum{outcome=\"succeeded\"} 48.0\n",
            "deis_build_duration_seconds_bucket{le=\"5.0\",outcome=\"succeeded\"} 1\n",
            "deis_build_duration_seconds_bucket{le=\"1.0\",outcome=\"failed\"} 1\n",
        ] {
            assert!(text.contains(expected), "{expected:?} not in:\n{text}");
        }
    }
}
