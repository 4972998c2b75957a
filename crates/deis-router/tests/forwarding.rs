//! Forwarding to upstreams: headers, balancing, retries, failures, pooling.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use deis_router::ProxyError;
use deis_router::config::RouteAction;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarding_headers_are_set_and_hop_by_hop_headers_removed() {
    let up = upstream("web").await;
    let config = http_config(
        vec![vhost(
            "myapp",
            &["myapp.localhost"],
            vec![prefix("/", forward("web"))],
        )],
        vec![cluster("web", &[up.addr])],
    );
    let (router, log, addr) = serve(config).await;
    let reply = get_with(
        addr,
        "MyApp.localhost:1234",
        "/hello?x=1",
        &[
            ("x-forwarded-for", "203.0.113.7"),
            ("x-forwarded-proto", "https"),
            ("connection", "x-private"),
            ("x-private", "secret"),
            ("keep-alive", "timeout=1"),
            ("te", "trailers"),
            ("x-custom", "kept"),
        ],
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.upstream().as_deref(), Some("web"));
    assert!(reply.body.contains("path=/hello?x=1\n"), "{}", reply.body);
    assert_eq!(
        reply.seen("host"),
        ["MyApp.localhost:1234"],
        "Host is kept as sent"
    );
    assert_eq!(reply.seen("x-forwarded-for"), ["203.0.113.7, 127.0.0.1"]);
    assert_eq!(reply.seen("x-forwarded-proto"), ["http"]);
    assert_eq!(reply.seen("x-forwarded-port"), [addr.port().to_string()]);
    assert_eq!(reply.seen("x-custom"), ["kept"]);
    for hop in ["x-private", "keep-alive", "te", "connection"] {
        assert!(reply.seen(hop).is_empty(), "{hop} forwarded: {}", reply.body);
    }
    // The upstream's own hop-by-hop response header is not passed on.
    assert!(reply.headers.get("keep-alive").is_none());
    assert_eq!(reply.headers.get("x-upstream").unwrap(), "web");

    let request_id = reply.seen("x-request-id");
    assert_eq!(request_id.len(), 1);
    assert_eq!(request_id[0].len(), 36, "generated UUID: {request_id:?}");
    assert_eq!(request_id[0].as_bytes()[14], b'4', "UUID v4");

    let entry = log.0.lock().unwrap().last().cloned().unwrap();
    assert_eq!(entry.virtual_host.as_deref(), Some("myapp"));
    assert_eq!(entry.request_id.to_str().unwrap(), request_id[0]);
    assert_eq!(entry.upstream, Some(up.addr));
    assert_eq!(entry.status, 200);
    assert_eq!(entry.bytes_sent, reply.body.len() as u64);
    assert_eq!(entry.path(), "/hello?x=1");
    assert_eq!(entry.protocol, "http");
    let line = deis_router::format_heroku(&entry);
    assert!(
        line.starts_with("at=info method=GET path=\"/hello?x=1\" host=MyApp.localhost:1234 "),
        "{line}"
    );
    router.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_request_id_is_kept_only_when_valid() {
    let up = upstream("web").await;
    let config = one_app(&["*"], up.addr);
    let (router, _, addr) = serve(config).await;
    let good = "abcdefghij-ABCDEFGHIJ_0123456789+/=";
    let reply = get_with(addr, "a", "/", &[("x-request-id", good)]).await;
    assert_eq!(reply.seen("x-request-id"), [good]);
    let reply = get_with(addr, "a", "/", &[("x-request-id", "too-short")]).await;
    let seen = reply.seen("x-request-id");
    assert_eq!(seen.len(), 1);
    assert_ne!(seen[0], "too-short");
    assert_eq!(seen[0].len(), 36);
    router.shutdown().await;
}

/// A request without a body is forwarded from its head as received (the
/// lean path); one with a body through hyper's header map. Both must reach
/// the upstream with the same headers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_with_and_without_a_body_are_forwarded_with_the_same_headers() {
    let up = upstream("web").await;
    let config = one_app(&["app.localhost"], up.addr);
    let (router, _, addr) = serve(config).await;
    let kept_id = "abcdefghij-ABCDEFGHIJ_0123456789+/=";
    let headers = [
        ("host", "App.localhost"),
        ("x-forwarded-for", "198.51.100.1"),
        ("X-Forwarded-For", "203.0.113.7, 192.0.2.1"),
        ("x-forwarded-proto", "https"),
        ("X-Forwarded-Port", "1"),
        ("connection", "keep-alive, X-Private"),
        ("x-private", "secret"),
        ("proxy-connection", "keep-alive"),
        ("te", "trailers"),
        ("trailer", "x-checksum"),
        ("x-custom", "a"),
        ("X-Custom", "b"),
    ];
    let seen = |reply: &common::Reply| {
        let mut lines: Vec<String> = reply
            .body
            .lines()
            .filter(|l| !l.starts_with("content-length:") && !l.starts_with("x-request-id:"))
            .map(str::to_owned)
            .collect();
        lines.sort();
        lines
    };
    let send = |method: &str, body: &'static str, request_id: &str| {
        let mut builder = Request::builder().method(method).uri("/p?q=1");
        for (name, value) in headers {
            builder = builder.header(name, value);
        }
        let request = builder
            .header("x-request-id", request_id)
            .body(full(Bytes::from_static(body.as_bytes())))
            .unwrap();
        async move { Client::connect(addr).await.send(request).await.unwrap() }
    };
    for request_id in [kept_id, "too-short"] {
        let lean = send("GET", "", request_id).await;
        let hyper = send("POST", "abc", request_id).await;
        assert_eq!(lean.status, StatusCode::OK);
        assert_eq!(hyper.status, StatusCode::OK);
        assert_eq!(
            seen(&lean),
            seen(&hyper),
            "lean:\n{}\nhyper:\n{}",
            lean.body,
            hyper.body
        );
        assert_eq!(
            lean.seen("x-forwarded-for"),
            ["198.51.100.1, 203.0.113.7, 192.0.2.1, 127.0.0.1"]
        );
        assert_eq!(lean.seen("x-forwarded-proto"), ["http"]);
        assert_eq!(lean.seen("x-forwarded-port"), [addr.port().to_string()]);
        assert_eq!(lean.seen("x-custom"), ["a", "b"]);
        for hop in ["x-private", "proxy-connection", "te", "trailer", "connection"] {
            assert!(lean.seen(hop).is_empty(), "{hop} forwarded: {}", lean.body);
        }
        for reply in [&lean, &hyper] {
            let ids = reply.seen("x-request-id");
            assert_eq!(ids.len(), 1, "{}", reply.body);
            if request_id == kept_id {
                assert_eq!(ids[0], kept_id);
            } else {
                assert_eq!(ids[0].len(), 36, "a fresh UUID: {ids:?}");
            }
        }
        assert_eq!(hyper.seen("content-length"), ["3"]);
    }
    router.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_balanced_round_robin_over_endpoints() {
    let a = upstream("a").await;
    let b = upstream("b").await;
    let config = http_config(
        vec![vhost("app", &["*"], vec![prefix("/", forward("web"))])],
        vec![cluster("web", &[a.addr, b.addr])],
    );
    let (router, _, addr) = serve(config).await;
    let mut client = Client::connect(addr).await;
    let mut seen = Vec::new();
    for _ in 0..10 {
        seen.push(client.get("app", "/").await.upstream().unwrap());
    }
    for pair in seen.windows(2) {
        assert_ne!(pair[0], pair[1], "strict alternation: {seen:?}");
    }
    assert_eq!(a.requests.load(Ordering::SeqCst), 5);
    assert_eq!(b.requests.load(Ordering::SeqCst), 5);
    router.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_connections_are_reused() {
    let up = upstream("web").await;
    let config = one_app(&["*"], up.addr);
    let (router, _, addr) = serve(config).await;
    // Sequential requests on separate client connections share one upstream connection.
    for _ in 0..20 {
        assert_eq!(get(addr, "app", "/").await.status, StatusCode::OK);
    }
    assert_eq!(up.requests.load(Ordering::SeqCst), 20);
    // One pool per worker: at most one connection each.
    let connections = up.connections.load(Ordering::SeqCst);
    assert!(connections <= WORKERS, "{connections} upstream connections");
    router.shutdown().await;
}

/// An upstream that answers one request per connection with keep-alive,
/// then closes the idle connection 20 ms later (a short server keep-alive
/// timeout). Counts the connections it accepted.
async fn closing_upstream() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&accepted);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut read = 0;
                while !buf[..read].windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf[read..]).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => read += n,
                    }
                }
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\nconnection: keep-alive\r\n\r\nok\n")
                    .await;
                tokio::time::sleep(Duration::from_millis(20)).await;
            });
        }
    });
    (addr, accepted)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_upstream_connections_closed_by_the_app_are_not_reused() {
    let (up, accepted) = closing_upstream().await;
    let config = http_config(
        vec![vhost("app", &["*"], vec![prefix("/", forward("up"))])],
        vec![cluster("up", &[up])],
    );
    let (router, _, addr) = serve(config).await;
    let mut client = Client::connect(addr).await;
    for round in 1..=3 {
        // A POST is not retried, so a dead pooled socket would fail it.
        let reply = client
            .send(
                Request::post("/")
                    .header("host", "app")
                    .body(full(Bytes::new()))
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(reply.status, StatusCode::OK, "round {round}: {}", reply.body);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        3,
        "a new upstream connection each time"
    );
    router.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_connections_are_retried_on_another_endpoint() {
    let good = upstream("good").await;
    let dead = refused_addr().await;
    let route = RouteAction::Forward {
        cluster: "web".into(),
        timeout: Some(Duration::from_secs(5)),
        retries: 2,
    };
    let config = http_config(
        vec![vhost("app", &["*"], vec![prefix("/", route)])],
        vec![cluster("web", &[dead, good.addr])],
    );
    let (router, _, addr) = serve(config).await;
    for i in 0..10 {
        let reply = get(addr, "app", "/").await;
        assert_eq!(reply.status, StatusCode::OK, "request {i}: {}", reply.body);
        assert_eq!(reply.upstream().as_deref(), Some("good"));
    }
    router.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_endpoints_refusing_gives_503_after_retries() {
    let dead = refused_addr().await;
    let route = RouteAction::Forward {
        cluster: "web".into(),
        timeout: None,
        retries: 1,
    };
    let config = http_config(
        vec![vhost("app", &["*"], vec![prefix("/", route)])],
        vec![cluster("web", &[dead])],
    );
    let (router, log, addr) = serve(config).await;
    let reply = get(addr, "app", "/").await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(reply.body.contains("connection failure"), "{}", reply.body);
    let entry = log.0.lock().unwrap().last().cloned().unwrap();
    assert_eq!(entry.error, Some(ProxyError::ConnectFailed));
    assert_eq!(entry.upstream, Some(dead));
    router.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_endpoints_or_no_cluster_gives_503() {
    let config = http_config(
        vec![
            vhost("empty", &["empty.localhost"], vec![prefix("/", forward("empty"))]),
            vhost(
                "missing",
                &["missing.localhost"],
                vec![prefix("/", forward("nonexistent"))],
            ),
        ],
        vec![cluster("empty", &[])],
    );
    let (router, log, addr) = serve(config).await;
    let reply = get(addr, "empty.localhost", "/").await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reply.body, "no healthy upstream\n");
    let entry = log.0.lock().unwrap().last().cloned().unwrap();
    assert_eq!(entry.error, Some(ProxyError::NoEndpoints));
    let line = deis_router::format_heroku(&entry);
    assert!(
        line.starts_with("at=error code=H14 desc=\"No web processes running\""),
        "{line}"
    );

    let reply = get(addr, "missing.localhost", "/").await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    router.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_upstream_gets_504_after_the_route_timeout() {
    let up = upstream("slow").await;
    let route = RouteAction::Forward {
        cluster: "web".into(),
        timeout: Some(Duration::from_millis(300)),
        retries: 0,
    };
    let config = http_config(
        vec![vhost("app", &["*"], vec![prefix("/", route)])],
        vec![cluster("web", &[up.addr])],
    );
    let (router, log, addr) = serve(config).await;
    let started = Instant::now();
    let reply = get(addr, "app", "/slow").await;
    let took = started.elapsed();
    assert_eq!(reply.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(reply.body, "upstream request timeout\n");
    assert!(
        took >= Duration::from_millis(290) && took < Duration::from_millis(1500),
        "{took:?}"
    );
    let entry = log.0.lock().unwrap().last().cloned().unwrap();
    assert_eq!(entry.error, Some(ProxyError::Timeout));
    // Fast requests still pass.
    assert_eq!(get(addr, "app", "/").await.status, StatusCode::OK);
    // On one keep-alive connection, each request gets its own deadline:
    // fast ones in between do not move a slow one's.
    let mut client = Client::connect(addr).await;
    for _ in 0..2 {
        assert_eq!(client.get("app", "/").await.status, StatusCode::OK);
        let started = Instant::now();
        assert_eq!(
            client.get("app", "/slow").await.status,
            StatusCode::GATEWAY_TIMEOUT
        );
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(290) && took < Duration::from_millis(1500),
            "{took:?}"
        );
    }
    router.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_bodies_stream_both_ways() {
    let up = upstream("web").await;
    let config = one_app(&["*"], up.addr);
    let (router, log, addr) = serve(config).await;
    let payload: Vec<u8> = (0..4 * 1024 * 1024).map(|i: u32| (i % 251) as u8).collect();
    let mut client = Client::connect(addr).await;
    let request = Request::post("/echo")
        .header("host", "app")
        .body(
            Full::new(Bytes::from(payload.clone()))
                .map_err(|never| match never {})
                .boxed(),
        )
        .unwrap();
    let reply = client.send(request).await.unwrap();
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.raw.len(), payload.len());
    assert!(reply.raw == payload, "echoed body differs");
    // The same client connection keeps working.
    assert_eq!(client.get("app", "/").await.status, StatusCode::OK);
    let entries = log.0.lock().unwrap().clone();
    assert!(
        entries.iter().any(|e| e.bytes_sent == payload.len() as u64),
        "echo bytes logged"
    );
    router.shutdown().await;
}

/// Workers with an io_uring (the default, where the kernel allows it) and
/// workers with epoll alone serve the same: many requests on one
/// connection, a response larger than every buffer on the way, and an
/// upstream that closes its idle keep-alive connections.
#[tokio::test]
async fn io_uring_and_epoll_workers_serve_alike() {
    // An upstream that answers one request per connection, then closes
    // it without saying so, as one whose keep-alive timeout is short.
    let closing = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let closing_addr = closing.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = closing.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nonce")
                    .await;
                tokio::time::sleep(Duration::from_millis(20)).await;
            });
        }
    });
    for io_uring in [true, false] {
        let up = upstream("web").await;
        let config = http_config(
            vec![
                vhost("app", &["app.localhost"], vec![prefix("/", forward("web"))]),
                vhost(
                    "closing",
                    &["closing.localhost"],
                    vec![prefix("/", forward("closing"))],
                ),
            ],
            vec![cluster("web", &[up.addr]), cluster("closing", &[closing_addr])],
        );
        let options = deis_router::RouterOptions {
            io_uring,
            ..options()
        };
        let (router, _, addr) = serve_with(options, config).await;
        let expected_rings = if io_uring { WORKERS } else { 0 };
        assert_eq!(router.io_uring_workers(), expected_rings, "io_uring {io_uring}");

        let mut client = Client::connect(addr).await;
        for i in 0..40 {
            let reply = client.get("app.localhost", &format!("/n{i}")).await;
            assert_eq!(reply.status, StatusCode::OK, "io_uring {io_uring}");
            assert!(reply.body.contains(&format!("path=/n{i}\n")), "{}", reply.body);
        }
        let big = client.get("app.localhost", "/big").await;
        assert_eq!(big.status, StatusCode::OK);
        assert!(
            big.raw == big_body(),
            "io_uring {io_uring}: /big arrived changed ({} bytes)",
            big.raw.len()
        );
        let after = client.get("app.localhost", "/after").await;
        assert!(after.body.contains("path=/after\n"), "{}", after.body);
        assert!(
            up.connections.load(Ordering::SeqCst) < 10,
            "io_uring {io_uring}: upstream connections are not reused ({} for 42 requests)",
            up.connections.load(Ordering::SeqCst)
        );

        for _ in 0..5 {
            let reply = client.get("closing.localhost", "/").await;
            assert_eq!(
                reply.status,
                StatusCode::OK,
                "io_uring {io_uring}: {}",
                reply.body
            );
            assert_eq!(reply.body, "once");
            // Long enough for the upstream to have closed the pooled socket.
            tokio::time::sleep(Duration::from_millis(60)).await;
        }
        router.shutdown().await;
    }
}
