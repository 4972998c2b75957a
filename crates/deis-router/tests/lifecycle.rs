//! Applying configs (under load, invalid ones), listener removal, shutdown.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use common::*;
use deis_router::config::{Listener, ListenerKind, RouteTable, RouterConfig, SniCertificate};
use deis_router::{ApplyError, RouterOptions};
use http::StatusCode;

fn two_upstream_config(target: &str, a: std::net::SocketAddr, b: std::net::SocketAddr) -> RouterConfig {
    let mut vhosts = vec![vhost(
        "app",
        &["app.localhost"],
        vec![prefix("/", forward(target))],
    )];
    if target == "b" {
        vhosts.push(vhost(
            "new",
            &["new.localhost"],
            vec![prefix("/", respond(200, "new"))],
        ));
    }
    let mut config = http_config(vhosts, vec![cluster("a", &[a]), cluster("b", &[b])]);
    config.version = target.into();
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applying_configs_under_load_loses_no_request_and_switches_routes() {
    let a = upstream("a").await;
    let b = upstream("b").await;
    let (router, _, addr) = serve(two_upstream_config("a", a.addr, b.addr)).await;

    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..8 {
        let (stop, ok) = (stop.clone(), ok.clone());
        workers.push(tokio::spawn(async move {
            // One keep-alive connection per worker for the whole test.
            let mut client = Client::connect(addr).await;
            let mut failures = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                match client.try_get("app.localhost", "/", &[]).await {
                    Ok(reply) if reply.status == StatusCode::OK => {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(reply) => failures.push(format!("status {}", reply.status)),
                    Err(e) => {
                        failures.push(e.to_string());
                        break;
                    }
                }
            }
            (client, failures)
        }));
    }
    for round in 0..40 {
        tokio::time::sleep(Duration::from_millis(25)).await;
        let target = if round % 2 == 0 { "b" } else { "a" };
        router
            .apply(two_upstream_config(target, a.addr, b.addr))
            .await
            .unwrap();
        assert_eq!(addr_of(&router, "http"), addr, "the socket is kept");
    }
    router
        .apply(two_upstream_config("b", a.addr, b.addr))
        .await
        .unwrap();
    stop.store(true, Ordering::Relaxed);
    let mut total_failures = Vec::new();
    for worker in workers {
        let (mut client, failures) = worker.await.unwrap();
        total_failures.extend(failures);
        // The same keep-alive connection now sees the last config.
        let reply = client.get("app.localhost", "/").await;
        assert_eq!(reply.upstream().as_deref(), Some("b"));
        assert_eq!(client.get("new.localhost", "/").await.body, "new");
    }
    assert!(total_failures.is_empty(), "failed requests: {total_failures:?}");
    let served = ok.load(Ordering::Relaxed);
    assert!(served > 200, "only {served} requests ran");
    assert!(a.requests.load(Ordering::SeqCst) > 0 && b.requests.load(Ordering::SeqCst) > 0);
    router.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_certificate_is_skipped_and_does_not_hold_back_the_config() {
    let v1 = http_config(
        vec![vhost("app", &["*"], vec![prefix("/", respond(200, "v1"))])],
        vec![],
    );
    let (router, _, addr) = serve(v1).await;
    let mut client = Client::connect(addr).await;
    assert_eq!(client.get("app", "/").await.body, "v1");

    let mut v2 = http_config(
        vec![vhost("app", &["*"], vec![prefix("/", respond(200, "v2"))])],
        vec![],
    );
    let dir = tempfile::tempdir().unwrap();
    let (cert, _) = self_signed(dir.path(), "a.localhost");
    let (_, other_key) = self_signed(dir.path(), "b.localhost");
    v2.listeners.push(Listener {
        name: "https".into(),
        addr: any_port(),
        kind: ListenerKind::Https {
            routes: "main".into(),
            certificates: vec![
                SniCertificate {
                    server_names: vec!["a.localhost".into()],
                    certificate_chain: cert.clone(),
                    // A valid key, but not the certificate's.
                    private_key: other_key,
                },
                SniCertificate {
                    server_names: vec!["c.localhost".into()],
                    certificate_chain: cert,
                    private_key: "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n".into(),
                },
            ],
        },
    });
    // Both certificates are left out; the rest of the config applies (an
    // xDS ACK), rather than one bad upload freezing every other change.
    router.apply(v2).await.unwrap();
    assert_eq!(client.get("app", "/").await.body, "v2", "new config in force");
    assert_eq!(get(addr, "app", "/").await.body, "v2");
    assert_eq!(router.local_addrs().len(), 2, "the https listener was bound");
    router.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_names_busy_addresses_and_bad_routes_are_refused() {
    let v1 = http_config(
        vec![vhost("app", &["*"], vec![prefix("/", respond(200, "v1"))])],
        vec![],
    );
    let (router, _, addr) = serve(v1.clone()).await;

    let mut duplicate = v1.clone();
    duplicate.listeners.push(http_listener("http", "main"));
    assert_eq!(
        router.apply(duplicate).await,
        Err(ApplyError::DuplicateListener("http".into()))
    );

    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut conflict = http_config(
        vec![vhost("app", &["*"], vec![prefix("/", respond(200, "v2"))])],
        vec![],
    );
    conflict.listeners.push(Listener {
        name: "other".into(),
        addr: busy.local_addr().unwrap(),
        kind: ListenerKind::Http {
            routes: "main".into(),
        },
    });
    assert!(matches!(
        router.apply(conflict).await,
        Err(ApplyError::Bind { .. })
    ));

    let same_domain_twice = http_config(
        vec![
            vhost("one", &["x.localhost"], vec![prefix("/", respond(200, "1"))]),
            vhost("two", &["X.localhost"], vec![prefix("/", respond(200, "2"))]),
        ],
        vec![],
    );
    assert!(matches!(
        router.apply(same_domain_twice).await,
        Err(ApplyError::InvalidRoute { .. })
    ));

    assert_eq!(get(addr, "app", "/").await.body, "v1");
    assert_eq!(router.local_addrs(), vec![("http".to_owned(), addr)]);
    router.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_a_listener_closes_its_socket_and_keeps_the_others() {
    let mut config = http_config(
        vec![vhost("app", &["*"], vec![prefix("/", respond(200, "ok"))])],
        vec![],
    );
    config.listeners.push(http_listener("admin", "main"));
    let (router, _, http_addr) = serve(config.clone()).await;
    let admin_addr = addr_of(&router, "admin");
    assert_eq!(get(admin_addr, "app", "/").await.body, "ok");
    let mut idle_admin = Client::connect(admin_addr).await;
    assert_eq!(idle_admin.get("app", "/").await.status, StatusCode::OK);
    let mut kept = Client::connect(http_addr).await;
    assert_eq!(kept.get("app", "/").await.status, StatusCode::OK);

    config.listeners.retain(|l| l.name != "admin");
    router.apply(config).await.unwrap();
    assert_not_served(admin_addr, "the removed admin listener").await;
    assert_eq!(router.local_addrs(), vec![("http".to_owned(), http_addr)]);
    // The removed listener's idle keep-alive connection is closed...
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(idle_admin.try_get("app", "/", &[]).await.is_err());
    // ...while the kept listener's connections go on.
    assert_eq!(kept.get("app", "/").await.body, "ok");
    router.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moving_a_listener_rebinds_it() {
    let config = http_config(
        vec![vhost("app", &["*"], vec![prefix("/", respond(200, "ok"))])],
        vec![],
    );
    let (router, _, old_addr) = serve(config.clone()).await;
    let target = refused_addr().await;
    let mut moved = config;
    moved.listeners[0].addr = target;
    router.apply(moved).await.unwrap();
    assert_eq!(addr_of(&router, "http"), target);
    assert_eq!(get(target, "app", "/").await.body, "ok");
    assert_not_served(old_addr, "the listener's old address").await;
    router.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_in_flight_requests_then_refuses() {
    let up = upstream("slow").await;
    let config = one_app(&["*"], up.addr);
    let (router, _, addr) = serve(config.clone()).await;
    let in_flight = tokio::spawn(async move { get(addr, "app", "/slow").await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    router.shutdown().await;
    let reply = in_flight.await.unwrap();
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body, "slow");
    assert_not_served(addr, "after shutdown").await;
    assert!(router.local_addrs().is_empty());
    assert_eq!(router.apply(config).await, Err(ApplyError::ShutDown));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_route_table_reference_gives_404_not_a_crash() {
    let mut config = RouterConfig {
        version: "x".into(),
        listeners: vec![http_listener("http", "missing")],
        route_tables: HashMap::new(),
        clusters: HashMap::new(),
    };
    let (router, _, addr) = serve(config.clone()).await;
    assert_eq!(get(addr, "app", "/").await.status, StatusCode::NOT_FOUND);
    config
        .route_tables
        .insert("missing".into(), Arc::new(RouteTable::default()));
    router.apply(config).await.unwrap();
    assert_eq!(get(addr, "app", "/").await.status, StatusCode::NOT_FOUND);
    router.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_worker_count_serves_and_shuts_down() {
    let up = upstream("web").await;
    // 0: everything on the caller's runtime.
    for workers in [0, 1, 3] {
        let (router, log) = router_with(RouterOptions {
            workers,
            ..RouterOptions::default()
        });
        let config = one_app(&["*"], up.addr);
        router.apply(config).await.unwrap();
        let addr = addr_of(&router, "http");
        let mut tasks = Vec::new();
        for _ in 0..6 {
            tasks.push(tokio::spawn(async move {
                let mut client = Client::connect(addr).await;
                for _ in 0..5 {
                    assert_eq!(client.get("app", "/").await.upstream().as_deref(), Some("web"));
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(log.0.lock().unwrap().len(), 30, "workers={workers}");
        router.shutdown().await;
        assert_not_served(addr, &format!("after shutdown with {workers} workers")).await;
    }
}
