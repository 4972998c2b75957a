//! WebSocket, HTTP/2, HTTPS with SNI, and TCP listeners.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use deis_router::config::{Listener, ListenerKind, RouteTable, RouterConfig, SniCertificate};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Reads until the end of a response head.
async fn read_head(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut byte))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            n,
            1,
            "connection closed inside the head: {}",
            String::from_utf8_lossy(&head)
        );
        head.push(byte[0]);
    }
    String::from_utf8(head).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_upgrade_is_tunnelled_both_ways() {
    let up = upstream("ws").await;
    let config = http_config(
        vec![vhost("app", &["*"], vec![prefix("/", forward("ws"))])],
        vec![cluster("ws", &[up.addr])],
    );
    let (router, log, addr) = serve(config).await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(
            b"GET /ws HTTP/1.1\r\nHost: app.localhost\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\
              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        )
        .await
        .unwrap();
    let head = read_head(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let lower = head.to_ascii_lowercase();
    assert!(lower.contains("upgrade: websocket"), "{head}");
    assert!(lower.contains("sec-websocket-accept: test"), "{head}");
    for message in [&b"hello"[..], b"second frame", &[0u8, 1, 2, 255]] {
        stream.write_all(message).await.unwrap();
        let mut echoed = vec![0u8; message.len()];
        tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut echoed))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(echoed, message);
    }
    let entry = log.0.lock().unwrap().last().cloned().unwrap();
    assert_eq!(entry.status, 101);
    // Closing the client ends the tunnel, so shutdown has nothing to wait for.
    drop(stream);
    let started = Instant::now();
    router.shutdown().await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "tunnel outlived its client"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_prior_knowledge_is_served_and_forwarded_as_http1() {
    let up = upstream("web").await;
    let config = http_config(
        vec![
            vhost("app", &["app.localhost"], vec![prefix("/", forward("web"))]),
            vhost(
                "other",
                &["other.localhost"],
                vec![prefix("/", respond(200, "other"))],
            ),
        ],
        vec![cluster("web", &[up.addr])],
    );
    let (router, log, addr) = serve(config).await;
    let port = addr.port();
    let (code, out, err) = curl(vec![
        "--http2-prior-knowledge".into(),
        "--resolve".into(),
        format!("app.localhost:{port}:127.0.0.1"),
        "-H".into(),
        "cookie: a=1".into(),
        "-H".into(),
        "cookie: b=2".into(),
        "-w".into(),
        "\nversion=%{http_version} status=%{http_code}".into(),
        format!("http://app.localhost:{port}/h2?q=1"),
    ])
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.ends_with("version=2 status=200"), "{out}");
    assert!(out.contains("upstream=web"), "{out}");
    assert!(out.contains("path=/h2?q=1\n"), "{out}");
    assert!(
        out.contains(&format!("host: app.localhost:{port}\n")),
        "authority becomes Host: {out}"
    );
    assert!(out.contains("cookie: a=1; b=2\n"), "cookies joined: {out}");
    let (code, out, err) = curl(vec![
        "--http2-prior-knowledge".into(),
        "--resolve".into(),
        format!("other.localhost:{port}:127.0.0.1"),
        format!("http://other.localhost:{port}/"),
    ])
    .await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "other");
    assert!(
        log.0
            .lock()
            .unwrap()
            .iter()
            .any(|e| e.method == http::Method::GET && e.status == 200)
    );
    router.shutdown().await;
}

fn https_config(certificates: Vec<SniCertificate>, up: SocketAddr) -> RouterConfig {
    let table = RouteTable {
        virtual_hosts: vec![vhost("app", &["*"], vec![prefix("/", forward("web"))])],
    };
    RouterConfig {
        version: "tls".into(),
        listeners: vec![Listener {
            name: "https".into(),
            addr: any_port(),
            kind: ListenerKind::Https {
                routes: "main".into(),
                certificates,
            },
        }],
        route_tables: HashMap::from([("main".to_owned(), Arc::new(table))]),
        clusters: [cluster("web", &[up])].into_iter().collect(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_picks_the_certificate_by_sni_and_refuses_unknown_names() {
    let dir = tempfile::tempdir().unwrap();
    let (exact_cert, exact_key) = self_signed(dir.path(), "a.tls.localhost");
    let (wild_cert, wild_key) = self_signed(dir.path(), "*.wild.localhost");
    let up = upstream("web").await;
    let certificates = vec![
        SniCertificate {
            server_names: vec!["a.tls.localhost".into()],
            certificate_chain: exact_cert,
            private_key: exact_key,
        },
        SniCertificate {
            server_names: vec!["*.wild.localhost".into()],
            certificate_chain: wild_cert,
            private_key: wild_key,
        },
    ];
    let (router, log) = router();
    router.apply(https_config(certificates, up.addr)).await.unwrap();
    let port = addr_of(&router, "https").port();
    let ca = |name: &str| {
        dir.path()
            .join(format!("{}.crt", name.replace('*', "star")))
            .display()
            .to_string()
    };

    // Each name verifies against its own certificate only.
    for (host, ca_name) in [
        ("a.tls.localhost", "a.tls.localhost"),
        ("x.wild.localhost", "*.wild.localhost"),
    ] {
        let (code, out, err) = curl(vec![
            "--cacert".into(),
            ca(ca_name),
            "--resolve".into(),
            format!("{host}:{port}:127.0.0.1"),
            "-w".into(),
            "\nversion=%{http_version}".into(),
            format!("https://{host}:{port}/"),
        ])
        .await;
        assert_eq!(code, 0, "{host}: {err}");
        assert!(out.contains("upstream=web"), "{out}");
        assert!(out.contains("x-forwarded-proto: https\n"), "{out}");
        assert!(out.ends_with("version=2"), "ALPN h2: {out}");
    }
    let (code, _, _) = curl(vec![
        "--cacert".into(),
        ca("*.wild.localhost"),
        "--resolve".into(),
        format!("a.tls.localhost:{port}:127.0.0.1"),
        format!("https://a.tls.localhost:{port}/"),
    ])
    .await;
    assert_ne!(code, 0, "a.tls.localhost must not get the wildcard certificate");

    // Envoy's wildcards take one or more labels; curl verifies only one, so
    // look at the served certificate's subject instead.
    let (code, _, err) = curl(vec![
        "-k".into(),
        "-v".into(),
        "--resolve".into(),
        format!("x.y.wild.localhost:{port}:127.0.0.1"),
        format!("https://x.y.wild.localhost:{port}/"),
    ])
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("CN=*.wild.localhost"), "{err}");

    // HTTP/1.1 over TLS works too.
    let (code, out, err) = curl(vec![
        "--http1.1".into(),
        "--cacert".into(),
        ca("a.tls.localhost"),
        "--resolve".into(),
        format!("a.tls.localhost:{port}:127.0.0.1"),
        "-w".into(),
        "\nversion=%{http_version}".into(),
        format!("https://a.tls.localhost:{port}/"),
    ])
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.ends_with("version=1.1"), "{out}");
    assert!(out.contains("x-forwarded-proto: https\n"), "{out}");

    // Unknown name, and no SNI at all: the handshake is refused.
    let (code, _, err) = curl(vec![
        "-k".into(),
        "--resolve".into(),
        format!("unknown.localhost:{port}:127.0.0.1"),
        format!("https://unknown.localhost:{port}/"),
    ])
    .await;
    assert_eq!(code, 35, "TLS handshake failure expected: {err}");
    let (code, _, err) = curl(vec!["-k".into(), format!("https://127.0.0.1:{port}/")]).await;
    assert_eq!(code, 35, "no SNI must be refused: {err}");
    assert!(log.0.lock().unwrap().iter().all(|e| e.protocol == "https"));
    router.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_with_the_wrong_key_is_skipped_and_the_others_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let (mism_cert, _) = self_signed(dir.path(), "mism.tls.localhost");
    let (_, other_key) = self_signed(dir.path(), "other.tls.localhost");
    let (good_cert, good_key) = self_signed(dir.path(), "good.tls.localhost");
    let up = upstream("web").await;
    // `deis certs:add mism www.crt other.key`, attached to its domain.
    let mism = SniCertificate {
        server_names: vec!["mism.tls.localhost".into()],
        certificate_chain: mism_cert,
        private_key: other_key,
    };
    let good = SniCertificate {
        server_names: vec!["good.tls.localhost".into()],
        certificate_chain: good_cert,
        private_key: good_key,
    };
    let (router, _log) = router();
    router
        .apply(https_config(vec![mism.clone()], up.addr))
        .await
        .unwrap();
    // Another app's valid certificate, attached later: served by SNI while
    // the bad one is still in the feed.
    router
        .apply(https_config(vec![mism, good], up.addr))
        .await
        .unwrap();
    let port = addr_of(&router, "https").port();
    let (code, out, err) = curl(vec![
        "--cacert".into(),
        dir.path().join("good.tls.localhost.crt").display().to_string(),
        "--resolve".into(),
        format!("good.tls.localhost:{port}:127.0.0.1"),
        format!("https://good.tls.localhost:{port}/"),
    ])
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("upstream=web"), "{out}");
    // Only the bad certificate's domain has no TLS.
    let (code, _, err) = curl(vec![
        "-k".into(),
        "--resolve".into(),
        format!("mism.tls.localhost:{port}:127.0.0.1"),
        format!("https://mism.tls.localhost:{port}/"),
    ])
    .await;
    assert_eq!(code, 35, "TLS handshake failure expected: {err}");
    router.shutdown().await;
}

async fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = stream.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_listener_proxies_bytes_and_closes_idle_connections() {
    let echo = echo_server().await;
    let dead = refused_addr().await;
    let (router, _) = router();
    let config = RouterConfig {
        version: "tcp".into(),
        listeners: vec![Listener {
            name: "builder".into(),
            addr: any_port(),
            kind: ListenerKind::Tcp {
                cluster: "git".into(),
                idle_timeout: Duration::from_millis(400),
            },
        }],
        route_tables: HashMap::new(),
        clusters: [cluster("git", &[dead, echo])].into_iter().collect(),
    };
    router.apply(config).await.unwrap();
    let addr = addr_of(&router, "builder");
    for _ in 0..3 {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(b"SSH-2.0-test\r\n").await.unwrap();
        let mut buf = [0u8; 14];
        tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&buf, b"SSH-2.0-test\r\n");
    }
    // Traffic keeps it open; silence closes it.
    let mut stream = TcpStream::connect(addr).await.unwrap();
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        stream.write_all(b"x").await.unwrap();
        let mut one = [0u8; 1];
        tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut one))
            .await
            .unwrap()
            .unwrap();
    }
    let started = Instant::now();
    let mut rest = Vec::new();
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest))
        .await
        .unwrap()
        .unwrap_or(0);
    assert_eq!(n, 0);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(300) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
    router.shutdown().await;
}

/// An upstream speaking HTTP/1.0 as Python's `http.server` does: no
/// length, the body ends when the connection closes.
async fn http10_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let head = read_head(&mut stream).await.to_ascii_lowercase();
                let length = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|n| n.trim().parse().ok())
                    .unwrap_or(0);
                // Read the body: closing with it unread would reset the
                // connection instead of ending the response.
                let _ = stream.read_exact(&mut vec![0; length]).await;
                let _ = stream
                    .write_all(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nhello from 1.0\n")
                    .await;
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http10_upstream_is_answered_as_http11() {
    let up = http10_server().await;
    let config = http_config(
        vec![vhost(
            "old",
            &["old.localhost"],
            vec![prefix("/", forward("old"))],
        )],
        vec![cluster("old", &[up])],
    );
    let (router, _log, addr) = serve(config).await;
    let port = addr.port();
    // Without a body (the lean path) and with one (through hyper's client).
    for extra in [vec![], vec!["-d".to_owned(), "x=1".to_owned()]] {
        let mut args = vec![
            "-i".to_owned(),
            "--resolve".to_owned(),
            format!("old.localhost:{port}:127.0.0.1"),
        ];
        args.extend(extra.clone());
        args.push(format!("http://old.localhost:{port}/"));
        let (code, out, err) = curl(args).await;
        assert_eq!(code, 0, "{extra:?}: {err} {out}");
        assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{extra:?}: {out}");
        assert!(out.ends_with("\r\n\r\nhello from 1.0\n"), "{extra:?}: {out}");
    }
    router.shutdown().await;
}
