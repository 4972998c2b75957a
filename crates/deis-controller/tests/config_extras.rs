//! Config attributes beyond Deis's: Hephy's per-process-type termination
//! grace period (set, unset, 422, 400, summaries, releases, rollback and the
//! stored round trip on the test backend), and what GetPlatformInfo says
//! about limit enforcement.

use std::collections::HashMap;
use std::time::Duration;

use deis_proto::v2 as pb;
use deis_testkit::{Clients, TestPlatform, authed};
use prost_types::value::Kind;
use tonic::Code;

fn s(v: &str) -> prost_types::Value {
    prost_types::Value {
        kind: Some(Kind::StringValue(v.into())),
    }
}

fn n(v: f64) -> prost_types::Value {
    prost_types::Value {
        kind: Some(Kind::NumberValue(v)),
    }
}

fn null() -> prost_types::Value {
    prost_types::Value {
        kind: Some(Kind::NullValue(0)),
    }
}

async fn setup(app: &str) -> (TestPlatform, Clients, String) {
    let p = TestPlatform::start().await;
    let token = p.register("alice").await;
    let mut c = p.clients().await;
    c.apps
        .create_app(authed(&token, pb::CreateAppRequest { id: app.into() }))
        .await
        .unwrap();
    (p, c, token)
}

/// Sets (or with a null, unsets) termination grace periods; returns the
/// config and the new release's version.
async fn grace(
    c: &mut Clients,
    token: &str,
    app: &str,
    changes: Vec<(&str, prost_types::Value)>,
) -> Result<(pb::Config, i32), tonic::Status> {
    let termination_grace_period = changes.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    c.config
        .set_config(authed(
            token,
            pb::SetConfigRequest {
                app: app.into(),
                termination_grace_period,
                ..Default::default()
            },
        ))
        .await
        .map(|r| {
            let r = r.into_inner();
            (r.config.expect("config"), r.release_version)
        })
}

async fn summaries(c: &mut Clients, token: &str, app: &str) -> Vec<(i32, String)> {
    c.releases
        .list_releases(authed(
            token,
            pb::ListReleasesRequest {
                app: app.into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .results
        .into_iter()
        .map(|r| (r.version, r.summary))
        .collect()
}

async fn get_config(c: &mut Clients, token: &str, app: &str) -> pb::Config {
    c.config
        .get_config(authed(token, pb::GetConfigRequest { app: app.into() }))
        .await
        .unwrap()
        .into_inner()
        .config
        .expect("config")
}

fn map(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn expect_status(result: Result<impl Sized, tonic::Status>, code: Code, http: &str, message: &str) {
    match result {
        Ok(_) => panic!("accepted, expected {code:?} {message:?}"),
        Err(status) => {
            assert_eq!(status.code(), code, "{}", status.message());
            assert_eq!(status.message(), message);
            assert_eq!(
                status
                    .metadata()
                    .get("x-deis-http-status")
                    .map(|v| v.to_str().unwrap_or("")),
                Some(http)
            );
        }
    }
}

#[tokio::test]
async fn termination_grace_period_set_unset_and_releases() {
    let (p, mut c, alice) = setup("grace").await;

    // A fresh app has none: every process gets the default.
    assert!(
        get_config(&mut c, &alice, "grace")
            .await
            .termination_grace_period
            .is_empty()
    );

    // Strings and numbers set; the change is a release with Hephy's summary.
    let (config, v) = grace(
        &mut c,
        &alice,
        "grace",
        vec![("web", s("60")), ("worker", n(0.0))],
    )
    .await
    .unwrap();
    assert_eq!(v, 2);
    assert_eq!(
        config.termination_grace_period,
        map(&[("web", "60"), ("worker", "0")])
    );
    assert_eq!(
        get_config(&mut c, &alice, "grace").await.termination_grace_period,
        map(&[("web", "60"), ("worker", "0")])
    );

    // The same values again change nothing (409, no release).
    expect_status(
        grace(&mut c, &alice, "grace", vec![("web", s("60"))]).await,
        Code::FailedPrecondition,
        "409",
        "alice changed nothing - release stopped",
    );

    // Unset one; unsetting it again is Deis's 422.
    let (config, v) = grace(&mut c, &alice, "grace", vec![("worker", null())])
        .await
        .unwrap();
    assert_eq!(v, 3);
    assert_eq!(config.termination_grace_period, map(&[("web", "60")]));
    expect_status(
        grace(&mut c, &alice, "grace", vec![("worker", null())]).await,
        Code::FailedPrecondition,
        "422",
        "worker does not exist under termination_grace_period",
    );

    // Bad values and keys are 400 and make no release.
    let bad_value = "The termination grace period for web must be a whole number of seconds from 0 to 3600.";
    for value in [s("abc"), s("3601"), s("-1"), s(""), s("30s"), n(1.5), n(-5.0)] {
        let result = grace(&mut c, &alice, "grace", vec![("web", value.clone())]).await;
        match result {
            Ok(_) => panic!("{value:?} accepted"),
            Err(status) => {
                assert_eq!(status.code(), Code::InvalidArgument, "{value:?}");
                assert_eq!(status.message(), bad_value, "{value:?}");
            }
        }
    }
    let result = grace(&mut c, &alice, "grace", vec![("Web", s("10"))]).await;
    let status = result.expect_err("an upper-case process type is refused");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(
        status.message(),
        "Process types can only contain lowercase alphanumeric characters"
    );

    // Together with an env var change: both parts, joined with " and ".
    let (_, v) = c
        .config
        .set_config(authed(
            &alice,
            pb::SetConfigRequest {
                app: "grace".into(),
                values: HashMap::from([("A".to_owned(), s("1"))]),
                termination_grace_period: HashMap::from([("web".to_owned(), s("3600"))]),
                ..Default::default()
            },
        ))
        .await
        .map(|r| {
            let r = r.into_inner();
            (r.config, r.release_version)
        })
        .unwrap();
    assert_eq!(v, 4);

    assert_eq!(
        summaries(&mut c, &alice, "grace").await,
        vec![
            (
                4,
                "alice added A and alice changed termination grace period for web".to_owned()
            ),
            (3, "alice changed termination grace period for worker".to_owned()),
            (
                2,
                "alice changed termination grace period for web, worker".to_owned()
            ),
            (1, "alice created initial release".to_owned()),
        ]
    );

    // Rolling back to v2 brings v2's periods back with its config.
    let v = c
        .releases
        .rollback_release(authed(
            &alice,
            pb::RollbackReleaseRequest {
                app: "grace".into(),
                version: Some(2),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .version;
    assert_eq!(v, 5);
    assert_eq!(
        get_config(&mut c, &alice, "grace").await.termination_grace_period,
        map(&[("web", "60"), ("worker", "0")])
    );

    // The stored round trip, on this test's backend (SQLite, or PostgreSQL
    // with DEIS_TEST_DATABASE_URL).
    let app = p.store.find_app("grace").await.unwrap().expect("the app");
    let state = p.store.current_state(&app).await.unwrap();
    assert_eq!(state.release.version, 5, "{}", p.backend);
    let data = &state.config.data;
    assert_eq!(data.grace_period("web"), Duration::from_secs(60), "{}", p.backend);
    assert_eq!(data.grace_period("worker"), Duration::ZERO, "{}", p.backend);
    assert_eq!(
        data.grace_period("clock"),
        Duration::from_secs(30),
        "{}",
        p.backend
    );
    let v4 = p.store.release_state(&app, 4).await.unwrap().expect("v4");
    assert_eq!(
        v4.config.data.termination_grace_period,
        [("web".to_owned(), "3600".to_owned())].into(),
        "{}",
        p.backend
    );
    assert_eq!(v4.config.data.values.get("A").map(String::as_str), Some("1"));
    // v1's config was made by app creation and has the column default.
    let v1 = p.store.release_state(&app, 1).await.unwrap().expect("v1");
    assert!(
        v1.config.data.termination_grace_period.is_empty(),
        "{}",
        p.backend
    );
}

#[tokio::test]
async fn grace_period_changes_deploy_a_running_app() {
    let (p, mut c, alice) = setup("deployed").await;
    c.builds
        .create_build(authed(
            &alice,
            pb::CreateBuildRequest {
                app: "deployed".into(),
                image: "example/app:v1".into(),
                procfile: HashMap::from([("web".to_owned(), "serve".to_owned())]),
                ..Default::default()
            },
        ))
        .await
        .unwrap();
    let (_, v) = grace(&mut c, &alice, "deployed", vec![("web", s("90"))])
        .await
        .unwrap();
    assert_eq!(v, 3);
    assert_eq!(p.scheduler.running("deployed").map(|(v, _)| v), Some(3));
}

#[tokio::test]
async fn platform_info_says_whether_limits_are_enforced() {
    let p = TestPlatform::start().await;
    let mut c = p.clients().await;
    // No token needed; the recording scheduler enforces nothing.
    let info = c
        .platform
        .get_platform_info(pb::GetPlatformInfoRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.memory_limits, "not-enforced");
    assert_eq!(info.autoscaling, "not-enforced");
    assert_eq!(info.cpu_limits, "not-enforced");
}
