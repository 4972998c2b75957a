//! The whole platform as one binary (`deis-workflow up` with the builder and
//! the local runtime), driven by the `deis` CLI, git and ssh: a pushed app
//! runs, config changes roll out, a failing health check keeps a release
//! out, an SSH connection that never logs in is closed, and after SIGKILL
//! of the platform every app is back within 10 s with no duplicate
//! processes.

mod support;

use std::io::Read;
use std::time::{Duration, Instant};

use support::up::{UpServer, app_processes, deis, http_get, ok, register_and_push};

/// Waits until the app's web processes are exactly `count` and all answer
/// `GET /` with a body containing `expect`; returns their pids.
fn wait_for_web(app: &str, count: usize, expect: &str, within: Duration) -> Vec<i32> {
    let deadline = Instant::now() + within;
    loop {
        let web: Vec<(i32, String, u16)> = app_processes(app)
            .into_iter()
            .filter(|(_, dyno, _)| dyno.starts_with("web."))
            .collect();
        let answering = web
            .iter()
            .filter(|(_, _, port)| {
                http_get(*port, "/").is_some_and(|(s, body)| s == 200 && body.contains(expect))
            })
            .count();
        if web.len() == count && answering == count {
            return web.into_iter().map(|(pid, _, _)| pid).collect();
        }
        assert!(
            Instant::now() < deadline,
            "{app}: wanted {count} web processes answering {expect:?}, have {web:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn push_run_configure_and_survive_a_sigkill() {
    let data = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let server = UpServer::start(
        data.path(),
        None,
        &["--deploy-timeout", "8", "--builder-login-grace", "2"],
    );
    // With a 2 s login grace, a connection that never logs in is closed,
    // and the push below, logged in, outlives it.
    let mut silent = std::net::TcpStream::connect(("127.0.0.1", server.builder_port)).unwrap();
    let _repo = register_and_push(&server, h, "python", "pyapp");
    wait_for_web("pyapp", 1, "Hello from Python", Duration::from_secs(5));

    // A config change is a new release, rolled out.
    ok(h, &["config:set", "GREETING=hi", "-a", "pyapp"]);
    wait_for_web("pyapp", 1, "Hello from Python hi", Duration::from_secs(5));

    // A readiness check on a path answering 500 keeps the release out; the
    // old one keeps serving.
    let out = deis(
        h,
        &[
            "healthchecks:set",
            "readiness",
            "httpGet",
            "5000",
            "--path=/status/500",
            "--type=web",
            "-a",
            "pyapp",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("did not become ready"),
        "{stderr}"
    );
    let releases = ok(h, &["releases", "-a", "pyapp"]);
    assert!(
        releases
            .lines()
            .any(|l| l.starts_with("v4") && l.contains("failed")),
        "{releases}"
    );
    wait_for_web("pyapp", 1, "Hello from Python hi", Duration::from_secs(2));

    ok(h, &["ps:scale", "web=2", "-a", "pyapp"]);
    let before = wait_for_web("pyapp", 2, "hi", Duration::from_secs(10));
    let ps = ok(h, &["ps", "-a", "pyapp"]);
    assert!(
        ps.contains("pyapp-web-1") && ps.contains("pyapp-web-2") && ps.contains("up"),
        "{ps}"
    );
    let logs = ok(h, &["logs", "-a", "pyapp"]);
    assert!(
        logs.contains("pyapp[web.1]: ") && logs.contains("GET / HTTP"),
        "app output reaches deis logs:\n{logs}"
    );

    silent.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut received = Vec::new();
    let closed = silent.read_to_end(&mut received).is_ok();
    assert!(
        closed && received.starts_with(b"SSH-2.0-deis-builder\r\n"),
        "a connection that never logged in: closed {closed}, received {received:?}"
    );

    // SIGKILL: the app processes outlive the platform, then the next start
    // kills them and brings the app back at its formation.
    server.sigkill();
    assert_eq!(app_processes("pyapp").len(), 2, "the orphans are still there");
    let started = Instant::now();
    let server = UpServer::start(data.path(), None, &[]);
    let after = wait_for_web("pyapp", 2, "hi", Duration::from_secs(10));
    println!("back after {:?}", started.elapsed());
    assert!(
        before.iter().all(|pid| !after.contains(pid)),
        "the old processes are gone"
    );
    assert_eq!(app_processes("pyapp").len(), 2, "no duplicates");

    // Ctrl-C stops the apps too.
    server.interrupt();
    assert!(app_processes("pyapp").is_empty());
}
