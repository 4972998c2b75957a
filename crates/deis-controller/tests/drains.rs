//! Drains through the API: validation with clear messages, Heroku's limit
//! of five per app, duplicates, removal by URL or id, the logger told of
//! every change, and nothing left after the app is destroyed; logs filters.

use deis_proto::v2 as pb;
use deis_testkit::{TestPlatform, authed, code_of};
use tonic::Code;

#[tokio::test]
async fn drains_are_validated_limited_listed_and_removed() {
    let platform = TestPlatform::start().await;
    let alice = platform.register("alice").await;
    let mut c = platform.clients().await;
    c.apps
        .create_app(authed(&alice, pb::CreateAppRequest { id: "drained".into() }))
        .await
        .unwrap();
    let add = |url: &str| {
        authed(
            &alice,
            pb::AddDrainRequest {
                app: "drained".into(),
                url: url.into(),
            },
        )
    };

    for (url, says) in [
        ("udp://logs.example.com:514", "UDP"),
        ("syslog://logs.example.com", "port"),
        ("ftp://logs.example.com/x", "scheme"),
        ("not a url", "not a valid URL"),
    ] {
        let status = c.drains.add_drain(add(url)).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{url}");
        assert!(status.message().contains(says), "{url}: {}", status.message());
    }

    let urls: Vec<String> = (0..5).map(|n| format!("syslog://127.0.0.1:{}", 9 + n)).collect();
    let mut ids = Vec::new();
    for (n, url) in urls.iter().enumerate() {
        if n == 1 {
            let duplicate = c.drains.add_drain(add(&urls[0])).await.unwrap_err();
            assert_eq!(duplicate.code(), Code::AlreadyExists);
        }
        let drain = c
            .drains
            .add_drain(add(url))
            .await
            .unwrap()
            .into_inner()
            .drain
            .unwrap();
        assert_eq!(&drain.url, url);
        ids.push(drain.id);
    }
    let sixth = c
        .drains
        .add_drain(add("https://logs.example.com/in"))
        .await
        .unwrap_err();
    assert_eq!(sixth.code(), Code::FailedPrecondition, "{}", sixth.message());
    assert!(sixth.message().contains("drains:remove"), "{}", sixth.message());

    // The logger was told: it reports on all five (nothing listens there,
    // so none is healthy).
    let stats = platform.controller.logs().drain_stats("drained").await.unwrap();
    assert_eq!(stats.len(), 5);
    let list = |c: &mut deis_testkit::Clients| {
        let mut c = c.drains.clone();
        let token = alice.clone();
        async move {
            c.list_drains(authed(
                &token,
                pb::ListDrainsRequest {
                    app: "drained".into(),
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .results
        }
    };
    let listed = list(&mut c).await;
    assert_eq!(listed.iter().map(|d| d.url.clone()).collect::<Vec<_>>(), urls);
    assert!(listed.iter().all(|d| d.owner == "alice" && !d.healthy));

    // By URL and by id.
    c.drains
        .remove_drain(authed(
            &alice,
            pb::RemoveDrainRequest {
                app: "drained".into(),
                drain: urls[0].clone(),
            },
        ))
        .await
        .unwrap();
    c.drains
        .remove_drain(authed(
            &alice,
            pb::RemoveDrainRequest {
                app: "drained".into(),
                drain: ids[1].clone(),
            },
        ))
        .await
        .unwrap();
    let missing = c
        .drains
        .remove_drain(authed(
            &alice,
            pb::RemoveDrainRequest {
                app: "drained".into(),
                drain: ids[1].clone(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    assert_eq!(list(&mut c).await.len(), 3);
    assert_eq!(
        platform
            .controller
            .logs()
            .drain_stats("drained")
            .await
            .unwrap()
            .len(),
        3
    );

    // Destroyed with the app, in the database and in the logger.
    c.apps
        .delete_app(authed(&alice, pb::DeleteAppRequest { id: "drained".into() }))
        .await
        .unwrap();
    assert!(
        platform
            .controller
            .logs()
            .drain_stats("drained")
            .await
            .unwrap()
            .is_empty()
    );
    c.apps
        .create_app(authed(&alice, pb::CreateAppRequest { id: "drained".into() }))
        .await
        .unwrap();
    assert!(list(&mut c).await.is_empty());
}

#[tokio::test]
async fn logs_filter_by_source_and_refuse_unknown_sources() {
    let platform = TestPlatform::start().await;
    let alice = platform.register("alice").await;
    let mut c = platform.clients().await;
    c.apps
        .create_app(authed(&alice, pb::CreateAppRequest { id: "quiet".into() }))
        .await
        .unwrap();
    let get = |source: &str| {
        authed(
            &alice,
            pb::GetLogsRequest {
                app: "quiet".into(),
                source: source.into(),
                ..Default::default()
            },
        )
    };
    let platform_lines = c.apps.get_logs(get("deis")).await.unwrap().into_inner();
    assert!(!platform_lines.entries.is_empty());
    assert!(
        platform_lines
            .entries
            .iter()
            .all(|e| e.source == "deis" && e.process == "deis")
    );
    assert_eq!(platform_lines.lines.len(), platform_lines.entries.len());
    assert!(
        c.apps
            .get_logs(get("router"))
            .await
            .unwrap()
            .into_inner()
            .entries
            .is_empty()
    );
    assert_eq!(
        code_of(c.apps.get_logs(get("kernel")).await),
        Code::InvalidArgument
    );
}
