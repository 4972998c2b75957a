//! Garbage collection removes exactly the blobs no manifest references,
//! and never those of a push in progress; and the admin calls (repositories,
//! tags) that sit beside it.

mod common;

use std::path::Path;
use std::time::{Duration, SystemTime};

use common::{TestRegistry, pullable, sha256};
use http::{Method, StatusCode};

/// Makes the files under `dir` look `age` old.
fn age_files(dir: &Path, age: Duration) {
    let then = SystemTime::now() - age;
    for file in common::files_under(dir) {
        let file = std::fs::OpenOptions::new().write(true).open(file).unwrap();
        file.set_modified(then).unwrap();
    }
}

#[tokio::test]
async fn unreferenced_blobs_go_and_everything_pulled_stays() {
    let registry = TestRegistry::start().await;
    registry.push_image("app", "v1").await;
    let (_, v2) = registry.push_image("app", "v2").await;
    registry.push_image("team/other", "v1").await;
    let stray = registry.push_blob("app", b"never referenced").await;
    let v2_layer = sha256(b"layer of app:v2");
    let reply = registry
        .req(Method::DELETE, &format!("/v2/app/manifests/{v2}"))
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED);
    // An upload in progress is not a blob yet.
    let reply = registry.req(Method::POST, "/v2/app/blobs/uploads/").send().await;
    let upload = reply.header("location").to_owned();
    registry
        .req(Method::PATCH, &upload)
        .body(&b"in progress"[..])
        .send()
        .await;

    // Young blobs are kept while their grace period lasts.
    let report = registry
        .registry
        .collect_garbage(Duration::from_secs(3600))
        .await
        .unwrap();
    assert_eq!(report.blobs_removed, 0, "{report:?}");

    let report = registry.registry.collect_garbage(Duration::ZERO).await.unwrap();
    // v2's manifest and layer, and the stray blob; the shared config stays.
    assert_eq!(report.blobs_removed, 3, "{report:?}");
    assert_eq!((report.repositories, report.manifests), (2, 2), "{report:?}");
    assert!(pullable(&registry, "app", "v1").await);
    assert!(pullable(&registry, "team/other", "v1").await);
    for digest in [&stray, &v2_layer, &v2] {
        let reply = registry.get(&format!("/v2/app/blobs/{digest}")).await;
        reply.expect_error(StatusCode::NOT_FOUND, "BLOB_UNKNOWN");
    }
    // Their links went with them.
    let links = common::files_under(&registry.store().join("registry/repositories/app/_layers"));
    assert_eq!(links.len(), 2, "{links:?}");

    let digest = sha256(b"in progress");
    let reply = registry
        .req(Method::PUT, &format!("{upload}?digest={digest}"))
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
    let again = registry.registry.collect_garbage(Duration::ZERO).await.unwrap();
    assert_eq!(
        again.blobs_removed, 1,
        "the completed but unreferenced upload: {again:?}"
    );
    registry.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collection_during_pushes_keeps_every_pushed_image() {
    let registry = TestRegistry::start().await;
    let old = registry.push_blob("busy", b"old garbage").await;
    age_files(&registry.store().join("registry"), Duration::from_secs(7200));

    let pushes = async {
        for n in 0..8 {
            registry.push_image("busy", &format!("t{n}")).await;
        }
    };
    let collections = async {
        let mut removed = 0;
        for _ in 0..8 {
            let report = registry
                .registry
                .collect_garbage(Duration::from_secs(60))
                .await
                .unwrap();
            removed += report.blobs_removed;
            tokio::task::yield_now().await;
        }
        removed
    };
    let ((), removed) = tokio::join!(pushes, collections);
    assert_eq!(removed, 1);
    for n in 0..8 {
        assert!(pullable(&registry, "busy", &format!("t{n}")).await, "t{n}");
    }
    registry
        .get(&format!("/v2/busy/blobs/{old}"))
        .await
        .expect_error(StatusCode::NOT_FOUND, "BLOB_UNKNOWN");
    registry.stop().await;
}

/// Makes a blob (and its link in `repository`) look `age` old.
fn age_blob(registry: &TestRegistry, repository: &str, digest: &str, age: Duration) {
    let hex = digest.trim_start_matches("sha256:");
    let store = registry.store().join("registry");
    let blob = store.join(format!("blobs/sha256/{}/{hex}", &hex[..2]));
    let link = store.join(format!("repositories/{repository}/_layers/sha256/{hex}"));
    let then = SystemTime::now() - age;
    for path in [blob, link] {
        let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
        file.set_modified(then).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_racing_a_collection_is_either_refused_or_whole() {
    let registry = TestRegistry::start().await;
    let mut outcomes = Vec::new();
    for n in 0..6u64 {
        // Blobs pushed long ago and not referenced yet: fair game for the
        // collection unless the manifest naming them is stored first.
        let config = format!("{{\"n\":{n}}}").into_bytes();
        let layer = format!("racing layer {n}").into_bytes();
        let config_digest = registry.push_blob("race", &config).await;
        let layer_digest = registry.push_blob("race", &layer).await;
        for digest in [&config_digest, &layer_digest] {
            age_blob(&registry, "race", digest, Duration::from_secs(7200));
        }
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": deis_registry::OCI_MANIFEST,
            "config": common::descriptor("application/vnd.oci.image.config.v1+json", &config_digest, config.len()),
            "layers": [common::descriptor("application/vnd.oci.image.layer.v1.tar", &layer_digest, layer.len())],
        });
        let tag = format!("r{n}");
        // Every other push lets the collection start first, so both
        // orders happen.
        let push = async {
            if n % 2 == 1 {
                tokio::time::sleep(Duration::from_millis(n)).await;
            }
            registry
                .push_manifest("race", &tag, deis_registry::OCI_MANIFEST, &manifest)
                .await
        };
        let collect = registry.registry.collect_garbage(Duration::from_secs(60));
        let (reply, report) = tokio::join!(push, collect);
        report.unwrap();
        if reply.status == StatusCode::CREATED {
            assert!(
                pullable(&registry, "race", &tag).await,
                "{tag} was pushed but lost blobs"
            );
        } else {
            reply.expect_error(StatusCode::BAD_REQUEST, "MANIFEST_BLOB_UNKNOWN");
        }
        outcomes.push(reply.status);
    }
    println!("manifest pushes racing collections: {outcomes:?}");
    registry.stop().await;
}

#[tokio::test]
async fn admin_calls_list_resolve_and_delete_tags() {
    let registry = TestRegistry::start().await;
    let (_, digest) = registry.push_image("team/app", "v1").await;
    registry.push_image("team/app", "v2").await;
    registry.push_image("solo", "latest").await;
    let admin = &registry.registry;
    assert_eq!(admin.list_repositories().await.unwrap(), ["solo", "team/app"]);
    assert_eq!(admin.list_tags("team/app").await.unwrap(), ["v1", "v2"]);
    let resolved = admin.resolve_tag("team/app", "v1").await.unwrap().unwrap();
    assert_eq!(resolved.to_string(), digest);
    admin.delete_tag("team/app", "v1").await.unwrap();
    assert_eq!(admin.list_tags("team/app").await.unwrap(), ["v2"]);
    assert!(admin.resolve_tag("team/app", "v1").await.unwrap().is_none());
    // The manifest is still there by digest.
    let reply = registry.get(&format!("/v2/team/app/manifests/{digest}")).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(matches!(
        admin.list_tags("nothing").await,
        Err(deis_registry::RegistryError::NameUnknown)
    ));
    assert!(matches!(
        admin.delete_tag("team/app", "v1").await,
        Err(deis_registry::RegistryError::ManifestUnknown)
    ));
    assert!(matches!(
        admin.list_tags("Bad Name").await,
        Err(deis_registry::RegistryError::NameInvalid(_))
    ));
    registry.stop().await;
}

/// Starts an upload in `repository`, sends one chunk; returns its location.
async fn started_upload(registry: &TestRegistry, repository: &str, chunk: &'static [u8]) -> String {
    let reply = registry
        .req(Method::POST, &format!("/v2/{repository}/blobs/uploads/"))
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED);
    let location = reply.header("location").to_owned();
    let reply = registry.req(Method::PATCH, &location).body(chunk).send().await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text());
    location
}

/// Where an upload's files are.
fn upload_dir(registry: &TestRegistry, location: &str) -> std::path::PathBuf {
    let id = location.rsplit('/').next().unwrap();
    registry.store().join("registry/uploads").join(id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_uploads_expire_and_active_ones_stay() {
    use futures::SinkExt;
    use http_body_util::BodyExt;

    let registry = TestRegistry::start().await;
    let long_ago = Duration::from_secs(25 * 3600);
    // Abandoned a day ago.
    let abandoned = started_upload(&registry, "app", b"abandoned").await;
    // Started a day ago, but a chunk came in just now.
    let resumed = started_upload(&registry, "app", b"old chunk, ").await;
    // Started a day ago, and a chunk is streaming in right now.
    let streaming = started_upload(&registry, "app", b"old chunk").await;
    // Started just now.
    let fresh = started_upload(&registry, "app", b"fresh").await;
    for location in [&abandoned, &resumed, &streaming] {
        age_files(&upload_dir(&registry, location), long_ago);
    }
    let reply = registry
        .req(Method::PATCH, &resumed)
        .body(&b"new chunk"[..])
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED);

    // More than the loopback socket buffers hold, so once it is all sent
    // the registry is reading the chunk (and holds the upload).
    const FRAMES: usize = 32;
    let frame = |i: usize| bytes::Bytes::from(vec![i as u8; 1024 * 1024]);
    let (mut sender, frames) =
        futures::channel::mpsc::channel::<Result<http_body::Frame<bytes::Bytes>, std::io::Error>>(1);
    let body = BodyExt::boxed(http_body_util::StreamBody::new(frames));
    let patch = registry.req(Method::PATCH, &streaming).stream(body).send();
    let collect = async {
        for i in 0..FRAMES {
            sender.send(Ok(http_body::Frame::data(frame(i)))).await.unwrap();
        }
        let report = registry
            .registry
            .collect_garbage(Duration::from_secs(3600))
            .await
            .unwrap();
        // Let the chunk finish.
        sender
            .send(Ok(http_body::Frame::data(frame(FRAMES))))
            .await
            .unwrap();
        drop(sender);
        report
    };
    let (reply, report) = tokio::join!(patch, collect);
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text());
    assert_eq!(report.uploads_removed, 1, "{report:?}");

    // The abandoned upload is gone, files and all.
    assert!(common::files_under(&upload_dir(&registry, &abandoned)).is_empty());
    registry
        .req(Method::PATCH, &abandoned)
        .body(&b"too late"[..])
        .send()
        .await
        .expect_error(StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN");
    // The others complete with everything they were sent.
    let digest = sha256(b"old chunk, new chunk");
    let reply = registry
        .req(Method::PUT, &format!("{resumed}?digest={digest}"))
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
    let mut content = b"old chunk".to_vec();
    for i in 0..=FRAMES {
        content.extend_from_slice(&frame(i));
    }
    let digest = sha256(&content);
    let reply = registry
        .req(Method::PUT, &format!("{streaming}?digest={digest}"))
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
    let reply = registry.get(&format!("/v2/app/blobs/{digest}")).await;
    assert!(reply.body == content[..]);
    let reply = registry.get(&fresh).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    assert_eq!(reply.header("range"), "0-4");

    // Asked directly with no idle time at all, every upload not in use
    // counts as abandoned: the fresh one (the only one left) goes too.
    assert_eq!(
        registry
            .registry
            .remove_abandoned_uploads(Duration::ZERO)
            .await
            .unwrap(),
        1
    );
    registry
        .get(&fresh)
        .await
        .expect_error(StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN");
    assert!(common::files_under(&registry.store().join("registry/uploads")).is_empty());
    registry.stop().await;
}
