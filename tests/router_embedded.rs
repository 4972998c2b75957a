//! The embedded edge router in `deis-workflow up`, reading the routing feed
//! like Envoy does: an app answers at its URLs, routing follows the CLI,
//! deploys and restarts under load drop no request, a process that dies is
//! taken out of rotation, slow requests get 504, and every request is a
//! router line in `deis logs`.

mod support;

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use support::up::{
    UpServer, app_processes, feed_is_healthy, free_port, http_get_host, ok, register_and_push, ssh_banner,
};

fn fixture(name: &str) -> String {
    format!(
        "{}/crates/deis-core/tests/fixtures/certs/{name}",
        std::env::var("CARGO_MANIFEST_DIR").expect("tests run under cargo")
    )
}

/// Waits until `check` holds; returns how long that took.
fn until(within: Duration, what: &str, check: impl Fn() -> bool) -> Duration {
    let started = Instant::now();
    while !check() {
        assert!(started.elapsed() < within, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
    started.elapsed()
}

fn status(port: u16, host: &str, path: &str) -> u16 {
    http_get_host(port, host, path).map_or(0, |(s, _)| s)
}

/// Requests from four threads until stopped; counts answers and failures.
/// Concurrent clients of the load.
const LOAD_THREADS: usize = 4;

struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    threads: Vec<std::thread::JoinHandle<Vec<u16>>>,
}

impl Load {
    fn start(port: u16, host: &'static str) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let threads = (0..LOAD_THREADS)
            .map(|_| {
                let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
                std::thread::spawn(move || {
                    let mut failures = Vec::new();
                    while !stop.load(Ordering::Relaxed) {
                        match status(port, host, "/") {
                            200 => ok.fetch_add(1, Ordering::Relaxed),
                            other => {
                                failures.push(other);
                                failed.fetch_add(1, Ordering::Relaxed)
                            }
                        };
                    }
                    failures
                })
            })
            .collect();
        Load {
            stop,
            ok,
            failed,
            threads,
        }
    }

    fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }

    /// Stops; returns (answered, failure statuses).
    fn finish(self) -> (u64, Vec<u16>) {
        self.stop.store(true, Ordering::Relaxed);
        let failures = self.threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
        (self.ok.load(Ordering::Relaxed), failures)
    }
}

#[test]
fn the_embedded_router_routes_what_the_platform_says() {
    let data = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let https = free_port();
    let ssh_port = free_port();
    let server = UpServer::start(
        data.path(),
        None,
        &[
            "--router-port",
            &free_port().to_string(),
            "--router-https-port",
            &https.to_string(),
            "--router-request-timeout",
            "2",
            "--router-builder-port",
            &ssh_port.to_string(),
        ],
    );
    let http = server.http_port;
    assert_eq!(status(http, "nothing.localhost", "/"), 404);
    assert_eq!(status(http, "nothing.localhost", "/healthz"), 200);

    assert!(
        ssh_banner(ssh_port).starts_with("SSH-2.0-"),
        "the builder answers through the router's TCP listener"
    );
    let _repo = register_and_push(&server, h, "python", "edge");
    let (code, body) = http_get_host(http, "edge.localhost", "/headers").unwrap();
    assert_eq!(code, 200);
    for header in [
        "x-forwarded-for: 127.0.0.1",
        "x-forwarded-proto: http",
        "x-request-id: ",
    ] {
        assert!(body.contains(header), "{header} missing from:\n{body}");
    }
    assert!(body.contains(&format!("x-forwarded-port: {http}")), "{body}");

    ok(h, &["domains:add", "www.example.com", "-a", "edge"]);
    let took = until(Duration::from_secs(1), "custom domain", || {
        status(http, "www.example.com", "/") == 200
    });
    println!("custom domain routed by the embedded router after {took:?}");

    ok(h, &["maintenance:on", "-a", "edge"]);
    until(Duration::from_secs(1), "maintenance", || {
        http_get_host(http, "edge.localhost", "/").is_some_and(|(s, b)| s == 503 && b.contains("maintenance"))
    });
    ok(h, &["maintenance:off", "-a", "edge"]);
    until(Duration::from_secs(1), "maintenance off", || {
        status(http, "edge.localhost", "/") == 200
    });
    ok(h, &["whitelist:add", "10.0.0.0/8", "-a", "edge"]);
    until(Duration::from_secs(1), "whitelist", || {
        status(http, "edge.localhost", "/") == 403
    });
    ok(h, &["whitelist:remove", "10.0.0.0/8", "-a", "edge"]);
    until(Duration::from_secs(1), "whitelist removed", || {
        status(http, "edge.localhost", "/") == 200
    });

    // The attached certificate is served for its name (curl verifies it).
    ok(
        h,
        &["certs:add", "www", &fixture("san.crt"), &fixture("rsa-pkcs1.key")],
    );
    ok(h, &["certs:attach", "www", "www.example.com"]);
    let resolve = format!("www.example.com:{https}:127.0.0.1");
    let url = format!("https://www.example.com:{https}/");
    let san = fixture("san.crt");
    until(Duration::from_secs(2), "certificate served", || {
        let out = Command::new("curl")
            .args(["-s", "-m", "5", "--cacert", &san, "--resolve", &resolve, &url])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim() == "Hello from Python"
    });
    ok(h, &["tls:enable", "-a", "edge"]);
    until(Duration::from_secs(1), "HTTPS redirect", || {
        status(http, "www.example.com", "/") == 301
    });
    ok(h, &["tls:disable", "-a", "edge"]);
    until(Duration::from_secs(1), "no redirect", || {
        status(http, "edge.localhost", "/") == 200
    });

    // Deploys and a restart under load through the router: nothing fails.
    ok(h, &["ps:scale", "web=2", "-a", "edge"]);
    let load = Load::start(http, "edge.localhost");
    until(Duration::from_secs(5), "load running", || {
        load.ok.load(Ordering::Relaxed) > 50
    });
    ok(h, &["config:set", "GREETING=one", "-a", "edge"]);
    ok(h, &["config:set", "GREETING=two", "-a", "edge"]);
    ok(h, &["ps:restart", "-a", "edge"]);
    std::thread::sleep(Duration::from_millis(500));
    let before_kill = load.failed();
    assert_eq!(before_kill, 0, "requests failed during deploys");

    // A process killed mid-load: the router retries on the other one and
    // the endpoint leaves the rotation.
    let victim = app_processes("edge")
        .into_iter()
        .find(|(_, dyno, _)| dyno == "web.1")
        .expect("web.1 runs");
    Command::new("kill")
        .args(["-9", &victim.0.to_string()])
        .status()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let (answered, failures) = load.finish();
    println!("{answered} requests under load; failures after the kill: {failures:?}");
    // A GET in flight on the killed process is sent again to the other
    // one (reset before any answer); only a response cut off mid-body could
    // still fail, and the hundreds of requests after must all succeed.
    assert!(
        failures.len() <= 2,
        "requests in flight on the killed process are retried: {failures:?}"
    );

    // The request timeout (2 s here) gives 504.
    let started = Instant::now();
    assert_eq!(status(http, "edge.localhost", "/sleep/4"), 504);
    assert!(started.elapsed() < Duration::from_millis(3500));

    let logs = ok(h, &["logs", "-a", "edge", "-n", "500"]);
    assert!(
        logs.lines().any(
            |l| l.contains("edge[router]: at=info method=GET path=\"/\" host=edge.localhost")
                && l.contains("status=200")
        ),
        "router lines in deis logs:\n{logs}"
    );
    assert!(
        logs.lines()
            .any(|l| l.contains("edge[router]: at=error code=H12")),
        "the timeout is logged as H12:\n{logs}"
    );
    assert!(
        feed_is_healthy(&server.xds_addr),
        "a client rejects its routing config"
    );
    server.interrupt();
}
