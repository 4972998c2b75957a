//! Release semantics as Deis defines them: v1 on create, one release per
//! config change, build or rollback, Deis's summaries, "changed nothing",
//! rollback rules, failed releases, and versions that never repeat or skip
//! under concurrent writers.

use std::collections::HashMap;

use deis_proto::v2 as pb;
use deis_scheduler::{RecordedCall, SchedulerError};
use deis_testkit::{Clients, TestPlatform, authed, code_of};
use prost_types::value::Kind;
use tonic::Code;

fn s(v: &str) -> prost_types::Value {
    prost_types::Value {
        kind: Some(Kind::StringValue(v.into())),
    }
}

fn null() -> prost_types::Value {
    prost_types::Value {
        kind: Some(Kind::NullValue(0)),
    }
}

async fn releases(c: &mut Clients, token: &str, app: &str) -> Vec<pb::Release> {
    c.releases
        .list_releases(authed(
            token,
            pb::ListReleasesRequest {
                app: app.into(),
                ..Default::default()
            },
        ))
        .await
        .expect("list releases")
        .into_inner()
        .results
}

async fn set(
    c: &mut Clients,
    token: &str,
    app: &str,
    values: &[(&str, Option<&str>)],
) -> Result<pb::Config, tonic::Status> {
    let values = values
        .iter()
        .map(|(k, v)| (k.to_string(), v.map_or_else(null, s)))
        .collect();
    c.config
        .set_config(authed(
            token,
            pb::SetConfigRequest {
                app: app.into(),
                values,
                ..Default::default()
            },
        ))
        .await
        .map(|r| r.into_inner().config.expect("config"))
}

async fn build(
    c: &mut Clients,
    token: &str,
    app: &str,
    image: &str,
    procfile: &[(&str, &str)],
) -> Result<pb::Build, tonic::Status> {
    let procfile = procfile
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    c.builds
        .create_build(authed(
            token,
            pb::CreateBuildRequest {
                app: app.into(),
                image: image.into(),
                procfile,
                ..Default::default()
            },
        ))
        .await
        .map(|r| r.into_inner().build.expect("build"))
}

#[tokio::test]
async fn config_changes_make_releases_with_deis_summaries() {
    let p = TestPlatform::start().await;
    let alice = p.register("alice").await;
    let mut c = p.clients().await;
    c.apps
        .create_app(authed(&alice, pb::CreateAppRequest { id: "web".into() }))
        .await
        .unwrap();

    let r = releases(&mut c, &alice, "web").await;
    assert_eq!(r.len(), 1);
    assert_eq!(
        (r[0].version, r[0].summary.as_str(), r[0].build.as_deref()),
        (1, "alice created initial release", None)
    );

    let config = set(
        &mut c,
        &alice,
        "web",
        &[("FOO", Some("1")), ("BAR", Some("two words"))],
    )
    .await
    .unwrap();
    assert_eq!(config.values.get("BAR").map(String::as_str), Some("two words"));
    set(&mut c, &alice, "web", &[("FOO", Some("2")), ("BAZ", Some("3"))])
        .await
        .unwrap();
    set(&mut c, &alice, "web", &[("BAR", None)]).await.unwrap();

    let r = releases(&mut c, &alice, "web").await;
    let summaries: Vec<(i32, &str)> = r.iter().map(|r| (r.version, r.summary.as_str())).collect();
    assert_eq!(
        summaries,
        vec![
            (4, "alice deleted BAR"),
            (3, "alice added BAZ, changed FOO"),
            (2, "alice added BAR, FOO"),
            (1, "alice created initial release"),
        ]
    );
    // Every release has its own config version.
    let mut uuids: Vec<&str> = r.iter().map(|r| r.config.as_str()).collect();
    uuids.dedup();
    assert_eq!(uuids.len(), 4);

    // Setting the same value again changes nothing: refused, no release.
    let err = set(&mut c, &alice, "web", &[("FOO", Some("2"))])
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(err.message(), "alice changed nothing - release stopped");
    assert_eq!(err.metadata().get("x-deis-http-status").unwrap(), "409");
    // Unsetting a key that is not set is Deis's 422.
    let err = set(&mut c, &alice, "web", &[("NOPE", None)]).await.unwrap_err();
    assert_eq!(err.message(), "NOPE does not exist under values");
    assert_eq!(err.metadata().get("x-deis-http-status").unwrap(), "422");
    assert_eq!(releases(&mut c, &alice, "web").await.len(), 4);

    // No build yet: nothing was deployed.
    assert!(p.scheduler.calls_for("web").is_empty());
}

#[tokio::test]
async fn builds_deploy_and_rollback_follows_deis_rules() {
    let p = TestPlatform::start().await;
    let alice = p.register("alice").await;
    let mut c = p.clients().await;
    c.apps
        .create_app(authed(&alice, pb::CreateAppRequest { id: "shop".into() }))
        .await
        .unwrap();
    set(&mut c, &alice, "shop", &[("GREETING", Some("hi"))])
        .await
        .unwrap(); // v2, no deploy
    build(
        &mut c,
        &alice,
        "shop",
        "example/shop:v1",
        &[("web", "serve"), ("worker", "work")],
    )
    .await
    .unwrap(); // v3
    set(&mut c, &alice, "shop", &[("GREETING", Some("hello"))])
        .await
        .unwrap(); // v4, deploys

    let calls = p.scheduler.calls_for("shop");
    let web1 = std::collections::BTreeMap::from([("web".to_string(), 1)]);
    assert_eq!(
        calls,
        vec![
            RecordedCall::Deploy {
                app: "shop".into(),
                version: 3,
                structure: web1.clone()
            },
            RecordedCall::Deploy {
                app: "shop".into(),
                version: 4,
                structure: web1.clone()
            },
        ]
    );
    let r = releases(&mut c, &alice, "shop").await;
    assert_eq!(r[1].summary, "alice deployed example/shop:v1");

    // Default target: the release before the current one.
    let v = c
        .releases
        .rollback_release(authed(
            &alice,
            pb::RollbackReleaseRequest {
                app: "shop".into(),
                version: None,
            },
        ))
        .await
        .unwrap();
    assert_eq!(v.into_inner().version, 5);
    let config = c
        .config
        .get_config(authed(&alice, pb::GetConfigRequest { app: "shop".into() }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        config.config.unwrap().values["GREETING"],
        "hi",
        "rolling back brings the earlier config back"
    );
    let r = releases(&mut c, &alice, "shop").await;
    assert_eq!(r[0].summary, "alice rolled back to v3");
    assert_eq!(r[0].build, r[2].build);

    let rollback = |version: i32| pb::RollbackReleaseRequest {
        app: "shop".into(),
        version: Some(version),
    };
    let err = c
        .releases
        .rollback_release(authed(&alice, rollback(1)))
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), err.message()),
        (Code::InvalidArgument, "Cannot roll back to initial release.")
    );
    let err = c
        .releases
        .rollback_release(authed(&alice, rollback(0)))
        .await
        .unwrap_err();
    assert_eq!(err.message(), "version cannot be below 0");
    let err = c
        .releases
        .rollback_release(authed(&alice, rollback(99)))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);

    // A deploy that fails marks its release failed and keeps the old one current.
    p.scheduler
        .fail_next_deploy(SchedulerError::DeployFailed("web never became ready".into()));
    let err = set(&mut c, &alice, "shop", &[("GREETING", Some("broken"))])
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("web never became ready"),
        "{}",
        err.message()
    );
    let r = releases(&mut c, &alice, "shop").await;
    assert_eq!(
        (r[0].version, r[0].failed, r[0].summary.as_str()),
        (6, true, "alice deployed a config that failed")
    );
    let config = c
        .config
        .get_config(authed(&alice, pb::GetConfigRequest { app: "shop".into() }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        config.config.unwrap().values["GREETING"],
        "hi",
        "the failed config is not current"
    );
    let err = c
        .releases
        .rollback_release(authed(&alice, rollback(6)))
        .await
        .unwrap_err();
    assert_eq!(err.message(), "Cannot roll back to failed release.");
    // The failed version is never reused.
    set(&mut c, &alice, "shop", &[("OTHER", Some("1"))])
        .await
        .unwrap();
    assert_eq!(releases(&mut c, &alice, "shop").await[0].version, 7);
}

#[tokio::test]
async fn scaling_is_validated_against_the_procfile_and_makes_no_release() {
    let p = TestPlatform::start().await;
    let alice = p.register("alice").await;
    let mut c = p.clients().await;
    c.apps
        .create_app(authed(&alice, pb::CreateAppRequest { id: "jobs".into() }))
        .await
        .unwrap();
    let scale = |pairs: &[(&str, i32)]| pb::ScalePodsRequest {
        app: "jobs".into(),
        structure: pairs
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect::<HashMap<_, _>>(),
    };
    let err =
        c.ps.scale_pods(authed(&alice, scale(&[("web", 2)])))
            .await
            .unwrap_err();
    assert_eq!(
        (err.code(), err.message()),
        (Code::InvalidArgument, "No build associated with this release")
    );

    build(
        &mut c,
        &alice,
        "jobs",
        "example/jobs:v1",
        &[("web", "serve"), ("worker", "work")],
    )
    .await
    .unwrap();
    c.ps.scale_pods(authed(&alice, scale(&[("web", 3), ("worker", 2)])))
        .await
        .unwrap();
    let err =
        c.ps.scale_pods(authed(&alice, scale(&[("clock", 1)])))
            .await
            .unwrap_err();
    assert_eq!(
        (err.code(), err.message()),
        (
            Code::NotFound,
            "Container type clock does not exist in application"
        )
    );
    let err =
        c.ps.scale_pods(authed(&alice, scale(&[("web", -1)])))
            .await
            .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().starts_with("Invalid scaling format"),
        "{}",
        err.message()
    );

    let app = c
        .apps
        .get_app(authed(&alice, pb::GetAppRequest { id: "jobs".into() }))
        .await
        .unwrap()
        .into_inner()
        .app
        .unwrap();
    assert_eq!(
        app.structure,
        HashMap::from([("web".to_string(), 3), ("worker".to_string(), 2)])
    );
    let pods =
        c.ps.list_pods(authed(
            &alice,
            pb::ListPodsRequest {
                app: "jobs".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(pods.count, 5);
    assert!(pods.results.iter().all(|p| p.release == "v2" && p.state == "up"));
    assert_eq!(
        releases(&mut c, &alice, "jobs").await.len(),
        2,
        "scaling makes no release"
    );

    // A failing scale keeps the previous formation.
    p.scheduler
        .fail_next_scale(SchedulerError::Unavailable("runtime is down".into()));
    let err =
        c.ps.scale_pods(authed(&alice, scale(&[("web", 9)])))
            .await
            .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);
    let app = c
        .apps
        .get_app(authed(&alice, pb::GetAppRequest { id: "jobs".into() }))
        .await
        .unwrap()
        .into_inner()
        .app
        .unwrap();
    assert_eq!(app.structure["web"], 3);

    // A new build keeps the scale of types it still has and drops the others.
    build(&mut c, &alice, "jobs", "example/jobs:v2", &[("web", "serve")])
        .await
        .unwrap();
    let app = c
        .apps
        .get_app(authed(&alice, pb::GetAppRequest { id: "jobs".into() }))
        .await
        .unwrap()
        .into_inner()
        .app
        .unwrap();
    assert_eq!(app.structure, HashMap::from([("web".to_string(), 3)]));

    // One-off commands run in the current release.
    let out = c
        .apps
        .run_command(authed(
            &alice,
            pb::RunCommandRequest {
                app: "jobs".into(),
                command: "echo hi".into(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((out.exit_code, out.output.as_str()), (0, "echo hi\n"));
    assert!(p.scheduler.calls_for("jobs").contains(&RecordedCall::Run {
        app: "jobs".into(),
        version: 3,
        command: "echo hi".into()
    }));
    let restarted =
        c.ps.restart_pods(authed(
            &alice,
            pb::RestartPodsRequest {
                app: "jobs".into(),
                r#type: "web".into(),
                name: String::new(),
            },
        ))
        .await
        .unwrap();
    assert_eq!(restarted.into_inner().results.len(), 3);
}

#[tokio::test]
async fn fifty_concurrent_config_changes_make_fifty_consecutive_versions() {
    let p = TestPlatform::start().await;
    let alice = p.register("alice").await;
    let mut c = p.clients().await;
    c.apps
        .create_app(authed(&alice, pb::CreateAppRequest { id: "busy".into() }))
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..50 {
        let mut c = c.clone();
        let alice = alice.clone();
        tasks.push(tokio::spawn(async move {
            set(&mut c, &alice, "busy", &[(&format!("K{i}"), Some("v"))])
                .await
                .map(|_| ())
        }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let all = c
        .releases
        .list_releases(authed(
            &alice,
            pb::ListReleasesRequest {
                app: "busy".into(),
                limit: 1000,
                offset: 0,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(all.count, 51);
    let mut versions: Vec<i32> = all.results.iter().map(|r| r.version).collect();
    versions.sort();
    assert_eq!(
        versions,
        (1..=51).collect::<Vec<_>>(),
        "versions never repeat and never skip ({})",
        p.backend
    );
    // Every change survived: the last config has all 50 keys.
    let config = c
        .config
        .get_config(authed(&alice, pb::GetConfigRequest { app: "busy".into() }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(config.config.unwrap().values.len(), 50);
}

#[tokio::test]
async fn destroy_removes_the_app_and_its_processes() {
    let p = TestPlatform::start().await;
    let alice = p.register("alice").await;
    let mut c = p.clients().await;
    c.apps
        .create_app(authed(&alice, pb::CreateAppRequest { id: "gone".into() }))
        .await
        .unwrap();
    build(&mut c, &alice, "gone", "example/gone:v1", &[])
        .await
        .unwrap();
    assert_eq!(
        p.scheduler.running("gone").map(|(v, s)| (v, s.len())),
        Some((2, 1))
    );
    c.domains
        .add_domain(authed(
            &alice,
            pb::AddDomainRequest {
                app: "gone".into(),
                domain: "gone.example.com".into(),
            },
        ))
        .await
        .unwrap();
    c.apps
        .delete_app(authed(&alice, pb::DeleteAppRequest { id: "gone".into() }))
        .await
        .unwrap();
    assert_eq!(p.scheduler.running("gone"), None);
    assert_eq!(
        code_of(
            c.apps
                .get_app(authed(&alice, pb::GetAppRequest { id: "gone".into() }))
                .await
        ),
        Code::NotFound
    );
    // The name and the domain are free again.
    c.apps
        .create_app(authed(&alice, pb::CreateAppRequest { id: "gone".into() }))
        .await
        .unwrap();
    c.domains
        .add_domain(authed(
            &alice,
            pb::AddDomainRequest {
                app: "gone".into(),
                domain: "gone.example.com".into(),
            },
        ))
        .await
        .unwrap();
    assert_eq!(releases(&mut c, &alice, "gone").await.len(), 1);
}

#[tokio::test]
async fn converge_reapplies_every_apps_desired_state() {
    let p = TestPlatform::start().await;
    let alice = p.register("alice").await;
    let mut c = p.clients().await;
    for app in ["one", "two", "idle"] {
        c.apps
            .create_app(authed(&alice, pb::CreateAppRequest { id: app.into() }))
            .await
            .unwrap();
    }
    build(&mut c, &alice, "one", "example/one:v1", &[("web", "serve")])
        .await
        .unwrap();
    build(&mut c, &alice, "two", "example/two:v1", &[]).await.unwrap();
    c.ps.scale_pods(authed(
        &alice,
        pb::ScalePodsRequest {
            app: "one".into(),
            structure: HashMap::from([("web".to_string(), 4)]),
        },
    ))
    .await
    .unwrap();
    let before = p.scheduler.calls().len();
    p.controller.converge().await;
    let calls = &p.scheduler.calls()[before..];
    assert_eq!(
        calls,
        &[
            RecordedCall::Deploy {
                app: "one".into(),
                version: 2,
                structure: [("web".to_string(), 4)].into()
            },
            RecordedCall::Deploy {
                app: "two".into(),
                version: 2,
                structure: [("cmd".to_string(), 1)].into()
            },
        ],
        "apps without a build are left alone"
    );
}
