//! HTTP/1.1 on the wire: the router's lean path for simple requests, the
//! hand-over to hyper for everything else on the same connection, and how
//! each upstream framing reaches the client. A raw socket on each side, so
//! the exact bytes are checked.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::*;
use deis_router::RouterOptions;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A response as read off the socket.
#[derive(Debug)]
struct Wire {
    status: u16,
    reason: String,
    /// Lower-cased names, in order.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Wire {
    fn header(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A client socket with what it read but has not parsed yet.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    async fn open(addr: SocketAddr) -> Conn {
        Conn {
            stream: TcpStream::connect(addr).await.unwrap(),
            buf: Vec::new(),
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    async fn fill(&mut self) -> usize {
        let mut chunk = [0u8; 16384];
        let n = tokio::time::timeout(Duration::from_secs(10), self.stream.read(&mut chunk))
            .await
            .expect("router answered within 10 s")
            .unwrap_or(0);
        self.buf.extend_from_slice(&chunk[..n]);
        n
    }

    async fn fill_until(&mut self, done: impl Fn(&[u8]) -> Option<usize>) -> Vec<u8> {
        loop {
            if let Some(end) = done(&self.buf) {
                return self.buf.drain(..end).collect();
            }
            assert!(
                self.fill().await > 0,
                "connection closed early: {:?}",
                String::from_utf8_lossy(&self.buf)
            );
        }
    }

    /// Reads one response to a request with (or without, for HEAD) a body.
    async fn response(&mut self, head_request: bool) -> Wire {
        let head = self
            .fill_until(|b| b.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4))
            .await;
        let text = String::from_utf8(head).unwrap();
        let mut lines = text.split("\r\n");
        let status_line = lines.next().unwrap();
        assert!(status_line.starts_with("HTTP/1.1 "), "{status_line}");
        let status = status_line[9..12].parse().unwrap();
        let reason = status_line.get(13..).unwrap_or_default().to_owned();
        let headers: Vec<(String, String)> = lines
            .filter(|l| !l.is_empty())
            .map(|l| {
                let (n, v) = l.split_once(':').unwrap();
                (n.to_ascii_lowercase(), v.trim().to_owned())
            })
            .collect();
        let mut wire = Wire {
            status,
            reason,
            headers,
            body: Vec::new(),
        };
        if head_request || status == 204 || status == 304 {
            return wire;
        }
        if let Some(length) = wire.header("content-length").first() {
            let length: usize = length.parse().unwrap();
            wire.body = self.fill_until(|b| (b.len() >= length).then_some(length)).await;
        } else if wire.header("transfer-encoding") == ["chunked"] {
            loop {
                let line = self
                    .fill_until(|b| b.windows(2).position(|w| w == b"\r\n").map(|p| p + 2))
                    .await;
                let size =
                    usize::from_str_radix(std::str::from_utf8(&line[..line.len() - 2]).unwrap(), 16).unwrap();
                let chunk = self
                    .fill_until(|b| (b.len() >= size + 2).then_some(size + 2))
                    .await;
                assert_eq!(&chunk[size..], b"\r\n");
                if size == 0 {
                    break;
                }
                wire.body.extend_from_slice(&chunk[..size]);
            }
        } else {
            panic!("response without framing: {wire:?}");
        }
        wire
    }

    /// Whether the router closes the connection within `within`.
    async fn closed_within(&mut self, within: Duration) -> bool {
        let mut chunk = [0u8; 1024];
        matches!(
            tokio::time::timeout(within, self.stream.read(&mut chunk)).await,
            Ok(Ok(0) | Err(_))
        )
    }
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: app.localhost\r\n\r\n")
}

/// An upstream that answers each path with fixed bytes, one response per
/// request, keeping the connection open unless the response is
/// close-delimited.
async fn scripted_upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = Vec::new();
                loop {
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        let mut chunk = [0u8; 4096];
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                    buf.drain(..end + 4);
                    let target = head.split(' ').nth(1).unwrap_or("/").to_owned();
                    if target == "/slow" {
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                    let (reply, close): (&[u8], bool) = match target.as_str() {
                        "/chunked" => (
                            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n6;x=y\r\n world\r\n0\r\ntrailer: 1\r\n\r\n",
                            false,
                        ),
                        "/until-close" => (b"HTTP/1.0 200 OK\r\nx-old: yes\r\n\r\nsent until the upstream closes", true),
                        "/no-content" => (b"HTTP/1.1 204 No Content\r\nx-empty: yes\r\n\r\n", false),
                        "/head" => (b"HTTP/1.1 200 OK\r\ncontent-length: 11\r\n\r\n", false),
                        "/custom-reason" => (b"HTTP/1.1 299 Quite Fine\r\ncontent-length: 2\r\n\r\nok", false),
                        "/hop-by-hop" => (
                            b"HTTP/1.1 200 OK\r\nConnection: X-Secret\r\nX-Secret: 1\r\nKeep-Alive: timeout=5\r\nX-Kept: 1\r\nContent-Length: 2\r\n\r\nok",
                            false,
                        ),
                        "/short" => (b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly this", true),
                        _ => (b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nplain\n", false),
                    };
                    if stream.write_all(reply).await.is_err() || close {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// A router with one app, `app.localhost`, served by `upstream`.
async fn serve_app(upstream: SocketAddr, options: RouterOptions) -> (deis_router::Router, SocketAddr) {
    let config = one_app(&["app.localhost"], upstream);
    let (router, _, addr) = serve_with(options, config).await;
    (router, addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_connection_moves_from_the_lean_path_to_hyper_and_keeps_answering() {
    let up = upstream("web").await;
    let config = one_app(&["app.localhost"], up.addr);
    let (router, log, addr) = serve(config).await;
    let mut conn = Conn::open(addr).await;

    conn.send(get("/first").as_bytes()).await;
    let first = conn.response(false).await;
    assert_eq!(first.status, 200);
    assert!(first.text().contains("path=/first\n"), "{}", first.text());
    assert_eq!(first.header("date").len(), 1, "{first:?}");
    assert!(
        first.header("keep-alive").is_empty(),
        "hop-by-hop header passed: {first:?}"
    );

    // A body: hyper takes the connection over, nothing read so far is lost.
    conn.send(b"POST /echo HTTP/1.1\r\nHost: app.localhost\r\nContent-Length: 4\r\n\r\nping")
        .await;
    let echoed = conn.response(false).await;
    assert_eq!((echoed.status, echoed.text().as_str()), (200, "ping"));

    conn.send(get("/third").as_bytes()).await;
    let third = conn.response(false).await;
    assert!(third.text().contains("path=/third\n"), "{}", third.text());

    // Pipelined: two requests in one write, answered in order.
    let mut lean = Conn::open(addr).await;
    lean.send(format!("{}{}", get("/one"), get("/two")).as_bytes())
        .await;
    let one = lean.response(false).await;
    let two = lean.response(false).await;
    assert!(one.text().contains("path=/one\n"), "{}", one.text());
    assert!(two.text().contains("path=/two\n"), "{}", two.text());

    // Unknown host: the router's own 404, framed and dated.
    lean.send(b"GET / HTTP/1.1\r\nHost: nobody.localhost\r\n\r\n")
        .await;
    let missing = lean.response(false).await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.header("content-length"), ["0"]);
    assert_eq!(missing.header("date").len(), 1);

    // `Connection: close` is answered in kind and the socket closes.
    lean.send(b"GET /last HTTP/1.1\r\nHost: app.localhost\r\nConnection: close\r\n\r\n")
        .await;
    let last = lean.response(false).await;
    assert_eq!(last.header("connection"), ["close"]);
    assert!(lean.closed_within(Duration::from_secs(2)).await);

    let entries = log.0.lock().unwrap().len();
    assert_eq!(entries, 7, "one access log entry per request");
    router.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_upstream_framing_reaches_the_client_intact() {
    let (router, addr) = serve_app(scripted_upstream().await, common::options()).await;
    let mut conn = Conn::open(addr).await;

    conn.send(get("/chunked").as_bytes()).await;
    let chunked = conn.response(false).await;
    assert_eq!(chunked.header("transfer-encoding"), ["chunked"]);
    assert_eq!(chunked.text(), "hello world");

    // HTTP/1.0, delimited by the upstream closing: chunked to the client,
    // whose connection stays open.
    conn.send(get("/until-close").as_bytes()).await;
    let old = conn.response(false).await;
    assert_eq!(old.text(), "sent until the upstream closes");
    assert_eq!(old.header("x-old"), ["yes"]);
    assert_eq!(old.header("transfer-encoding"), ["chunked"]);

    conn.send(get("/no-content").as_bytes()).await;
    let empty = conn.response(false).await;
    assert_eq!(empty.status, 204);
    assert!(empty.header("content-length").is_empty(), "{empty:?}");
    assert!(empty.header("transfer-encoding").is_empty(), "{empty:?}");

    conn.send(b"HEAD /head HTTP/1.1\r\nHost: app.localhost\r\n\r\n")
        .await;
    let head = conn.response(true).await;
    assert_eq!(
        head.header("content-length"),
        ["11"],
        "HEAD keeps the GET's length"
    );

    conn.send(get("/custom-reason").as_bytes()).await;
    let custom = conn.response(false).await;
    assert_eq!(
        (custom.status, custom.reason.as_str(), custom.text().as_str()),
        (299, "Quite Fine", "ok")
    );

    // The upstream's hop-by-hop headers stay on its hop, including those
    // its Connection header names.
    conn.send(get("/hop-by-hop").as_bytes()).await;
    let hop = conn.response(false).await;
    assert_eq!(hop.header("x-kept"), ["1"]);
    for name in ["connection", "x-secret", "keep-alive"] {
        assert!(hop.header(name).is_empty(), "{name} passed on: {hop:?}");
    }
    assert_eq!(hop.reason, "OK");

    // Everything above arrived whole and the connection still serves.
    conn.send(get("/plain").as_bytes()).await;
    assert_eq!(conn.response(false).await.text(), "plain\n");
    assert!(conn.buf.is_empty(), "stray bytes: {:?}", conn.buf);

    // A body cut short upstream closes the client's connection too, so the
    // client cannot take the short body for a whole one.
    conn.send(get("/short").as_bytes()).await;
    let head = conn
        .fill_until(|b| b.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4))
        .await;
    assert!(String::from_utf8_lossy(&head).contains("content-length: 100"));
    while conn.fill().await > 0 {}
    assert_eq!(conn.buf, b"only this");
    router.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_oversized_heads_are_refused_and_the_router_keeps_serving() {
    let (router, addr) = serve_app(scripted_upstream().await, common::options()).await;

    let mut bad = Conn::open(addr).await;
    bad.send(b"GET / HTTP/1.1\r\nHost app.localhost\r\n\r\n").await;
    assert_eq!(bad.response(false).await.status, 400);

    // A target the head parser takes but a URI may not hold: hyper sees the
    // whole request, and refuses it.
    let mut bad_target = Conn::open(addr).await;
    bad_target
        .send(b"GET /a<b HTTP/1.1\r\nHost: app.localhost\r\n\r\n")
        .await;
    assert_eq!(bad_target.response(false).await.status, 400);

    let mut huge = Conn::open(addr).await;
    let big = format!(
        "GET / HTTP/1.1\r\nHost: app.localhost\r\nX-Big: {}\r\n\r\n",
        "a".repeat(70 * 1024)
    );
    huge.send(big.as_bytes()).await;
    assert_eq!(huge.response(false).await.status, 431);

    let mut many = Conn::open(addr).await;
    let mut text = String::from("GET / HTTP/1.1\r\nHost: app.localhost\r\n");
    for i in 0..120 {
        text.push_str(&format!("X-H{i}: v\r\n"));
    }
    text.push_str("\r\n");
    many.send(text.as_bytes()).await;
    assert_eq!(many.response(false).await.status, 431);

    let mut good = Conn::open(addr).await;
    good.send(get("/").as_bytes()).await;
    assert_eq!(good.response(false).await.text(), "plain\n");

    // A large head, well past the first read of an idle connection, arrives
    // over several reads; the connection then serves small ones again.
    let mut large = Conn::open(addr).await;
    let head = format!(
        "GET / HTTP/1.1\r\nHost: app.localhost\r\nX-Large: {}\r\n\r\n",
        "b".repeat(6 * 1024)
    );
    for request in [head.as_str(), head.as_str(), get("/").as_str()] {
        large.send(request.as_bytes()).await;
        assert_eq!(large.response(false).await.text(), "plain\n");
    }
    router.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_slow_clients_are_cut_off_and_shutdown_does_not_wait_for_idle_ones() {
    let options = RouterOptions {
        header_read_timeout: Duration::from_millis(400),
        ..common::options()
    };
    let (router, addr) = serve_app(scripted_upstream().await, options).await;

    // Never sends anything.
    let mut silent = Conn::open(addr).await;
    let started = Instant::now();
    assert!(silent.closed_within(Duration::from_secs(3)).await);
    assert!(
        started.elapsed() >= Duration::from_millis(350),
        "{:?}",
        started.elapsed()
    );

    // Served, then idle: the deadline counts from the end of the response,
    // not from when the connection opened.
    let mut served = Conn::open(addr).await;
    tokio::time::sleep(Duration::from_millis(250)).await;
    served.send(get("/").as_bytes()).await;
    assert_eq!(served.response(false).await.status, 200);
    tokio::time::sleep(Duration::from_millis(250)).await;
    served.send(get("/").as_bytes()).await;
    assert_eq!(
        served.response(false).await.status,
        200,
        "the second request came in time"
    );
    assert!(served.closed_within(Duration::from_secs(3)).await);

    // Half a head, then nothing.
    let mut slow = Conn::open(addr).await;
    slow.send(b"GET / HTTP/1.1\r\nHost: app.loc").await;
    assert!(slow.closed_within(Duration::from_secs(3)).await);

    // Shutdown closes an idle keep-alive connection at once instead of
    // waiting out the drain timeout.
    let mut idle = Conn::open(addr).await;
    idle.send(get("/").as_bytes()).await;
    assert_eq!(idle.response(false).await.status, 200);
    let started = Instant::now();
    router.shutdown().await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert!(idle.closed_within(Duration::from_secs(1)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_in_flight_at_shutdown_is_answered_with_connection_close() {
    let (router, addr) = serve_app(scripted_upstream().await, common::options()).await;
    let mut conn = Conn::open(addr).await;
    conn.send(get("/slow").as_bytes()).await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    let shutdown = tokio::spawn(async move { router.shutdown().await });
    let answer = conn.response(false).await;
    assert_eq!((answer.status, answer.text().as_str()), (200, "plain\n"));
    assert_eq!(answer.header("connection"), ["close"]);
    assert!(conn.closed_within(Duration::from_secs(2)).await);
    shutdown.await.unwrap();
}
