//! The logger end to end on `deis-workflow up`: a deployed app's output,
//! the router's access lines and platform events in `deis logs`; `-f`
//! following live; filters; records from a real Fluentd Forward client
//! (PyPI `fluent-logger`); a syslog drain receiving the app's lines; and
//! a stranger kept out.

mod support;

use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use support::up::{UpServer, deis, deis_binary, http_get_host, ok, register_and_push};

/// Reads octet-counted syslog frames (RFC 6587) from the first connection
/// and sends each on `frames`.
fn syslog_receiver(listener: TcpListener, frames: mpsc::Sender<String>) {
    std::thread::spawn(move || {
        let Ok((stream, _)) = listener.accept() else {
            return;
        };
        let mut reader = BufReader::new(stream);
        loop {
            let mut length = Vec::new();
            if reader.read_until(b' ', &mut length).unwrap_or(0) == 0 {
                return;
            }
            let Ok(n) = String::from_utf8_lossy(&length).trim().parse::<usize>() else {
                return;
            };
            let mut frame = vec![0; n];
            if reader.read_exact(&mut frame).is_err() {
                return;
            }
            if frames.send(String::from_utf8_lossy(&frame).into_owned()).is_err() {
                return;
            }
        }
    });
}

#[test]
fn app_router_and_platform_lines_reach_deis_logs_follow_filters_forward_and_drains() {
    let data = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let server = UpServer::start(data.path(), None, &[]);
    let http = server.http_port;
    let _repo = register_and_push(&server, h, "python", "logme");

    // `deis logs -f` as a user runs it, reading its output as it comes.
    let mut follower = Command::new(deis_binary())
        .args(["logs", "-f", "-a", "logme", "-n", "1"])
        .env("HOME", h)
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (lines_tx, lines) = mpsc::channel::<(Instant, String)>();
    let stdout = follower.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_tx.send((Instant::now(), line)).is_err() {
                return;
            }
        }
    });
    // The replayed line first: the follower is connected.
    lines
        .recv_timeout(Duration::from_secs(10))
        .expect("the replayed line");

    let asked = Instant::now();
    let (status, _) = http_get_host(http, "logme.localhost", "/followed").unwrap();
    assert_eq!(status, 200);
    let answered = Instant::now();
    let mut app_line_after = None;
    let mut router_line = false;
    let deadline = Instant::now() + Duration::from_secs(10);
    while (app_line_after.is_none() || !router_line) && Instant::now() < deadline {
        let Ok((at, line)) = lines.recv_timeout(Duration::from_secs(5)) else {
            break;
        };
        if line.contains("logme[web.1]:") && line.contains("GET /followed") {
            app_line_after = Some(at.saturating_duration_since(asked));
        }
        if line.contains("logme[router]:") && line.contains("path=\"/followed\"") {
            router_line = true;
        }
    }
    // The app prints its line after the request was sent, so this bounds
    // the time from the app printing to `deis logs -f` printing.
    let lag = app_line_after.expect("`deis logs -f` shows the app's line");
    println!(
        "`deis logs -f` printed the app's line {lag:?} after the request was sent (answered in {:?})",
        answered - asked
    );
    assert!(lag < Duration::from_millis(100), "follow lag {lag:?}");
    assert!(router_line, "`deis logs -f` shows the router's line");
    let _ = follower.kill();
    let _ = follower.wait();

    // `deis logs`: app output, router lines and platform events, in Deis's
    // format.
    let logs = ok(h, &["logs", "-a", "logme"]);
    let line_format = regex_lite_match;
    assert!(
        logs.lines()
            .any(|l| line_format(l) && l.contains("logme[web.1]: listening on")),
        "{logs}"
    );
    assert!(
        logs.contains("logme[router]: at=info method=GET path=\"/followed\""),
        "{logs}"
    );
    assert!(logs.contains("logme[deis]: alice deployed"), "{logs}");
    let web_only = ok(h, &["logs", "-a", "logme", "--process", "web"]);
    assert!(
        web_only.lines().count() > 0 && web_only.lines().all(|l| l.contains("logme[web.")),
        "{web_only}"
    );
    let router_only = ok(h, &["logs", "-a", "logme", "--source", "router"]);
    assert!(
        router_only.lines().count() > 0 && router_only.lines().all(|l| l.contains("logme[router]")),
        "{router_only}"
    );
    let two = ok(h, &["logs", "-a", "logme", "-n", "2"]);
    assert_eq!(two.lines().count(), 2, "{two}");

    // A record from a real Fluentd client arrives attributed to the app.
    let python =
        std::env::var("DEIS_PYTHON").expect("DEIS_PYTHON: run buildtools/test, which installs fluent-logger");
    let (host, port) = server.forward_addr.rsplit_once(':').unwrap();
    let sent = Command::new(python)
        .args([
            "-c",
            "import sys; from fluent import sender; \
             s = sender.FluentSender('deis.app', host=sys.argv[1], port=int(sys.argv[2]), nanosecond_precision=True); \
             ok = s.emit('line', {'app': 'logme', 'process': 'worker.1', 'log': 'hello over forward\\n'}); \
             s.close(); sys.exit(0 if ok else 1)",
            host,
            port,
        ])
        .output()
        .unwrap();
    assert!(sent.status.success(), "{}", String::from_utf8_lossy(&sent.stderr));
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let worker = ok(h, &["logs", "-a", "logme", "--process", "worker"]);
        if worker.contains("logme[worker.1]: hello over forward") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the Forward record never showed:\n{worker}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // A syslog drain receives the app's lines; drains:list counts them.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let drain_port = listener.local_addr().unwrap().port();
    let (frames_tx, frames) = mpsc::channel();
    syslog_receiver(listener, frames_tx);
    let drain = format!("syslog://127.0.0.1:{drain_port}");
    ok(h, &["drains:add", &drain, "-a", "logme"]);
    let refused = deis(h, &["drains:add", "udp://127.0.0.1:514", "-a", "logme"]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("UDP"),
        "{refused:?}"
    );
    http_get_host(http, "logme.localhost", "/drained").unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = Vec::new();
    while !seen.iter().any(|f: &String| f.contains("GET /drained")) {
        let frame = frames
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|_| panic!("the drain never got the app's line: {seen:#?}"));
        seen.push(frame);
    }
    let frame = seen.iter().find(|f| f.contains("GET /drained")).unwrap();
    assert!(frame.starts_with("<190>1 "), "{frame}");
    assert!(frame.contains(" logme app web.1 - - "), "{frame}");
    let listed = ok(h, &["drains:list", "-a", "logme"]);
    assert!(
        listed.contains(&drain) && listed.contains("delivering"),
        "{listed}"
    );
    ok(h, &["drains:remove", &drain, "-a", "logme"]);
    assert!(ok(h, &["drains:list", "-a", "logme"]).contains("No drains"));

    // A stranger cannot read the app's logs.
    let stranger = tempfile::tempdir().unwrap();
    ok(
        stranger.path(),
        &[
            "register",
            &server.url,
            "--username=mallory",
            "--password=s3cret-pw",
            "--email=m@example.com",
        ],
    );
    for args in [
        &["logs", "-a", "logme"][..],
        &["logs", "-f", "-a", "logme"],
        &["drains:list", "-a", "logme"],
    ] {
        let out = deis(stranger.path(), args);
        assert!(!out.status.success(), "{args:?} as a stranger");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("permission"),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // Destroying the app drops its lines.
    ok(h, &["apps:destroy", "-a", "logme", "--confirm", "logme"]);
    server.interrupt();
}

/// `2026-11-27T12:00:00+00:00 app[proc]: text`.
fn regex_lite_match(line: &str) -> bool {
    let Some((time, rest)) = line.split_once(' ') else {
        return false;
    };
    chrono::DateTime::parse_from_rfc3339(time).is_ok() && time.ends_with("+00:00") && rest.contains("]: ")
}

/// A child process stopped (SIGINT, then SIGKILL) when the test ends.
struct Daemon(std::process::Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-INT", &self.0.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A split deployment: `deis-workflow logger` alone, and a controller that
/// sends its platform events there, reads `deis logs` from there and
/// configures drains there (`--logger-url`).
#[test]
fn a_controller_uses_a_logger_in_another_process() {
    let data = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let secret = "split-deployment-platform-secret-0123456789abcdef";
    let (logger_port, forward_port, controller_port) = (
        support::up::free_port(),
        support::up::free_port(),
        support::up::free_port(),
    );
    let server = env!("CARGO_BIN_EXE_deis-workflow");
    let _logger = Daemon(
        Command::new(server)
            .args(["logger", "--platform-secret", secret])
            .args(["--logger-addr", &format!("127.0.0.1:{logger_port}")])
            .args(["--forward-addr", &format!("127.0.0.1:{forward_port}")])
            .args(["--metrics-addr", "127.0.0.1:0"])
            .arg("--data-dir")
            .arg(data.path().join("logger"))
            .env("RUST_LOG", "warn")
            .spawn()
            .unwrap(),
    );
    wait_for_port(logger_port);
    wait_for_port(forward_port);
    let _controller = Daemon(
        Command::new(server)
            .args(["controller", "--platform-secret", secret, "--runtime", "none"])
            .args(["--controller-addr", &format!("127.0.0.1:{controller_port}")])
            .args(["--xds-addr", "127.0.0.1:0", "--registration-mode", "enabled"])
            .args(["--metrics-addr", "127.0.0.1:0", "--registry-addr", "127.0.0.1:0"])
            .args(["--logger-url", &format!("http://127.0.0.1:{logger_port}")])
            .arg("--data-dir")
            .arg(data.path().join("controller"))
            .env("RUST_LOG", "warn")
            .spawn()
            .unwrap(),
    );
    wait_for_port(controller_port);
    ok(
        h,
        &[
            "register",
            &format!("http://127.0.0.1:{controller_port}"),
            "--username=alice",
            "--password=s3cret-pw",
            "--email=a@example.com",
        ],
    );
    ok(h, &["create", "split", "--no-remote"]);
    ok(h, &["config:set", "A=1", "-a", "split"]);
    // Platform events are pushed in batches: wait for them.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let logs = ok(h, &["logs", "-a", "split"]);
        if logs.contains("split[deis]: alice added A") {
            assert!(
                logs.contains("split[deis]: alice created initial release"),
                "{logs}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "platform events never reached the logger:\n{logs}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    ok(
        h,
        &["drains:add", "https://logs.example.invalid/in", "-a", "split"],
    );
    let listed = ok(h, &["drains:list", "-a", "split"]);
    assert!(listed.contains("https://logs.example.invalid/in"), "{listed}");
}
