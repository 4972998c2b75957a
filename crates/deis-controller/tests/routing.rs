//! The routing state follows every API change that affects routing, at
//! once (event-driven), and joins the runtime's endpoints.

use std::sync::Arc;
use std::time::{Duration, Instant};

use deis_proto::v2 as pb;
use deis_routing::{AppRoute, RoutingState};
use deis_testkit::{Clients, TestPlatform, authed, test_certificate};
use tokio::sync::watch;

/// Waits (up to 2 s) until the app's route satisfies `check`; returns how
/// long that took.
async fn until(
    states: &mut watch::Receiver<Arc<RoutingState>>,
    what: &str,
    check: impl Fn(Option<&AppRoute>) -> bool,
) -> Duration {
    let started = Instant::now();
    let reached = tokio::time::timeout(
        Duration::from_secs(2),
        states.wait_for(|s| check(s.apps.get("routed"))),
    )
    .await
    .is_ok_and(|r| r.is_ok());
    let state = states.borrow().clone();
    assert!(reached, "{what}: routing state never got there: {state:?}");
    started.elapsed()
}

async fn setup() -> (TestPlatform, Clients, String) {
    let platform = TestPlatform::start().await;
    let token = platform.register("alice").await;
    let c = platform.clients().await;
    (platform, c, token)
}

#[tokio::test]
async fn api_changes_reach_the_routing_state_at_once() {
    let (platform, mut c, token) = setup().await;
    let mut states = platform.controller.routing_state();
    c.apps
        .create_app(authed(&token, pb::CreateAppRequest { id: "routed".into() }))
        .await
        .unwrap();
    until(&mut states, "app created", |a| {
        a.is_some_and(|a| a.domains.is_empty() && a.endpoints.is_empty() && !a.maintenance)
    })
    .await;

    let addr = "127.0.0.1:5001".parse().unwrap();
    platform.scheduler.publish_endpoints("routed", &[addr]);
    until(&mut states, "endpoints", |a| {
        a.is_some_and(|a| a.endpoints == [addr])
    })
    .await;

    c.domains
        .add_domain(authed(
            &token,
            pb::AddDomainRequest {
                app: "routed".into(),
                domain: "www.example.com".into(),
            },
        ))
        .await
        .unwrap();
    let took = until(&mut states, "domain added", |a| {
        a.is_some_and(|a| a.domains == ["www.example.com"])
    })
    .await;
    assert!(took < Duration::from_millis(500), "took {took:?}");

    c.settings
        .update_app_settings(authed(
            &token,
            pb::UpdateAppSettingsRequest {
                app: "routed".into(),
                maintenance: Some(true),
                ..Default::default()
            },
        ))
        .await
        .unwrap();
    until(&mut states, "maintenance", |a| a.is_some_and(|a| a.maintenance)).await;

    c.settings
        .add_whitelist(authed(
            &token,
            pb::AddWhitelistRequest {
                app: "routed".into(),
                addresses: vec!["10.0.0.0/255.0.0.0".into(), "::1".into()],
            },
        ))
        .await
        .unwrap();
    until(&mut states, "whitelist", |a| {
        a.is_some_and(|a| {
            let nets: Vec<String> = a.whitelist.iter().map(ToString::to_string).collect();
            nets == ["10.0.0.0/8", "::1/128"]
        })
    })
    .await;

    let (certificate, key) = test_certificate();
    c.certs
        .create_cert(authed(
            &token,
            pb::CreateCertRequest {
                name: "www".into(),
                certificate,
                key,
            },
        ))
        .await
        .unwrap();
    c.certs
        .attach_cert(authed(
            &token,
            pb::AttachCertRequest {
                name: "www".into(),
                domain: "www.example.com".into(),
            },
        ))
        .await
        .unwrap();
    until(&mut states, "certificate attached", |a| {
        a.is_some_and(|a| {
            a.certificates.len() == 1
                && a.certificates[0].server_names == ["www.example.com"]
                && a.certificates[0].private_key.contains("PRIVATE KEY")
        })
    })
    .await;

    c.settings
        .set_tls(authed(
            &token,
            pb::SetTlsRequest {
                app: "routed".into(),
                https_enforced: true,
            },
        ))
        .await
        .unwrap();
    until(&mut states, "tls:enable", |a| a.is_some_and(|a| a.https_only)).await;

    c.certs
        .delete_cert(authed(&token, pb::DeleteCertRequest { name: "www".into() }))
        .await
        .unwrap();
    until(&mut states, "certificate deleted", |a| {
        a.is_some_and(|a| a.certificates.is_empty())
    })
    .await;

    c.settings
        .update_app_settings(authed(
            &token,
            pb::UpdateAppSettingsRequest {
                app: "routed".into(),
                routable: Some(false),
                ..Default::default()
            },
        ))
        .await
        .unwrap();
    until(&mut states, "routable off", |a| a.is_none()).await;
    c.settings
        .update_app_settings(authed(
            &token,
            pb::UpdateAppSettingsRequest {
                app: "routed".into(),
                routable: Some(true),
                ..Default::default()
            },
        ))
        .await
        .unwrap();
    until(&mut states, "routable on", |a| a.is_some()).await;

    c.apps
        .delete_app(authed(&token, pb::DeleteAppRequest { id: "routed".into() }))
        .await
        .unwrap();
    until(&mut states, "app deleted", |a| a.is_none()).await;
}

#[tokio::test]
async fn a_thousand_apps_with_five_thousand_domains_build_in_under_a_second() {
    let (platform, _c, _token) = setup().await;
    let owner = platform.store.find_user("alice").await.unwrap().unwrap();
    for i in 0..1000 {
        let app = platform
            .store
            .create_app(&format!("app-{i}"), &owner, "alice created initial release")
            .await
            .unwrap();
        for d in 0..5 {
            platform
                .store
                .add_domain(&app, "alice", &format!("d{d}.app-{i}.example.com"))
                .await
                .unwrap();
        }
    }
    let started = Instant::now();
    let inputs = platform.store.routing_inputs().await.unwrap();
    let read = started.elapsed();
    assert_eq!(inputs.apps.len(), 1000);
    assert_eq!(inputs.apps.iter().map(|a| a.domains.len()).sum::<usize>(), 5000);
    let mut states = platform.controller.routing_state();
    let built = Instant::now();
    let state = states.wait_for(|s| s.apps.len() == 1000).await.unwrap().clone();
    let settings = deis_routing::RouterSettings::local();
    let feed = deis_xds::Feed::new();
    let translated = Instant::now();
    let version = feed.update(&settings, &state);
    let translate = translated.elapsed();
    assert_eq!(version, 1);
    let total = built.elapsed();
    println!(
        "1,000 apps, 5,000 domains on {}: read {read:?}, state and snapshot {total:?} (translation {translate:?})",
        platform.backend
    );
    assert!(total < Duration::from_secs(1), "took {total:?}");
}
