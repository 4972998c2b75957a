//! The controller's metrics over real calls: API calls by method and gRPC
//! status (headers-only errors, trailers, a stream the client abandons, a
//! path that names no method), deploys by outcome, and the text a scrape
//! would return.

use std::time::Duration;

use deis_proto::v2 as pb;
use deis_scheduler::SchedulerError;
use deis_testkit::{TestPlatform, authed, code_of};
use prometheus_client::registry::Registry;
use tonic::Code;

fn scrape(p: &TestPlatform) -> String {
    let mut registry = Registry::default();
    p.controller.register_metrics(&mut registry);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    text
}

/// The value of the sample written exactly as `series` (name and labels).
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

fn calls(service: &str, method: &str, code: &str) -> String {
    format!("deis_grpc_requests_total{{service=\"{service}\",method=\"{method}\",code=\"{code}\"}}")
}

#[tokio::test]
async fn calls_are_counted_by_method_and_status_and_deploys_by_outcome() {
    let p = TestPlatform::start().await;
    let alice = p.register("alice").await;
    let mut c = p.clients().await;
    c.apps
        .create_app(authed(&alice, pb::CreateAppRequest { id: "web".into() }))
        .await
        .unwrap();
    let missing = c
        .apps
        .get_app(authed(&alice, pb::GetAppRequest { id: "nope".into() }))
        .await;
    assert_eq!(code_of(missing), Code::NotFound);
    let anonymous = c.apps.list_apps(pb::ListAppsRequest::default()).await;
    assert_eq!(code_of(anonymous), Code::Unauthenticated);

    // A build deploys; the next deploy fails.
    let build = |image: &str| pb::CreateBuildRequest {
        app: "web".into(),
        image: image.into(),
        procfile: [("web".to_string(), "run".to_string())].into(),
        ..Default::default()
    };
    c.builds
        .create_build(authed(&alice, build("img:1")))
        .await
        .unwrap();
    p.scheduler
        .fail_next_deploy(SchedulerError::DeployFailed("no".into()));
    assert!(
        c.builds
            .create_build(authed(&alice, build("img:2")))
            .await
            .is_err()
    );

    // A stream the client drops before it ends.
    let follow = c
        .apps
        .follow_logs(authed(
            &alice,
            pb::FollowLogsRequest {
                app: "web".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap();
    drop(follow);

    // A path that names no method: no made-up label values.
    let mut raw = tonic::client::Grpc::new(p.channel().await);
    raw.ready().await.unwrap();
    let unknown: Result<tonic::Response<()>, tonic::Status> = raw
        .unary(
            tonic::Request::new(()),
            http::uri::PathAndQuery::from_static("/deis.v2.AppsService/MadeUp"),
            tonic_prost::ProstCodec::<(), ()>::default(),
        )
        .await;
    assert_eq!(code_of(unknown), Code::Unimplemented);

    // The stream's end reaches the server a moment after the drop.
    let apps = "deis.v2.AppsService";
    let mut text = scrape(&p);
    for _ in 0..100 {
        if value(&text, &calls(apps, "FollowLogs", "Canceled")).is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        text = scrape(&p);
    }
    for (series, expected) in [
        (calls(apps, "CreateApp", "OK"), 1.0),
        (calls(apps, "GetApp", "NotFound"), 1.0),
        (calls(apps, "ListApps", "Unauthenticated"), 1.0),
        (calls("deis.v2.BuildsService", "CreateBuild", "OK"), 1.0),
        (calls("deis.v2.AuthService", "Register", "OK"), 1.0),
        (calls(apps, "FollowLogs", "Canceled"), 1.0),
        (calls("unknown", "unknown", "Unimplemented"), 1.0),
        ("deis_deploys_total{outcome=\"succeeded\"}".to_owned(), 1.0),
        ("deis_deploys_total{outcome=\"failed\"}".to_owned(), 1.0),
        (
            "deis_deploy_duration_seconds_count{outcome=\"succeeded\"}".to_owned(),
            1.0,
        ),
        (
            "deis_grpc_request_duration_seconds_count{service=\"deis.v2.AppsService\",method=\"CreateApp\"}"
                .to_owned(),
            1.0,
        ),
    ] {
        assert_eq!(value(&text, &series), Some(expected), "{series} in:\n{text}");
    }
    assert!(!text.contains("MadeUp"), "{text}");
    // The failed build's call failed too, with the scheduler's reason.
    assert!(
        text.lines().any(|l| l.starts_with(&calls(
            "deis.v2.BuildsService",
            "CreateBuild",
            "InvalidArgument"
        ))),
        "{text}"
    );
    // The recording scheduler cannot count processes: no such family.
    assert!(!text.contains("deis_processes"), "{text}");
    assert!(text.ends_with("# EOF\n"), "{text}");
}
