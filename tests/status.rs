//! `deis-workflow status` against a running `up`: every component reported
//! healthy with its address; a drain that is down turns it degraded (exit
//! status 1) with a warning naming the app and the drain; a release feed
//! announcing a newer version is reported.

mod support;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use support::up::{UpServer, ok};

fn status(server: &UpServer, data: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_deis-workflow"))
        .args(["status", "--controller-url", &server.url])
        .arg("--data-dir")
        .arg(data)
        .args(extra)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

/// Answers every HTTP request on a loopback port with `body`.
fn release_feed(body: &'static str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/latest", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request);
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    url
}

#[test]
fn status_reports_every_component_and_what_is_degraded() {
    let data = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let server = UpServer::start(data.path(), None, &[]);

    let healthy = status(&server, data.path(), &[]);
    let text = String::from_utf8_lossy(&healthy.stdout);
    assert!(
        healthy.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&healthy.stderr)
    );
    for component in [
        "database",
        "runtime",
        "drains",
        "controller",
        "builder",
        "logger",
        "object storage",
        "routing feed",
        "router",
        "registry",
    ] {
        let line = text
            .lines()
            .find(|l| l.starts_with(component))
            .unwrap_or_else(|| panic!("no {component} in:\n{text}"));
        assert!(line.contains(" ok "), "{line}");
        assert!(line.contains(env!("CARGO_PKG_VERSION")), "{line}");
    }
    assert!(text.contains(&server.url), "the controller's address: {text}");
    assert!(!text.contains("Warnings"), "{text}");

    // A drain nobody listens on: degraded, with a warning that says where.
    ok(
        h,
        &[
            "register",
            &server.url,
            "--username=alice",
            "--password=s3cret-pw",
            "--email=a@example.com",
        ],
    );
    ok(h, &["create", "watched", "--no-remote"]);
    let dead = TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_url = format!("syslog://{}", dead.local_addr().unwrap());
    drop(dead);
    ok(h, &["drains:add", &dead_url, "-a", "watched"]);
    ok(h, &["config:set", "A=1", "-a", "watched"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    let degraded = loop {
        let out = status(&server, data.path(), &[]);
        if !out.status.success() {
            break out;
        }
        assert!(Instant::now() < deadline, "the dead drain never showed");
        std::thread::sleep(Duration::from_millis(100));
    };
    let text = String::from_utf8_lossy(&degraded.stdout);
    assert!(
        text.lines()
            .any(|l| l.starts_with("drains") && l.contains("degraded")),
        "{text}"
    );
    assert!(
        text.contains(&format!("drains: watched: the drain {dead_url} is down (")),
        "{text}"
    );
    assert!(
        String::from_utf8_lossy(&degraded.stderr)
            .contains("1 component needs attention (see the warnings above)"),
        "{}",
        String::from_utf8_lossy(&degraded.stderr)
    );
    ok(h, &["drains:remove", &dead_url, "-a", "watched"]);

    // JSON, and a release feed announcing a newer version.
    let feed = release_feed(r#"{"tag_name": "v99.1.0"}"#);
    let out = status(&server, data.path(), &["--json", "--release-feed", &feed]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["newer_version"], "99.1.0");
    assert_eq!(json["platform_version"], env!("CARGO_PKG_VERSION"));
    assert!(
        json["components"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["state"] == "ok")
    );
    let out = status(&server, data.path(), &["--release-feed", &feed]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("A newer release is out: 99.1.0"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // A data directory without the platform's secret is said to be the
    // wrong one, and no secret is made up in it.
    let other = tempfile::tempdir().unwrap();
    let refused = status(&server, other.path(), &[]);
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(
        said.contains(&format!(
            "There is no platform secret at {}; pass the running platform's --data-dir or --platform-secret.",
            other.path().join("platform-secret").display()
        )),
        "{said}"
    );
    assert!(!other.path().join("platform-secret").exists());
    // A wrong platform secret is refused.
    let refused = status(
        &server,
        other.path(),
        &["--platform-secret", "not-the-platform-secret-but-long-enough"],
    );
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("The platform secret does not match"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    server.interrupt();
}
