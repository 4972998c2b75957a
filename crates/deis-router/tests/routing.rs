//! Virtual host and route selection, and the router's own answers.

mod common;

use common::*;
use deis_router::config::{PathMatch, Route, RouteAction};
use http::StatusCode;

fn named(name: &str) -> deis_router::config::RouteAction {
    respond(200, name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_routing_follows_envoy_order_and_unknown_hosts_get_404() {
    let config = http_config(
        vec![
            vhost("prefix", &["www.*"], vec![prefix("/", named("prefix"))]),
            vhost(
                "short-wild",
                &["*.localhost"],
                vec![prefix("/", named("short-wild"))],
            ),
            vhost(
                "long-wild",
                &["*.apps.localhost"],
                vec![prefix("/", named("long-wild"))],
            ),
            vhost(
                "exact",
                &["myapp.apps.localhost"],
                vec![prefix("/", named("exact"))],
            ),
        ],
        vec![],
    );
    let (router, _, addr) = serve(config).await;
    let cases = [
        ("myapp.apps.localhost", "exact"),
        ("MyApp.Apps.LocalHost:8080", "exact"),
        ("other.apps.localhost", "long-wild"),
        ("a.b.apps.localhost", "long-wild"),
        ("apps.localhost", "short-wild"),
        ("www.apps.localhost", "long-wild"),
        ("www.example.org", "prefix"),
    ];
    for (host, want) in cases {
        let reply = get(addr, host, "/").await;
        assert_eq!(reply.status, StatusCode::OK, "{host}");
        assert_eq!(reply.body, want, "{host}");
    }
    let reply = get(addr, "unknown.example.org", "/").await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    router.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catch_all_star_is_last_resort() {
    let config = http_config(
        vec![
            vhost("any", &["*"], vec![prefix("/", named("any"))]),
            vhost("app", &["app.localhost"], vec![prefix("/", named("app"))]),
        ],
        vec![],
    );
    let (router, _, addr) = serve(config).await;
    assert_eq!(get(addr, "app.localhost", "/").await.body, "app");
    assert_eq!(get(addr, "nothing.here", "/").await.body, "any");
    router.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_routes_first_match_wins_and_unmatched_path_gets_404() {
    let routes = vec![
        Route {
            path: PathMatch::Exact("/exact".into()),
            action: named("exact"),
        },
        prefix("/api/", named("api")),
        prefix("/api/v2/", named("never: shadowed by /api/")),
    ];
    let config = http_config(vec![vhost("app", &["app.localhost"], routes)], vec![]);
    let (router, _, addr) = serve(config).await;
    assert_eq!(get(addr, "app.localhost", "/exact").await.body, "exact");
    assert_eq!(get(addr, "app.localhost", "/exact?q=1").await.body, "exact");
    assert_eq!(
        get(addr, "app.localhost", "/exact/more").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(get(addr, "app.localhost", "/api/v2/x").await.body, "api");
    assert_eq!(
        get(addr, "app.localhost", "/other").await.status,
        StatusCode::NOT_FOUND
    );
    router.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_list_refuses_other_clients_with_403() {
    let mut closed = vhost(
        "closed",
        &["closed.localhost"],
        vec![prefix("/", named("closed"))],
    );
    closed.allow = Some(vec!["10.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()]);
    let mut open = vhost("open", &["open.localhost"], vec![prefix("/", named("open"))]);
    open.allow = Some(vec![
        "10.0.0.0/8".parse().unwrap(),
        "127.0.0.0/8".parse().unwrap(),
    ]);
    let (router, log, addr) = serve(http_config(vec![closed, open], vec![])).await;
    let reply = get(addr, "closed.localhost", "/").await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    let reply = get(addr, "open.localhost", "/").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body, "open");
    let entries = log.0.lock().unwrap().clone();
    let refused = entries.iter().find(|e| e.status == 403).expect("403 logged");
    assert_eq!(refused.virtual_host.as_deref(), Some("closed"));
    router.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirect_location_keeps_path_and_query_and_drops_default_ports() {
    let redirect = |scheme: Option<&str>, port: Option<u16>, status: u16| RouteAction::Redirect {
        scheme: scheme.map(str::to_owned),
        port,
        status,
    };
    let config = http_config(
        vec![
            vhost(
                "to-https",
                &["a.localhost"],
                vec![prefix("/", redirect(Some("https"), Some(443), 301))],
            ),
            vhost(
                "to-8443",
                &["b.localhost"],
                vec![prefix("/", redirect(Some("https"), Some(8443), 308))],
            ),
            vhost(
                "no-port",
                &["c.localhost"],
                vec![prefix("/", redirect(None, None, 302))],
            ),
            vhost(
                "http-80",
                &["d.localhost"],
                vec![prefix("/", redirect(None, Some(80), 307))],
            ),
        ],
        vec![],
    );
    let (router, _, addr) = serve(config).await;
    let location = |reply: &Reply| {
        reply
            .headers
            .get("location")
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned()
    };

    let reply = get(addr, "a.localhost:8080", "/p/q?x=1&y=2").await;
    assert_eq!(reply.status, StatusCode::MOVED_PERMANENTLY);
    assert_eq!(location(&reply), "https://a.localhost/p/q?x=1&y=2");

    let reply = get(addr, "b.localhost", "/").await;
    assert_eq!(reply.status, StatusCode::PERMANENT_REDIRECT);
    assert_eq!(location(&reply), "https://b.localhost:8443/");

    let reply = get(addr, "c.localhost:9000", "/x").await;
    assert_eq!(reply.status, StatusCode::FOUND);
    assert_eq!(location(&reply), "http://c.localhost/x");

    let reply = get(addr, "d.localhost:9000", "/y").await;
    assert_eq!(reply.status, StatusCode::TEMPORARY_REDIRECT);
    assert_eq!(location(&reply), "http://d.localhost/y");
    router.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_response_sends_status_content_type_and_body() {
    let config = http_config(
        vec![vhost(
            "maint",
            &["maint.localhost"],
            vec![prefix("/", respond(503, "down for maintenance"))],
        )],
        vec![],
    );
    let (router, log, addr) = serve(config).await;
    let reply = get(addr, "maint.localhost", "/anything").await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reply.body, "down for maintenance");
    assert_eq!(reply.headers.get("content-type").unwrap(), "text/plain");
    let entry = log.0.lock().unwrap().last().cloned().unwrap();
    assert_eq!(entry.status, 503);
    assert_eq!(entry.bytes_sent, "down for maintenance".len() as u64);
    assert!(entry.error.is_none(), "a configured answer is no router error");
    router.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_request_head_is_refused_with_431() {
    let config = http_config(vec![vhost("app", &["*"], vec![prefix("/", named("ok"))])], vec![]);
    let (router, _, addr) = serve(config).await;
    let big = "x".repeat(100 * 1024);
    let result = Client::connect(addr)
        .await
        .try_get("app.localhost", "/", &[("x-big", &big)])
        .await;
    match result {
        Ok(reply) => assert_eq!(reply.status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE),
        Err(e) => panic!("expected a 431 answer, got {e}"),
    }
    // The router still serves others.
    assert_eq!(get(addr, "app.localhost", "/").await.body, "ok");
    router.shutdown().await;
}
