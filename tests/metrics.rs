//! `/metrics` on `deis-workflow up`, end to end: after a push, a request
//! through the router, a failed call and some logs, Prometheus's own Python
//! client (PyPI `prometheus-client`) scrapes the endpoint over HTTP in both
//! formats, parses each with its strict parser, and the samples say what
//! happened.

mod support;

use std::collections::HashMap;
use std::process::Command;
use std::time::{Duration, Instant};

use support::up::{UpServer, deis, http_get, http_get_host, ok, register_and_push};

/// Scrapes `/metrics` as OpenMetrics and as Prometheus text, parses both,
/// and prints every OpenMetrics sample as `name|k=v,k=v|value`.
const SCRAPE: &str = r#"
import sys, urllib.request
from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics
from prometheus_client.parser import text_string_to_metric_families as prometheus

def get(accept):
    request = urllib.request.Request(sys.argv[1], headers={"Accept": accept} if accept else {})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.headers["Content-Type"], response.read().decode()

kind, text = get("application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1")
assert kind == "application/openmetrics-text; version=1.0.0; charset=utf-8", kind
families = list(openmetrics(text))
kind, plain = get(None)
assert kind.startswith("text/plain; version=0.0.4"), kind
assert {f.name for f in prometheus(plain)} >= {f.name for f in families}
for family in families:
    for sample in family.samples:
        labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
        print(f"{sample.name}|{labels}|{sample.value}")
"#;

/// Samples by `name|labels`.
fn scrape(server: &UpServer) -> HashMap<String, f64> {
    let python = std::env::var("DEIS_PYTHON")
        .expect("DEIS_PYTHON: run buildtools/test, which installs prometheus-client");
    let out = Command::new(python)
        .args(["-c", SCRAPE, &format!("http://{}/metrics", server.metrics_addr)])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the scrape did not parse: {}{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .filter_map(|line| {
            let (series, value) = line.rsplit_once('|')?;
            Some((series.to_owned(), value.parse().ok()?))
        })
        .collect()
}

fn sample(samples: &HashMap<String, f64>, series: &str) -> f64 {
    *samples.get(series).unwrap_or_else(|| {
        let mut names: Vec<&String> = samples.keys().collect();
        names.sort();
        panic!("no {series:?} among:\n{names:#?}")
    })
}

#[test]
fn metrics_tell_what_the_platform_did_in_prometheus_formats() {
    let data = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let server = UpServer::start(data.path(), None, &[]);
    let _repo = register_and_push(&server, h, "python", "metered");
    let (status, _) = http_get_host(server.http_port, "metered.localhost", "/counted").unwrap();
    assert_eq!(status, 200);
    assert!(!deis(h, &["info", "-a", "nosuchapp"]).status.success());
    ok(h, &["logs", "-a", "metered"]);

    // The access line and its counters land when the response ends.
    let deadline = Instant::now() + Duration::from_secs(10);
    let samples = loop {
        let samples = scrape(&server);
        let routed = samples.get("deis_router_requests_total|app=metered,status=2xx");
        if routed.is_some_and(|n| *n >= 1.0) || Instant::now() > deadline {
            break samples;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let at_least_one = [
        // The router, per app and status class, with latencies.
        "deis_router_requests_total|app=metered,status=2xx",
        "deis_router_request_duration_seconds_count|app=metered",
        "deis_router_request_duration_seconds_bucket|app=metered,le=+Inf",
        // The API, per method and status.
        "deis_grpc_requests_total|code=OK,method=CreateApp,service=deis.v2.AppsService",
        "deis_grpc_requests_total|code=NotFound,method=GetApp,service=deis.v2.AppsService",
        "deis_grpc_requests_total|code=OK,method=GetLogs,service=deis.v2.AppsService",
        "deis_grpc_request_duration_seconds_count|method=CreateApp,service=deis.v2.AppsService",
        // The builder's internal calls, and the build and deploy they made.
        "deis_grpc_requests_total|code=OK,method=PublishBuild,service=deis.internal.v1.InternalService",
        "deis_builds_total|outcome=succeeded",
        "deis_build_duration_seconds_count|outcome=succeeded",
        "deis_deploys_total|outcome=succeeded",
        "deis_deploy_duration_seconds_count|outcome=succeeded",
        // The app's process is up.
        "deis_processes|state=up",
        // Log lines from the app, the router and the platform.
        "deis_log_lines_total|source=app",
        "deis_log_lines_total|source=router",
        "deis_log_lines_total|source=deis",
        // The embedded router follows the feed and accepted its config.
        "deis_xds_clients|",
        "deis_xds_acks_total|",
        // The process's own figures, under the usual names.
        "process_open_fds|",
        "process_max_fds|",
        "process_resident_memory_bytes|",
    ];
    for series in at_least_one {
        assert!(
            sample(&samples, series) >= 1.0,
            "{series} = {}",
            sample(&samples, series)
        );
    }
    assert!(sample(&samples, "process_cpu_seconds_total|") > 0.0);
    assert!(sample(&samples, "process_open_fds|") < sample(&samples, "process_max_fds|"));
    for series in [
        "deis_builds_total|outcome=failed",
        "deis_deploys_total|outcome=failed",
    ] {
        assert!(!samples.contains_key(series), "{series} should not exist yet");
    }
    for series in [
        "deis_processes|state=crashed",
        "deis_log_lines_dropped_total|reason=drain_buffer_full",
        "deis_log_lines_dropped_total|reason=remote_push",
        "deis_xds_nacks_total|",
    ] {
        assert_eq!(sample(&samples, series), 0.0, "{series}");
    }
    // Histograms are cumulative and end at their count.
    assert_eq!(
        sample(
            &samples,
            "deis_router_request_duration_seconds_bucket|app=metered,le=+Inf"
        ),
        sample(&samples, "deis_router_request_duration_seconds_count|app=metered"),
    );

    // Only /metrics is served.
    let port: u16 = server
        .metrics_addr
        .rsplit_once(':')
        .and_then(|(_, port)| port.parse().ok())
        .unwrap();
    assert_eq!(http_get(port, "/").map(|(status, _)| status), Some(404));
    assert_eq!(http_get(port, "/metrics/x").map(|(status, _)| status), Some(404));
    server.interrupt();
}
