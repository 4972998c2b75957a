//! Drains against real sockets: syslog over TCP and TLS (every message
//! checked by the strict RFC 5424 parser from PyPI, `syslog-rfc5424-parser`,
//! run by `$DEIS_PYTHON`), HTTPS with batching, recovery after an outage,
//! exact overflow counts, reconciliation, shutdown, URL refusals and the
//! cost of `offer`.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{DateTime, TimeZone, Utc};
use deis_logger::drains::{DrainOptions, DrainTarget, Drains, parse_drain_url};
use deis_scheduler::{DrainSpec, DrainStats, LogLine, LogSource};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncBufReadExt as _, AsyncRead, AsyncReadExt as _, AsyncWrite, BufReader};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;

// ---- lines, options, waiting ----

fn time(i: usize) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 27, 12, 0, 0).unwrap()
        + chrono::Duration::microseconds(1_000_001 * i as i64 + 123_456)
}

fn line_with(app: &str, i: usize, source: LogSource, process: &str, text: &str) -> Arc<LogLine> {
    Arc::new(LogLine {
        time: time(i),
        app: app.to_owned(),
        source,
        process: process.to_owned(),
        release: "v3".to_owned(),
        text: text.to_owned(),
    })
}

fn line(app: &str, i: usize) -> Arc<LogLine> {
    line_with(app, i, LogSource::App, "web.1", &format!("line {i}"))
}

/// Quick retries, so that the tests do not wait.
fn options() -> DrainOptions {
    DrainOptions {
        backoff_min: Duration::from_millis(20),
        backoff_max: Duration::from_millis(200),
        batch_delay: Duration::from_millis(50),
        ..DrainOptions::default()
    }
}

fn spec(id: &str, url: impl Into<String>) -> DrainSpec {
    DrainSpec {
        id: id.to_owned(),
        url: url.into(),
    }
}

fn one_stats(drains: &Drains, app: &str) -> DrainStats {
    let stats = drains.stats(app);
    assert_eq!(stats.len(), 1, "{stats:?}");
    stats.into_iter().next().unwrap()
}

/// Waits (10 s at most) until `check` holds.
async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A port nobody listens on (for now).
async fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().port()
}

// ---- a syslog receiver ----

struct SyslogServer {
    addr: SocketAddr,
    /// Every message, without its octet count.
    frames: mpsc::UnboundedReceiver<String>,
    connections: Arc<AtomicUsize>,
    closed: Arc<AtomicUsize>,
    /// The SNI of each TLS connection.
    sni: Arc<Mutex<Vec<Option<String>>>>,
}

impl SyslogServer {
    async fn start(listener: TcpListener, tls: Option<TlsAcceptor>) -> SyslogServer {
        let addr = listener.local_addr().unwrap();
        let (tx, frames) = mpsc::unbounded_channel();
        let connections = Arc::new(AtomicUsize::new(0));
        let closed = Arc::new(AtomicUsize::new(0));
        let sni = Arc::new(Mutex::new(Vec::new()));
        let (connections2, closed2, sni2) = (connections.clone(), closed.clone(), sni.clone());
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                connections2.fetch_add(1, Ordering::SeqCst);
                let (tx, closed, sni, tls) = (tx.clone(), closed2.clone(), sni2.clone(), tls.clone());
                tokio::spawn(async move {
                    match tls {
                        None => read_frames(tcp, tx).await,
                        Some(acceptor) => {
                            if let Ok(stream) = acceptor.accept(tcp).await {
                                let name = stream.get_ref().1.server_name().map(str::to_owned);
                                sni.lock().unwrap().push(name);
                                read_frames(stream, tx).await;
                            }
                        }
                    }
                    closed.fetch_add(1, Ordering::SeqCst);
                });
            }
        });
        SyslogServer {
            addr,
            frames,
            connections,
            closed,
            sni,
        }
    }

    async fn bind(tls: Option<TlsAcceptor>) -> SyslogServer {
        SyslogServer::start(TcpListener::bind("127.0.0.1:0").await.unwrap(), tls).await
    }

    /// The next `count` messages.
    async fn recv(&mut self, count: usize) -> Vec<String> {
        let mut out = Vec::with_capacity(count);
        while out.len() < count {
            match tokio::time::timeout(Duration::from_secs(10), self.frames.recv()).await {
                Ok(Some(frame)) => out.push(frame),
                _ => panic!("got {} messages of {count}: {out:?}", out.len()),
            }
        }
        out
    }

    /// Nothing more arrives for a while.
    async fn assert_quiet(&mut self) {
        tokio::time::sleep(Duration::from_millis(300)).await;
        if let Ok(frame) = self.frames.try_recv() {
            panic!("unexpected message {frame:?}");
        }
    }
}

/// Splits octet-counted frames (RFC 6587): `<len> <message>`.
async fn read_frames(stream: impl AsyncRead + Unpin, tx: mpsc::UnboundedSender<String>) {
    let mut reader = BufReader::new(stream);
    loop {
        let mut count = Vec::new();
        match reader.read_until(b' ', &mut count).await {
            Ok(n) if n > 0 && count.ends_with(b" ") => {}
            _ => return,
        }
        let count = std::str::from_utf8(&count[..count.len() - 1]).unwrap();
        assert!(
            !count.is_empty() && !count.starts_with('0') && count.bytes().all(|b| b.is_ascii_digit()),
            "bad octet count {count:?}"
        );
        let mut frame = vec![0; count.parse().unwrap()];
        if reader.read_exact(&mut frame).await.is_err() {
            return;
        }
        if tx.send(String::from_utf8(frame).unwrap()).is_err() {
            return;
        }
    }
}

/// The MSG part of a message we sent (seven header fields before it).
fn msg(frame: &str) -> &str {
    frame.splitn(8, ' ').nth(7).unwrap()
}

/// Parses messages with the strict RFC 5424 parser (tests/drains/parse_syslog.py).
fn parse_rfc5424(frames: &[String]) -> Vec<serde_json::Value> {
    let python = std::env::var("DEIS_PYTHON")
        .ok()
        .filter(|python| !python.is_empty())
        .unwrap_or_else(|| {
            panic!(
                "DEIS_PYTHON is not set: run buildtools/test (or `source buildtools/lib/common.sh \
                 && ensure_python_tools`), which installs syslog-rfc5424-parser and exports it"
            )
        });
    let script = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("tests run under cargo"))
        .join("tests/drains/parse_syslog.py");
    let mut child = Command::new(&python)
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {python} (run buildtools/test): {e}"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&serde_json::to_vec(frames).unwrap())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "the parser failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let parsed: Vec<serde_json::Value> = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(parsed.len(), frames.len());
    for (frame, fields) in frames.iter().zip(&parsed) {
        assert!(
            fields.get("error").is_none(),
            "{frame:?} is not RFC 5424: {fields}"
        );
    }
    parsed
}

// ---- certificates (openssl) and servers ----

struct TestCa {
    _dir: tempfile::TempDir,
    /// The CA to trust.
    root: CertificateDer<'static>,
    /// A server certificate for `localhost` and 127.0.0.1, signed by it.
    server: Arc<rustls::ServerConfig>,
}

fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs");
    assert!(
        output.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn test_ca() -> TestCa {
    let dir = tempfile::tempdir().unwrap();
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut args = vec!["req", "-x509"];
    args.extend(ec);
    args.extend([
        "-days",
        "2",
        "-subj",
        "/CN=Deis drains test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
    ]);
    openssl(dir.path(), &args);
    let mut args = vec!["req", "-new"];
    args.extend(ec);
    args.extend([
        "-subj",
        "/CN=localhost",
        "-keyout",
        "leaf.key",
        "-out",
        "leaf.csr",
    ]);
    openssl(dir.path(), &args);
    std::fs::write(
        dir.path().join("leaf.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\n\
         keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        dir.path(),
        &[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "leaf.ext",
            "-out",
            "leaf.crt",
        ],
    );
    let root = CertificateDer::from_pem_file(dir.path().join("ca.crt")).unwrap();
    let leaf = CertificateDer::from_pem_file(dir.path().join("leaf.crt")).unwrap();
    let key = PrivateKeyDer::from_pem_file(dir.path().join("leaf.key")).unwrap();
    let mut server =
        rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![leaf], key)
            .unwrap();
    server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    TestCa {
        _dir: dir,
        root,
        server: Arc::new(server),
    }
}

/// One request an HTTP drain made.
#[derive(Debug)]
struct Post {
    method: String,
    path_and_query: String,
    content_type: String,
    body: String,
}

/// An HTTP(S) server (hyper) that records requests and answers with the
/// queued statuses, then 200.
async fn http_server(
    tls: Option<TlsAcceptor>,
    answers: Vec<u16>,
) -> (SocketAddr, mpsc::UnboundedReceiver<Post>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    let answers = Arc::new(Mutex::new(VecDeque::from(answers)));
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (tx, answers, tls) = (tx.clone(), answers.clone(), tls.clone());
            tokio::spawn(async move {
                match tls {
                    None => serve_http(tcp, tx, answers).await,
                    Some(acceptor) => {
                        if let Ok(stream) = acceptor.accept(tcp).await {
                            serve_http(stream, tx, answers).await;
                        }
                    }
                }
            });
        }
    });
    (addr, rx)
}

async fn serve_http(
    stream: impl AsyncRead + AsyncWrite + Unpin + Send + 'static,
    tx: mpsc::UnboundedSender<Post>,
    answers: Arc<Mutex<VecDeque<u16>>>,
) {
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let (tx, answers) = (tx.clone(), answers.clone());
        async move {
            let (parts, body) = request.into_parts();
            let body = body.collect().await.unwrap().to_bytes();
            let _ = tx.send(Post {
                method: parts.method.to_string(),
                path_and_query: parts.uri.path_and_query().unwrap().to_string(),
                content_type: parts
                    .headers
                    .get("content-type")
                    .map(|v| v.to_str().unwrap().to_owned())
                    .unwrap_or_default(),
                body: String::from_utf8(body.to_vec()).unwrap(),
            });
            let status = answers.lock().unwrap().pop_front().unwrap_or(200);
            Ok::<_, Infallible>(
                Response::builder()
                    .status(status)
                    .body(Full::new(Bytes::from_static(b"ok")))
                    .unwrap(),
            )
        }
    });
    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

/// The `message`s of NDJSON bodies, each line checked against `app`'s lines.
fn ndjson_messages(app: &str, body: &str) -> Vec<String> {
    assert!(body.ends_with('\n'), "{body:?}");
    body.lines()
        .map(|text| {
            let object: serde_json::Value = serde_json::from_str(text).unwrap();
            let object = object.as_object().unwrap();
            let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
            keys.sort_unstable();
            assert_eq!(keys, ["app", "message", "process", "release", "source", "time"]);
            let message = object["message"].as_str().unwrap().to_owned();
            let i: usize = message.strip_prefix("line ").unwrap().parse().unwrap();
            let time = object["time"].as_str().unwrap();
            assert!(time.contains('.'), "no fractional seconds in {time}");
            assert_eq!(DateTime::parse_from_rfc3339(time).unwrap(), self::time(i));
            assert_eq!(object["app"], app);
            assert_eq!(object["source"], "app");
            assert_eq!(object["process"], "web.1");
            assert_eq!(object["release"], "v3");
            message
        })
        .collect()
}

// ---- the tests ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syslog_tcp_messages_are_rfc5424_over_one_connection() {
    let mut server = SyslogServer::bind(None).await;
    let drains = Drains::new(options());
    drains.set("myapp", &[spec("d1", format!("syslog://{}", server.addr))]);

    let long = "p".repeat(200);
    let first = [
        line_with("myapp", 0, LogSource::App, "web.1", "hello"),
        line_with("myapp", 1, LogSource::Router, "router", "GET / 200 12ms"),
        line_with("myapp", 2, LogSource::Platform, "deis", "release v3 created"),
        line_with("myapp", 3, LogSource::App, "", "no process"),
        line_with(
            "myapp",
            4,
            LogSource::App,
            "weird proc ü",
            "multi\nline ✓ ünïcode",
        ),
        line_with("myapp", 5, LogSource::App, &long, "long process"),
        line_with("myapp", 6, LogSource::App, "web.2", ""),
    ];
    for line in &first {
        drains.offer(line);
    }
    drains.offer(&line("otherapp", 99));
    let frames = server.recv(first.len()).await;
    let parsed = parse_rfc5424(&frames);
    for (i, (line, fields)) in first.iter().zip(&parsed).enumerate() {
        assert_eq!(fields["facility"], "local7", "{fields}");
        assert_eq!(fields["severity"], "info", "{fields}");
        assert_eq!(fields["version"], 1);
        assert_eq!(fields["hostname"], "myapp");
        assert_eq!(fields["appname"], line.source.as_str());
        assert_eq!(fields["msgid"], serde_json::Value::Null);
        assert_eq!(fields["sd"], serde_json::Value::Null);
        assert_eq!(fields["msg"], line.text.as_str(), "{fields}");
        let stamp = fields["timestamp"].as_str().unwrap();
        assert!(stamp.ends_with("+00:00") && stamp.len() == 32, "{stamp}");
        assert_eq!(DateTime::parse_from_rfc3339(stamp).unwrap(), time(i));
    }
    let procids: Vec<&serde_json::Value> = parsed.iter().map(|f| &f["procid"]).collect();
    assert_eq!(procids[0], "web.1");
    assert_eq!(procids[1], "router");
    assert_eq!(procids[2], "deis");
    assert_eq!(*procids[3], serde_json::Value::Null);
    assert_eq!(procids[4], "weird_proc__");
    assert_eq!(*procids[5], serde_json::Value::String("p".repeat(128)));
    assert_eq!(procids[6], "web.2");

    // More lines later: same connection.
    for i in 10..30 {
        drains.offer(&line("myapp", i));
    }
    let frames = server.recv(20).await;
    let texts: Vec<&str> = frames.iter().map(|frame| msg(frame)).collect();
    let expected: Vec<String> = (10..30).map(|i| format!("line {i}")).collect();
    assert_eq!(texts, expected);
    parse_rfc5424(&frames);
    server.assert_quiet().await;
    assert_eq!(server.connections.load(Ordering::SeqCst), 1);

    let stats = one_stats(&drains, "myapp");
    assert_eq!(
        stats,
        DrainStats {
            id: "d1".into(),
            delivered: 27,
            dropped: 0,
            buffered: 0,
            healthy: true,
            last_error: None,
        }
    );
    assert!(drains.stats("otherapp").is_empty());
    drains.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syslog_tls_verifies_the_server_and_sends_sni() {
    let ca = test_ca();
    let mut server = SyslogServer::bind(Some(TlsAcceptor::from(ca.server.clone()))).await;
    let port = server.addr.port();
    let drains = Drains::new(DrainOptions {
        extra_roots: vec![ca.root.clone()],
        ..options()
    });
    drains.set("tlsapp", &[spec("tls", format!("syslog+tls://localhost:{port}"))]);
    for i in 0..5 {
        drains.offer(&line("tlsapp", i));
    }
    let frames = server.recv(5).await;
    let parsed = parse_rfc5424(&frames);
    for (i, fields) in parsed.iter().enumerate() {
        assert_eq!(fields["hostname"], "tlsapp");
        assert_eq!(fields["procid"], "web.1");
        assert_eq!(fields["msg"], format!("line {i}"));
    }
    assert_eq!(*server.sni.lock().unwrap(), [Some("localhost".to_owned())]);
    eventually("the TLS drain reports 5 delivered", || {
        one_stats(&drains, "tlsapp").delivered == 5
    })
    .await;

    // Without the test CA the server is not trusted: nothing is sent.
    let untrusting = Drains::new(options());
    untrusting.set("tlsapp", &[spec("tls", format!("syslog+tls://localhost:{port}"))]);
    untrusting.offer(&line("tlsapp", 9));
    eventually("the untrusting drain fails", || {
        !one_stats(&untrusting, "tlsapp").healthy
    })
    .await;
    let stats = one_stats(&untrusting, "tlsapp");
    let error = stats.last_error.unwrap();
    assert!(
        error.starts_with(&format!("the TLS handshake with localhost:{port} failed: "))
            && error.contains("certificate"),
        "{error}"
    );
    assert_eq!((stats.delivered, stats.buffered), (0, 1));
    server.assert_quiet().await;
    drains.shutdown().await;
    untrusting.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_drain_posts_batches_of_ndjson() {
    let ca = test_ca();
    let (addr, mut posts) = http_server(Some(TlsAcceptor::from(ca.server.clone())), vec![]).await;
    let drains = Drains::new(DrainOptions {
        extra_roots: vec![ca.root.clone()],
        batch_lines: 50,
        batch_delay: Duration::from_millis(100),
        ..options()
    });
    let url = format!("https://127.0.0.1:{}/logs?token=abc", addr.port());
    drains.set("webapp", &[spec("https", url)]);
    for i in 0..120 {
        drains.offer(&line("webapp", i));
    }
    let mut messages = Vec::new();
    let mut count = 0;
    while messages.len() < 120 {
        let post = tokio::time::timeout(Duration::from_secs(10), posts.recv())
            .await
            .expect("a POST")
            .unwrap();
        count += 1;
        assert_eq!(post.method, "POST");
        assert_eq!(post.path_and_query, "/logs?token=abc");
        assert_eq!(post.content_type, "application/x-ndjson");
        let batch = ndjson_messages("webapp", &post.body);
        assert!(!batch.is_empty() && batch.len() <= 50, "{}", batch.len());
        messages.extend(batch);
    }
    let expected: Vec<String> = (0..120).map(|i| format!("line {i}")).collect();
    assert_eq!(messages, expected);
    assert!((3..=12).contains(&count), "{count} POSTs for 120 lines");
    eprintln!("120 lines in {count} POSTs");
    eventually("the HTTPS drain reports 120 delivered", || {
        let stats = one_stats(&drains, "webapp");
        stats.delivered == 120 && stats.buffered == 0 && stats.healthy
    })
    .await;
    drains.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_drain_retries_a_failed_batch_whole() {
    let (addr, mut posts) = http_server(None, vec![503, 400]).await;
    let drains = Drains::new(options());
    drains.set("app", &[spec("http", format!("http://{addr}/"))]);
    for i in 0..10 {
        drains.offer(&line("app", i));
    }
    let mut bodies = Vec::new();
    while bodies.len() < 3 {
        let post = tokio::time::timeout(Duration::from_secs(10), posts.recv())
            .await
            .expect("a POST")
            .unwrap();
        bodies.push(post.body);
    }
    assert_eq!(bodies[0], bodies[1]);
    assert_eq!(bodies[1], bodies[2]);
    let expected: Vec<String> = (0..10).map(|i| format!("line {i}")).collect();
    assert_eq!(ndjson_messages("app", &bodies[2]), expected);
    eventually("the drain recovers", || {
        let stats = one_stats(&drains, "app");
        stats.delivered == 10 && stats.healthy && stats.last_error.is_none()
    })
    .await;

    // The errors were reported while they lasted.
    let (addr, _posts) = http_server(None, vec![500; 1000]).await;
    drains.set("app", &[spec("http", format!("http://{addr}/"))]);
    drains.offer(&line("app", 0));
    eventually("the drain reports the 500", || {
        let stats = one_stats(&drains, "app");
        stats.last_error.as_deref() == Some(&*format!("{addr} answered HTTP 500 Internal Server Error"))
            && !stats.healthy
            && stats.buffered == 1
    })
    .await;
    drains.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syslog_drain_down_then_up_gets_every_line_in_order() {
    let port = free_port().await;
    let drains = Drains::new(options());
    drains.set("app", &[spec("down", format!("syslog://127.0.0.1:{port}"))]);
    for i in 0..50 {
        drains.offer(&line("app", i));
    }
    eventually("the drain reports the refusal", || {
        let stats = one_stats(&drains, "app");
        !stats.healthy
            && stats.last_error.as_deref() == Some(&*format!("connection refused by 127.0.0.1:{port}"))
    })
    .await;
    let stats = one_stats(&drains, "app");
    assert_eq!((stats.delivered, stats.buffered, stats.dropped), (0, 50, 0));

    let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    let mut server = SyslogServer::start(listener, None).await;
    let frames = server.recv(50).await;
    let texts: Vec<&str> = frames.iter().map(|frame| msg(frame)).collect();
    let expected: Vec<String> = (0..50).map(|i| format!("line {i}")).collect();
    assert_eq!(texts, expected);
    eventually("the drain is healthy again", || {
        one_stats(&drains, "app")
            == DrainStats {
                id: "down".into(),
                delivered: 50,
                dropped: 0,
                buffered: 0,
                healthy: true,
                last_error: None,
            }
    })
    .await;
    server.assert_quiet().await;
    drains.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_buffer_drops_the_newest_lines_exactly() {
    let port = free_port().await;
    let drains = Drains::new(DrainOptions {
        buffer_lines: 100,
        ..options()
    });
    drains.set("app", &[spec("small", format!("syslog://127.0.0.1:{port}"))]);
    for i in 0..250 {
        drains.offer(&line("app", i));
    }
    let stats = one_stats(&drains, "app");
    assert_eq!((stats.dropped, stats.buffered, stats.delivered), (150, 100, 0));
    eventually("the drain fails", || !one_stats(&drains, "app").healthy).await;

    let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    let mut server = SyslogServer::start(listener, None).await;
    let frames = server.recv(100).await;
    let texts: Vec<&str> = frames.iter().map(|frame| msg(frame)).collect();
    let expected: Vec<String> = (0..100).map(|i| format!("line {i}")).collect();
    assert_eq!(texts, expected);
    server.assert_quiet().await;
    eventually("100 delivered", || {
        let stats = one_stats(&drains, "app");
        (stats.delivered, stats.dropped, stats.buffered, stats.healthy) == (100, 150, 0, true)
    })
    .await;
    drains.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_reconciles_and_forget_stops() {
    let mut a = SyslogServer::bind(None).await;
    let mut b = SyslogServer::bind(None).await;
    let mut c = SyslogServer::bind(None).await;
    let (url_a, url_b, url_c) = (
        format!("syslog://{}", a.addr),
        format!("syslog://{}", b.addr),
        format!("syslog://{}", c.addr),
    );
    let drains = Drains::new(options());
    drains.set("app", &[spec("a", &url_a), spec("b", &url_b)]);
    for i in 0..10 {
        drains.offer(&line("app", i));
    }
    a.recv(10).await;
    b.recv(10).await;
    eventually("both delivered 10", || {
        drains.stats("app").iter().all(|stats| stats.delivered == 10)
    })
    .await;

    // a unchanged, b removed, c added.
    drains.set("app", &[spec("a", &url_a), spec("c", &url_c)]);
    let stats = drains.stats("app");
    let summary: Vec<(&str, u64)> = stats.iter().map(|s| (s.id.as_str(), s.delivered)).collect();
    assert_eq!(summary, [("a", 10), ("c", 0)]);
    eventually("b's connection is closed", || {
        b.closed.load(Ordering::SeqCst) == 1
    })
    .await;
    for i in 10..15 {
        drains.offer(&line("app", i));
    }
    let expected: Vec<String> = (10..15).map(|i| format!("line {i}")).collect();
    for server in [&mut a, &mut c] {
        let frames = server.recv(5).await;
        let texts: Vec<&str> = frames.iter().map(|frame| msg(frame)).collect();
        assert_eq!(texts, expected);
    }
    b.assert_quiet().await;
    assert_eq!(a.connections.load(Ordering::SeqCst), 1, "a kept its connection");
    eventually("a delivered 15, c 5", || {
        let stats = drains.stats("app");
        stats.len() == 2 && stats[0].delivered == 15 && stats[1].delivered == 5
    })
    .await;

    // Same id, another URL: a new drain.
    drains.set("app", &[spec("a", &url_c)]);
    assert_eq!(one_stats(&drains, "app").delivered, 0);

    // A refused URL shows its error and counts every line as dropped.
    drains.set("bad", &[spec("udp", "udp://127.0.0.1:514")]);
    for i in 0..3 {
        drains.offer(&line("bad", i));
    }
    let stats = one_stats(&drains, "bad");
    assert!(!stats.healthy);
    assert!(stats.last_error.as_deref().unwrap().contains("UDP"), "{stats:?}");
    assert_eq!((stats.dropped, stats.buffered, stats.delivered), (3, 0, 0));

    drains.forget("app");
    drains.forget("bad");
    assert!(drains.stats("app").is_empty());
    for i in 15..20 {
        drains.offer(&line("app", i));
    }
    a.assert_quiet().await;
    c.assert_quiet().await;
    drains.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_flushes_and_then_ignores_set() {
    let mut server = SyslogServer::bind(None).await;
    let drains = Drains::new(options());
    drains.set("app", &[spec("d", format!("syslog://{}", server.addr))]);
    for i in 0..200 {
        drains.offer(&line("app", i));
    }
    drains.shutdown().await;
    let frames = server.recv(200).await;
    assert_eq!(msg(&frames[199]), "line 199");
    eventually("the connection is closed", || {
        server.closed.load(Ordering::SeqCst) == 1
    })
    .await;
    drains.set("app", &[spec("d", format!("syslog://{}", server.addr))]);
    assert!(drains.stats("app").is_empty());
}

#[test]
fn parse_drain_url_accepts_syslog_and_http() {
    let syslog = |host: &str, port, tls| DrainTarget::Syslog {
        host: host.into(),
        port,
        tls,
    };
    let cases = [
        (
            "syslog://logs.example.com:514",
            syslog("logs.example.com", 514, false),
        ),
        (
            "syslog+tls://logs.example.com:6514",
            syslog("logs.example.com", 6514, true),
        ),
        (
            "SYSLOG+TLS://logs.example.com:6514/",
            syslog("logs.example.com", 6514, true),
        ),
        ("syslog://10.0.0.1:514", syslog("10.0.0.1", 514, false)),
        ("syslog://[::1]:514", syslog("::1", 514, false)),
    ];
    for (url, expected) in cases {
        assert_eq!(parse_drain_url(url), Ok(expected), "{url}");
    }
    for url in [
        "https://user:secret@logs.example.com/drain?token=1",
        "http://localhost:8080/",
        "https://[::1]/x",
    ] {
        match parse_drain_url(url) {
            Ok(DrainTarget::Http { url: parsed }) => assert_eq!(parsed.as_str(), url),
            other => panic!("{url}: {other:?}"),
        }
    }
}

#[test]
fn parse_drain_url_refuses_with_what_is_accepted() {
    let accepted = "use syslog://host:port, syslog+tls://host:port, or an https:// (or http://) URL";
    let cases = [
        (
            "udp://logs.example.com:514",
            "syslog over UDP is not supported (it loses lines silently): use syslog://host:port (TCP) or syslog+tls://host:port".to_owned(),
        ),
        (
            "syslog+udp://logs.example.com:514",
            "syslog over UDP is not supported (it loses lines silently): use syslog://host:port (TCP) or syslog+tls://host:port".to_owned(),
        ),
        (
            "syslog://logs.example.com",
            "a syslog drain URL needs a port, as in syslog://logs.example.com:514".to_owned(),
        ),
        (
            "syslog+tls://logs.example.com",
            "a syslog drain URL needs a port, as in syslog+tls://logs.example.com:6514".to_owned(),
        ),
        (
            "syslog:logs.example.com:514",
            "a syslog drain URL needs a host and a port, as in syslog://logs.example.com:514".to_owned(),
        ),
        (
            "syslog+tls://user:secret@logs.example.com:6514",
            "a syslog drain URL cannot hold a user name or password; use syslog+tls://host:port".to_owned(),
        ),
        (
            "syslog://logs.example.com:514/somewhere",
            "a syslog drain URL has no path, query or fragment; use syslog://host:port".to_owned(),
        ),
        (
            "syslog://logs.example.com:0",
            "a syslog drain URL needs a port, as in syslog://logs.example.com:514".to_owned(),
        ),
        (
            "ftp://logs.example.com/",
            format!("drain URLs with the scheme \"ftp\" are not supported: {accepted}"),
        ),
        (
            "logs.example.com:514",
            format!("drain URLs with the scheme \"logs.example.com\" are not supported: {accepted}"),
        ),
        (
            "not a url",
            format!("the drain URL is not a valid URL (relative URL without a base): {accepted}"),
        ),
        ("https://", format!("the drain URL is not a valid URL (empty host): {accepted}")),
        ("https://:secret@/x", format!("the drain URL is not a valid URL (empty host): {accepted}")),
    ];
    for (url, expected) in cases {
        let error = parse_drain_url(url).expect_err(url);
        assert_eq!(error.to_string(), expected, "{url}");
        assert!(!error.to_string().contains("secret"));
    }
}

/// What `offer` costs on the ingest path. Run in release mode to get the
/// real figure:
/// `cargo nextest run --release -p deis-logger --test drains offer_cost --no-capture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offer_cost() {
    const LINES: u32 = 200_000;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let _ = tokio::io::copy(&mut tcp, &mut tokio::io::sink()).await;
            });
        }
    });
    let drains = Drains::new(DrainOptions {
        buffer_lines: LINES as usize,
        ..options()
    });
    let quiet = line("quiet", 0);
    let drained = line("drained", 0);
    let measure = |line: &Arc<LogLine>| {
        let start = Instant::now();
        for _ in 0..LINES {
            drains.offer(line);
        }
        start.elapsed().as_nanos() as f64 / f64::from(LINES)
    };
    let no_drains_at_all = measure(&quiet);
    drains.set("drained", &[spec("d", format!("syslog://{addr}"))]);
    let app_without_drains = measure(&quiet);
    let one_drain = measure(&drained);
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    eprintln!(
        "offer() ({profile}): {no_drains_at_all:.0} ns/line with no drains at all, \
         {app_without_drains:.0} ns/line for an app without drains, \
         {one_drain:.0} ns/line for an app with one (live) syslog drain"
    );
    let stats = one_stats(&drains, "drained");
    assert_eq!(stats.dropped, 0);
    // Loose bounds: a busy two-core machine, maybe a debug build.
    assert!(app_without_drains < 5_000.0 && one_drain < 50_000.0);
    drains.shutdown().await;
}

#[test]
fn drains_can_be_shared_across_tasks() {
    fn shared<T: Clone + Send + Sync + 'static>(_: &T) {}
    fn sendable<F: Send>(_: &F) {}
    let drains = Drains::new(DrainOptions::default());
    shared(&drains);
    sendable(&drains.shutdown());
}
