//! Not a test: serves the router for an external load generator (wrk).
//! `BENCH_LISTEN=127.0.0.1:18090 BENCH_UPSTREAM=127.0.0.1:18081 BENCH_SECS=60 \
//!  cargo test --release -p deis-router --test bench -- --ignored --nocapture`
//! runs it with one worker thread (`BENCH_WORKERS`), like one nginx worker.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use deis_router::config::{
    Cluster, Listener, ListenerKind, PathMatch, Route, RouteAction, RouteTable, RouterConfig, VirtualHost,
};
use deis_router::{NoAccessLog, Router, RouterOptions};

fn env(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

#[tokio::test]
#[ignore = "benchmark server; run by hand"]
async fn bench_serve() {
    let listen = env("BENCH_LISTEN", "127.0.0.1:18090").parse().unwrap();
    let upstream = env("BENCH_UPSTREAM", "127.0.0.1:18081").parse().unwrap();
    let secs: u64 = env("BENCH_SECS", "60").parse().unwrap();
    let table = RouteTable {
        virtual_hosts: vec![VirtualHost {
            name: "app".into(),
            domains: vec!["app.localhost".into()],
            allow: None,
            routes: vec![Route {
                path: PathMatch::Prefix("/".into()),
                action: RouteAction::Forward {
                    cluster: "web".into(),
                    timeout: Some(Duration::from_secs(30)),
                    retries: 1,
                },
            }],
        }],
    };
    let config = RouterConfig {
        version: "bench".into(),
        listeners: vec![Listener {
            name: "http".into(),
            addr: listen,
            kind: ListenerKind::Http {
                routes: "main".into(),
            },
        }],
        route_tables: HashMap::from([("main".to_owned(), Arc::new(table))]),
        clusters: HashMap::from([(
            "web".to_owned(),
            Arc::new(Cluster {
                name: "web".into(),
                connect_timeout: Duration::from_secs(1),
                endpoints: vec![upstream],
            }),
        )]),
    };
    let workers = env("BENCH_WORKERS", "1").parse().unwrap();
    let router = Router::new(
        RouterOptions {
            workers,
            ..RouterOptions::default()
        },
        Arc::new(NoAccessLog),
    );
    router.apply(config).await.unwrap();
    println!("router listening on {listen}, forwarding to {upstream} for {secs}s");
    tokio::time::sleep(Duration::from_secs(secs)).await;
    router.shutdown().await;
}
