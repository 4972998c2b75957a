//! The Distribution API over real HTTP (hyper's client against the served
//! registry on loopback, with a local-files object store).

mod common;

use common::{READER, TestRegistry, descriptor, files_under, sha256};
use deis_registry::{DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST};
use http::{Method, StatusCode};
use serde_json::json;
use tokio::io::AsyncWriteExt;

#[tokio::test]
async fn version_check_and_authentication() {
    let registry = TestRegistry::start().await;
    let reply = registry.req(Method::GET, "/v2/").anonymous().send().await;
    reply.expect_error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
    assert_eq!(reply.header("www-authenticate"), "Basic realm=\"deis-registry\"");

    let reply = registry.get("/v2/").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("docker-distribution-api-version"), "registry/2.0");

    let reply = registry
        .req(Method::GET, "/v2/")
        .auth("user", "wrong")
        .send()
        .await;
    reply.expect_error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
    let reply = registry
        .req(Method::GET, "/v2/")
        .anonymous()
        .header("authorization", "Basic !!!")
        .send()
        .await;
    reply.expect_error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED");

    // Pushing needs credentials, and a known user without push rights is denied.
    let start = "/v2/myapp/blobs/uploads/";
    registry
        .req(Method::POST, start)
        .anonymous()
        .send()
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
    registry
        .req(Method::POST, start)
        .auth(READER.0, READER.1)
        .send()
        .await
        .expect_error(StatusCode::FORBIDDEN, "DENIED");
    let (_, digest) = registry.push_image("myapp", "v1").await;
    // The reader pulls, but cannot delete.
    let reply = registry
        .req(Method::GET, "/v2/myapp/manifests/v1")
        .auth(READER.0, READER.1)
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    registry
        .req(Method::DELETE, &format!("/v2/myapp/manifests/{digest}"))
        .auth(READER.0, READER.1)
        .send()
        .await
        .expect_error(StatusCode::FORBIDDEN, "DENIED");
    registry.stop().await;
}

#[tokio::test]
async fn anonymous_pull_only_when_configured() {
    let registry = TestRegistry::start_with(common::test_auth().with_anonymous_pull()).await;
    registry.push_image("public", "v1").await;
    let reply = registry
        .req(Method::GET, "/v2/public/manifests/v1")
        .anonymous()
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    registry
        .req(Method::POST, "/v2/public/blobs/uploads/")
        .anonymous()
        .send()
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
    registry.stop().await;
}

/// Starts a PATCH on a raw connection, sends part of the body and hangs up.
async fn interrupted_patch(
    registry: &TestRegistry,
    location: &str,
    offset: usize,
    sent: &[u8],
    promised: usize,
) {
    use base64::Engine as _;
    let auth = base64::engine::general_purpose::STANDARD.encode("user:pass");
    let mut stream = tokio::net::TcpStream::connect(registry.addr).await.unwrap();
    let end = offset + promised - 1;
    let head = format!(
        "PATCH {location} HTTP/1.1\r\nHost: {}\r\nAuthorization: Basic {auth}\r\n\
         Content-Type: application/octet-stream\r\nContent-Range: {offset}-{end}\r\nContent-Length: {promised}\r\n\r\n",
        registry.addr
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(sent).await.unwrap();
    stream.flush().await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    drop(stream);
}

#[tokio::test]
async fn chunked_upload_is_interrupted_and_resumed() {
    let registry = TestRegistry::start().await;
    let content: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let digest = sha256(&content);
    let (first, rest) = content.split_at(100_000);
    let (second, last) = rest.split_at(150_000);

    let reply = registry
        .req(Method::POST, "/v2/chunky/blobs/uploads/")
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text());
    assert_eq!(reply.header("range"), "0-0");
    let location = reply.header("location").to_owned();
    let uuid = reply.header("docker-upload-uuid").to_owned();
    assert!(location.ends_with(&uuid), "{location}");

    let reply = registry
        .req(Method::PATCH, &location)
        .header("content-range", "0-99999")
        .body(first.to_vec())
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text());
    assert_eq!(reply.header("range"), "0-99999");

    // The connection drops halfway through the second chunk: that chunk is
    // discarded and the upload still holds the first.
    interrupted_patch(&registry, &location, 100_000, &second[..50_000], second.len()).await;
    let reply = registry.get(&location).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    assert_eq!(reply.header("range"), "0-99999");
    assert_eq!(reply.header("docker-upload-uuid"), uuid);

    // A chunk that does not start where the upload ends is refused.
    let reply = registry
        .req(Method::PATCH, &location)
        .header("content-range", "150000-150009")
        .body(vec![0u8; 10])
        .send()
        .await;
    reply.expect_error(StatusCode::RANGE_NOT_SATISFIABLE, "BLOB_UPLOAD_INVALID");
    assert_eq!(reply.header("range"), "0-99999");
    // So is a chunk shorter than its Content-Range.
    let reply = registry
        .req(Method::PATCH, &location)
        .header("content-range", "100000-100009")
        .body(vec![0u8; 5])
        .send()
        .await;
    reply.expect_error(StatusCode::BAD_REQUEST, "SIZE_INVALID");

    // Resume where the status says, then a chunk without Content-Range.
    let reply = registry
        .req(Method::PATCH, &location)
        .header("content-range", "100000-249999")
        .body(second.to_vec())
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text());
    assert_eq!(reply.header("range"), "0-249999");

    // Not visible before it completes.
    let blob = format!("/v2/chunky/blobs/{digest}");
    assert_eq!(
        registry.req(Method::HEAD, &blob).send().await.status,
        StatusCode::NOT_FOUND
    );

    // The last chunk rides on the PUT.
    let reply = registry
        .req(
            Method::PUT,
            &format!("{location}?digest={}", digest.replace(':', "%3A")),
        )
        .body(last.to_vec())
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
    assert_eq!(reply.header("docker-content-digest"), digest);
    assert_eq!(reply.header("location"), blob);

    let reply = registry.get(&blob).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body, content);
    registry
        .get(&location)
        .await
        .expect_error(StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN");
    // Nothing is left in the upload area.
    assert_eq!(
        files_under(&registry.store().join("registry/uploads")),
        Vec::<std::path::PathBuf>::new()
    );
    registry.stop().await;
}

#[tokio::test]
async fn uploads_survive_a_restart() {
    // After a restart the hash state is gone: completion re-hashes the
    // stored chunks (one chunk, and several joined).
    let registry = TestRegistry::start().await;
    let content: Vec<u8> = (0..70_000u32).map(|i| (i % 7) as u8).collect();
    let digest = sha256(&content);
    let mut locations = Vec::new();
    for _ in 0..2 {
        let reply = registry.req(Method::POST, "/v2/app/blobs/uploads/").send().await;
        locations.push(reply.header("location").to_owned());
    }
    registry
        .req(Method::PATCH, &locations[0])
        .body(content.clone())
        .send()
        .await;
    registry
        .req(Method::PATCH, &locations[1])
        .body(content[..30_000].to_vec())
        .send()
        .await;

    let registry = registry.restart().await;
    let reply = registry.get(&locations[1]).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    assert_eq!(reply.header("range"), "0-29999");
    let reply = registry
        .req(Method::PUT, &format!("{}?digest={digest}", locations[0]))
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
    let reply = registry
        .req(Method::PUT, &format!("{}?digest={digest}", locations[1]))
        .header("content-range", "30000-69999")
        .body(content[30_000..].to_vec())
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
    assert_eq!(
        registry.get(&format!("/v2/app/blobs/{digest}")).await.body,
        content
    );
    registry.stop().await;
}

#[tokio::test]
async fn digest_mismatch_is_refused_and_nothing_becomes_visible() {
    let registry = TestRegistry::start().await;
    let content = b"the real content".to_vec();
    let claimed = sha256(b"something else");
    let actual = sha256(&content);

    // Monolithic.
    let reply = registry
        .req(Method::POST, &format!("/v2/app/blobs/uploads/?digest={claimed}"))
        .body(content.clone())
        .send()
        .await;
    reply.expect_error(StatusCode::BAD_REQUEST, "DIGEST_INVALID");

    // Chunked.
    let reply = registry.req(Method::POST, "/v2/app/blobs/uploads/").send().await;
    let location = reply.header("location").to_owned();
    let reply = registry
        .req(Method::PATCH, &location)
        .body(content.clone())
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED);
    let reply = registry
        .req(Method::PUT, &format!("{location}?digest={claimed}"))
        .send()
        .await;
    reply.expect_error(StatusCode::BAD_REQUEST, "DIGEST_INVALID");
    // The failed upload is over.
    registry
        .get(&location)
        .await
        .expect_error(StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN");

    for digest in [&claimed, &actual] {
        let reply = registry.get(&format!("/v2/app/blobs/{digest}")).await;
        reply.expect_error(StatusCode::NOT_FOUND, "BLOB_UNKNOWN");
    }
    assert!(files_under(&registry.store().join("registry/blobs")).is_empty());
    assert!(files_under(&registry.store().join("registry/uploads")).is_empty());

    // A PUT without a digest is refused too, and the upload stays usable.
    let reply = registry.req(Method::POST, "/v2/app/blobs/uploads/").send().await;
    let location = reply.header("location").to_owned();
    registry
        .req(Method::PUT, &location)
        .send()
        .await
        .expect_error(StatusCode::BAD_REQUEST, "DIGEST_INVALID");
    let reply = registry
        .req(Method::PUT, &format!("{location}?digest={actual}"))
        .body(content)
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
    registry.stop().await;
}

#[tokio::test]
async fn cancelled_uploads_disappear() {
    let registry = TestRegistry::start().await;
    let reply = registry.req(Method::POST, "/v2/app/blobs/uploads/").send().await;
    let location = reply.header("location").to_owned();
    registry
        .req(Method::PATCH, &location)
        .body(vec![1u8; 10])
        .send()
        .await;
    let reply = registry.req(Method::DELETE, &location).send().await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    registry
        .get(&location)
        .await
        .expect_error(StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN");
    // An upload belongs to its repository.
    let reply = registry.req(Method::POST, "/v2/app/blobs/uploads/").send().await;
    let other = reply.header("location").replace("/v2/app/", "/v2/other/");
    registry
        .get(&other)
        .await
        .expect_error(StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN");
    assert!(files_under(&registry.store().join("registry/blobs")).is_empty());
    registry.stop().await;
}

#[tokio::test]
async fn blobs_serve_ranges_and_can_be_deleted() {
    let registry = TestRegistry::start().await;
    let content: Vec<u8> = (0..1000u32).map(|i| (i % 256) as u8).collect();
    let digest = registry.push_blob("app", &content).await;
    let path = format!("/v2/app/blobs/{digest}");

    let reply = registry.req(Method::HEAD, &path).send().await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("content-length"), "1000");
    assert_eq!(reply.header("docker-content-digest"), digest);
    assert!(reply.body.is_empty());

    let reply = registry
        .req(Method::GET, &path)
        .header("range", "bytes=10-19")
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(reply.header("content-range"), "bytes 10-19/1000");
    assert_eq!(reply.body, content[10..20]);
    let reply = registry
        .req(Method::GET, &path)
        .header("range", "bytes=990-")
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(reply.body, content[990..]);
    let reply = registry
        .req(Method::GET, &path)
        .header("range", "bytes=1000-")
        .send()
        .await;
    reply.expect_error(StatusCode::RANGE_NOT_SATISFIABLE, "SIZE_INVALID");
    assert_eq!(reply.header("content-range"), "bytes */1000");

    // Blobs are visible only in repositories they were pushed or mounted to.
    registry
        .get(&format!("/v2/elsewhere/blobs/{digest}"))
        .await
        .expect_error(StatusCode::NOT_FOUND, "BLOB_UNKNOWN");

    let reply = registry.req(Method::DELETE, &path).send().await;
    assert_eq!(reply.status, StatusCode::ACCEPTED);
    registry
        .get(&path)
        .await
        .expect_error(StatusCode::NOT_FOUND, "BLOB_UNKNOWN");
    registry
        .req(Method::DELETE, &path)
        .send()
        .await
        .expect_error(StatusCode::NOT_FOUND, "BLOB_UNKNOWN");
    registry.stop().await;
}

#[tokio::test]
async fn blobs_mount_across_repositories() {
    let registry = TestRegistry::start().await;
    let digest = registry.push_blob("source", b"shared layer").await;
    let reply = registry
        .req(
            Method::POST,
            &format!("/v2/target/blobs/uploads/?mount={digest}&from=source"),
        )
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
    assert_eq!(reply.header("location"), format!("/v2/target/blobs/{digest}"));
    assert_eq!(reply.header("docker-content-digest"), digest);
    assert_eq!(
        registry.get(&format!("/v2/target/blobs/{digest}")).await.body,
        &b"shared layer"[..]
    );

    // Not in `from`: an ordinary upload starts instead.
    let missing = sha256(b"nowhere");
    let reply = registry
        .req(
            Method::POST,
            &format!("/v2/target/blobs/uploads/?mount={missing}&from=source"),
        )
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED);
    assert!(reply.header("location").starts_with("/v2/target/blobs/uploads/"));
    registry.stop().await;
}

#[tokio::test]
async fn concurrent_uploads_of_one_blob_are_safe() {
    let registry = TestRegistry::start().await;
    let content: Vec<u8> = (0..200_000u32).map(|i| (i % 13) as u8).collect();
    let pushes = (0..8).map(|n| {
        let registry = &registry;
        let content = &content;
        async move { registry.push_blob(&format!("repo{}", n % 3), content).await }
    });
    let digests = futures::future::join_all(pushes).await;
    assert!(digests.iter().all(|digest| *digest == digests[0]));
    for n in 0..3 {
        let reply = registry.get(&format!("/v2/repo{n}/blobs/{}", digests[0])).await;
        assert_eq!(reply.body, content);
    }
    assert_eq!(files_under(&registry.store().join("registry/blobs")).len(), 1);
    registry.stop().await;
}

#[tokio::test]
async fn manifests_push_pull_and_delete() {
    let registry = TestRegistry::start().await;
    let (bytes, digest) = registry.push_image("app", "v1").await;

    let reply = registry.get("/v2/app/manifests/v1").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body, bytes);
    assert_eq!(reply.header("content-type"), OCI_MANIFEST);
    assert_eq!(reply.header("docker-content-digest"), digest);
    let reply = registry
        .req(Method::HEAD, &format!("/v2/app/manifests/{digest}"))
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("content-length"), bytes.len().to_string());

    // By digest: the digest must match.
    let manifest: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    let reply = registry
        .push_manifest("app", &digest, OCI_MANIFEST, &manifest)
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
    assert_eq!(reply.header("location"), format!("/v2/app/manifests/{digest}"));
    let wrong = sha256(b"x");
    registry
        .push_manifest("app", &wrong, OCI_MANIFEST, &manifest)
        .await
        .expect_error(StatusCode::BAD_REQUEST, "DIGEST_INVALID");

    // Docker schema 2 manifests and manifest lists, and OCI indexes.
    let mut docker = manifest.clone();
    docker["mediaType"] = json!(DOCKER_MANIFEST);
    docker["config"]["mediaType"] = json!("application/vnd.docker.container.image.v1+json");
    let reply = registry
        .push_manifest("app", "docker", DOCKER_MANIFEST, &docker)
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
    let docker_digest = reply.header("docker-content-digest").to_owned();
    assert_eq!(
        registry
            .get("/v2/app/manifests/docker")
            .await
            .header("content-type"),
        DOCKER_MANIFEST
    );
    let list = json!({
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST_LIST,
        "manifests": [descriptor(DOCKER_MANIFEST, &docker_digest, 100)],
    });
    let reply = registry
        .push_manifest("app", "list", DOCKER_MANIFEST_LIST, &list)
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
    let index = json!({ "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [descriptor(OCI_MANIFEST, &digest, bytes.len())] });
    let reply = registry.push_manifest("app", "index", OCI_INDEX, &index).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
    assert_eq!(
        registry
            .get("/v2/app/manifests/index")
            .await
            .header("content-type"),
        OCI_INDEX
    );

    // Deleting a tag leaves the manifest; deleting the manifest removes its tags.
    assert_eq!(
        registry
            .req(Method::DELETE, "/v2/app/manifests/index")
            .send()
            .await
            .status,
        StatusCode::ACCEPTED
    );
    registry
        .get("/v2/app/manifests/index")
        .await
        .expect_error(StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN");
    let reply = registry
        .req(Method::DELETE, &format!("/v2/app/manifests/{digest}"))
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED);
    registry
        .get("/v2/app/manifests/v1")
        .await
        .expect_error(StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN");
    registry
        .get(&format!("/v2/app/manifests/{digest}"))
        .await
        .expect_error(StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN");
    let tags = registry.get("/v2/app/tags/list").await.json();
    assert_eq!(tags["tags"], json!(["docker", "list"]));
    registry.stop().await;
}

#[tokio::test]
async fn invalid_manifests_are_refused() {
    let registry = TestRegistry::start().await;
    let (bytes, digest) = registry.push_image("app", "v1").await;
    let manifest: serde_json::Value = serde_json::from_slice(&bytes).unwrap();

    let mut missing_layer = manifest.clone();
    let absent = sha256(b"never pushed");
    missing_layer["layers"][0]["digest"] = json!(absent);
    let reply = registry
        .push_manifest("app", "broken", OCI_MANIFEST, &missing_layer)
        .await;
    reply.expect_error(StatusCode::BAD_REQUEST, "MANIFEST_BLOB_UNKNOWN");
    assert_eq!(reply.json()["errors"][0]["detail"]["digest"], json!(absent));
    // Blobs of another repository do not count.
    registry
        .push_manifest("other", "v1", OCI_MANIFEST, &manifest)
        .await
        .expect_error(StatusCode::BAD_REQUEST, "MANIFEST_BLOB_UNKNOWN");
    let index = json!({ "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [descriptor(OCI_MANIFEST, &absent, 1)] });
    registry
        .push_manifest("app", "index", OCI_INDEX, &index)
        .await
        .expect_error(StatusCode::BAD_REQUEST, "MANIFEST_BLOB_UNKNOWN");

    let reply = registry
        .req(Method::PUT, "/v2/app/manifests/junk")
        .header("content-type", OCI_MANIFEST)
        .body(&b"{not json"[..])
        .send()
        .await;
    reply.expect_error(StatusCode::BAD_REQUEST, "MANIFEST_INVALID");
    registry
        .push_manifest("app", "v2", DOCKER_MANIFEST, &manifest)
        .await
        .expect_error(StatusCode::BAD_REQUEST, "MANIFEST_INVALID");
    registry
        .push_manifest("app", "bad:tag:", OCI_MANIFEST, &manifest)
        .await
        .expect_error(StatusCode::BAD_REQUEST, "DIGEST_INVALID");
    registry
        .push_manifest("app", "-bad", OCI_MANIFEST, &manifest)
        .await
        .expect_error(StatusCode::BAD_REQUEST, "MANIFEST_INVALID");
    let huge = vec![b' '; 4 * 1024 * 1024 + 1];
    let reply = registry
        .req(Method::PUT, "/v2/app/manifests/huge")
        .header("content-type", OCI_MANIFEST)
        .body(huge)
        .send()
        .await;
    reply.expect_error(StatusCode::PAYLOAD_TOO_LARGE, "MANIFEST_INVALID");

    // None of it changed what v1 is.
    assert_eq!(
        registry
            .get("/v2/app/manifests/v1")
            .await
            .header("docker-content-digest"),
        digest
    );
    registry.stop().await;
}

#[tokio::test]
async fn tags_paginate_with_link() {
    let registry = TestRegistry::start().await;
    let (bytes, _) = registry.push_image("app", "t0").await;
    let manifest: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    for tag in ["t1", "t2", "t3", "t4"] {
        let reply = registry.push_manifest("app", tag, OCI_MANIFEST, &manifest).await;
        assert_eq!(reply.status, StatusCode::CREATED);
    }
    let reply = registry.get("/v2/app/tags/list").await;
    assert_eq!(
        reply.json(),
        json!({ "name": "app", "tags": ["t0", "t1", "t2", "t3", "t4"] })
    );
    assert_eq!(reply.header("link"), "");

    let mut path = "/v2/app/tags/list?n=2".to_owned();
    let mut pages = Vec::new();
    loop {
        let reply = registry.get(&path).await;
        assert_eq!(reply.status, StatusCode::OK);
        pages.push(reply.json()["tags"].clone());
        let link = reply.header("link");
        if link.is_empty() {
            break;
        }
        assert!(link.ends_with(">; rel=\"next\""), "{link}");
        path = link.trim_start_matches('<').split('>').next().unwrap().to_owned();
    }
    assert_eq!(pages, [json!(["t0", "t1"]), json!(["t2", "t3"]), json!(["t4"])]);
    assert_eq!(
        registry.get("/v2/app/tags/list?n=2&last=t1").await.json()["tags"],
        json!(["t2", "t3"])
    );
    assert_eq!(
        registry.get("/v2/app/tags/list?last=t3").await.json()["tags"],
        json!(["t4"])
    );
    registry
        .get("/v2/nothing/tags/list")
        .await
        .expect_error(StatusCode::NOT_FOUND, "NAME_UNKNOWN");
    registry.stop().await;
}

#[tokio::test]
async fn catalog_paginates() {
    let registry = TestRegistry::start().await;
    for name in ["zeta", "alpha/one", "alpha", "alpha/one/deep", "beta"] {
        registry.push_blob(name, name.as_bytes()).await;
    }
    let reply = registry.get("/v2/_catalog").await;
    assert_eq!(
        reply.json()["repositories"],
        json!(["alpha", "alpha/one", "alpha/one/deep", "beta", "zeta"])
    );
    let reply = registry.get("/v2/_catalog?n=2").await;
    assert_eq!(reply.json()["repositories"], json!(["alpha", "alpha/one"]));
    assert_eq!(
        reply.header("link"),
        "</v2/_catalog?n=2&last=alpha/one>; rel=\"next\""
    );
    let reply = registry.get("/v2/_catalog?n=2&last=alpha/one").await;
    assert_eq!(reply.json()["repositories"], json!(["alpha/one/deep", "beta"]));
    let reply = registry.get("/v2/_catalog?n=2&last=beta").await;
    assert_eq!(reply.json()["repositories"], json!(["zeta"]));
    assert_eq!(reply.header("link"), "");
    registry.stop().await;
}

#[tokio::test]
async fn referrers_list_manifests_by_subject() {
    let registry = TestRegistry::start().await;
    let (bytes, subject) = registry.push_image("app", "v1").await;
    let empty = registry.push_blob("app", b"{}").await;
    let signature = registry.push_blob("app", b"signature").await;
    let artifact = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": "application/vnd.example.signature",
        "config": descriptor("application/vnd.oci.empty.v1+json", &empty, 2),
        "layers": [descriptor("application/octet-stream", &signature, 9)],
        "subject": descriptor(OCI_MANIFEST, &subject, bytes.len()),
        "annotations": { "org.example": "yes" },
    });
    let artifact_bytes = serde_json::to_vec(&artifact).unwrap();
    let artifact_digest = sha256(&artifact_bytes);
    let reply = registry
        .push_manifest("app", &artifact_digest, OCI_MANIFEST, &artifact)
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
    assert_eq!(reply.header("oci-subject"), subject);

    let reply = registry.get(&format!("/v2/app/referrers/{subject}")).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("content-type"), OCI_INDEX);
    assert_eq!(
        reply.json(),
        json!({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [{
                "mediaType": OCI_MANIFEST,
                "digest": artifact_digest,
                "size": artifact_bytes.len(),
                "artifactType": "application/vnd.example.signature",
                "annotations": { "org.example": "yes" },
            }],
        })
    );
    let reply = registry
        .get(&format!(
            "/v2/app/referrers/{subject}?artifactType=application/vnd.example.sbom"
        ))
        .await;
    assert_eq!(reply.header("oci-filters-applied"), "artifactType");
    assert_eq!(reply.json()["manifests"], json!([]));
    let reply = registry
        .get(&format!(
            "/v2/app/referrers/{subject}?artifactType=application%2Fvnd.example.signature"
        ))
        .await;
    assert_eq!(reply.json()["manifests"][0]["digest"], json!(artifact_digest));

    // Unknown subjects have no referrers; deleting the referrer removes it.
    let nothing = registry.get(&format!("/v2/app/referrers/{}", sha256(b"?"))).await;
    assert_eq!(nothing.json()["manifests"], json!([]));
    registry
        .req(Method::DELETE, &format!("/v2/app/manifests/{artifact_digest}"))
        .send()
        .await;
    assert_eq!(
        registry.get(&format!("/v2/app/referrers/{subject}")).await.json()["manifests"],
        json!([])
    );
    registry.stop().await;
}

#[tokio::test]
async fn malformed_requests_get_spec_errors_and_the_server_keeps_answering() {
    let registry = TestRegistry::start().await;
    let hex = "a".repeat(64);
    let cases: &[(Method, String, StatusCode, &str)] = &[
        (
            Method::GET,
            "/v2/UPPER/tags/list".into(),
            StatusCode::BAD_REQUEST,
            "NAME_INVALID",
        ),
        (
            Method::GET,
            "/v2/a//b/tags/list".into(),
            StatusCode::BAD_REQUEST,
            "NAME_INVALID",
        ),
        (
            Method::GET,
            format!("/v2/{}/tags/list", "a".repeat(300)),
            StatusCode::BAD_REQUEST,
            "NAME_INVALID",
        ),
        (
            Method::GET,
            "/v2/app/blobs/sha256:xyz".into(),
            StatusCode::BAD_REQUEST,
            "DIGEST_INVALID",
        ),
        (
            Method::GET,
            "/v2/app/blobs/notadigest".into(),
            StatusCode::BAD_REQUEST,
            "DIGEST_INVALID",
        ),
        (
            Method::GET,
            format!("/v2/app/blobs/sha512:{hex}{hex}"),
            StatusCode::BAD_REQUEST,
            "UNSUPPORTED",
        ),
        (
            Method::GET,
            format!("/v2/app/blobs/sha256:{hex}"),
            StatusCode::NOT_FOUND,
            "BLOB_UNKNOWN",
        ),
        (
            Method::GET,
            format!("/v2/app/manifests/sha256:{hex}"),
            StatusCode::NOT_FOUND,
            "MANIFEST_UNKNOWN",
        ),
        (
            Method::GET,
            "/v2/app/manifests/nosuchtag".into(),
            StatusCode::NOT_FOUND,
            "MANIFEST_UNKNOWN",
        ),
        (
            Method::GET,
            "/v2/app/referrers/latest".into(),
            StatusCode::BAD_REQUEST,
            "DIGEST_INVALID",
        ),
        (
            Method::GET,
            "/v2/app/blobs/uploads/not-a-uuid".into(),
            StatusCode::NOT_FOUND,
            "BLOB_UPLOAD_UNKNOWN",
        ),
        (
            Method::PATCH,
            "/v2/app/blobs/uploads/00000000-0000-4000-8000-000000000000".into(),
            StatusCode::NOT_FOUND,
            "BLOB_UPLOAD_UNKNOWN",
        ),
        (
            Method::POST,
            "/v2/app/blobs/uploads/?digest=sha256:1".into(),
            StatusCode::BAD_REQUEST,
            "DIGEST_INVALID",
        ),
        (
            Method::POST,
            "/v2/app/blobs/uploads/?mount=bad&from=x".into(),
            StatusCode::BAD_REQUEST,
            "DIGEST_INVALID",
        ),
        (
            Method::GET,
            "/v2/_catalog?n=many".into(),
            StatusCode::BAD_REQUEST,
            "UNSUPPORTED",
        ),
        (
            Method::GET,
            "/v2/app/unknown/thing".into(),
            StatusCode::NOT_FOUND,
            "UNSUPPORTED",
        ),
        (
            Method::GET,
            "/elsewhere".into(),
            StatusCode::NOT_FOUND,
            "UNSUPPORTED",
        ),
        (
            Method::POST,
            "/v2/app/manifests/v1".into(),
            StatusCode::METHOD_NOT_ALLOWED,
            "UNSUPPORTED",
        ),
        (
            Method::PUT,
            "/v2/_catalog".into(),
            StatusCode::METHOD_NOT_ALLOWED,
            "UNSUPPORTED",
        ),
    ];
    for (method, path, status, code) in cases {
        let reply = registry.req(method.clone(), path).send().await;
        assert_eq!(
            (reply.status, reply.code().as_str()),
            (*status, *code),
            "{method} {path}: {}",
            reply.text()
        );
    }
    // Garbage on the wire: the connection is refused, the server lives on.
    let mut raw = tokio::net::TcpStream::connect(registry.addr).await.unwrap();
    raw.write_all(b"\x00\x01garbage\r\n\r\n").await.unwrap();
    drop(raw);
    assert_eq!(registry.get("/v2/").await.status, StatusCode::OK);
    registry.stop().await;
}
