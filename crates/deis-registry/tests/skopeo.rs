//! Real clients: Debian's skopeo pushes, inspects, lists, pulls and deletes
//! images in OCI and Docker schema 2 formats, with Basic credentials and
//! through the Docker token flow. The test image is an OCI layout made by
//! `fixtures/mklayout.py` (no Docker needed).
//!
//! Needs `skopeo` and `python3` (`buildtools/lib/common.sh`,
//! `ensure_registry_tools`); without them the tests fail, saying how to
//! install them.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;

use common::TestRegistry;
use deis_registry::{RegistryOptions, TokenOptions};
use http::Method;
use serde_json::Value;

const CREDS: &str = "user:pass";

fn tool_missing(tool: &str) -> bool {
    std::process::Command::new(tool)
        .arg("--version")
        .output()
        .is_err()
}

async fn skopeo(args: &[&str]) -> Output {
    let output = tokio::process::Command::new("skopeo")
        .arg("--insecure-policy")
        .args(args)
        .output()
        .await
        .unwrap();
    println!(
        "skopeo {}: {}\n{}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Runs skopeo and returns its standard output; fails the test if it fails.
async fn skopeo_ok(args: &[&str]) -> String {
    let output = skopeo(args).await;
    assert!(output.status.success(), "skopeo {args:?} failed");
    String::from_utf8(output.stdout).unwrap()
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// The manifest an OCI layout's index names, and its digest.
fn layout_manifest(layout: &Path) -> (String, Value) {
    let index = read_json(&layout.join("index.json"));
    let digest = index["manifests"][0]["digest"].as_str().unwrap().to_owned();
    let manifest = read_json(&blob_path(layout, &digest));
    (digest, manifest)
}

fn blob_path(layout: &Path, digest: &str) -> PathBuf {
    layout
        .join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"))
}

fn layer_digests(manifest: &Value) -> Vec<String> {
    manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|layer| layer["digest"].as_str().unwrap().to_owned())
        .collect()
}

/// Writes a test OCI layout (tag `v1`, two layers) to `layout`.
fn make_layout(layout: &Path) {
    assert!(
        !tool_missing("skopeo") && !tool_missing("python3"),
        "skopeo and python3 are needed: run buildtools/test once, it installs them"
    );
    let script = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("tests run under cargo"))
        .join("tests/fixtures/mklayout.py");
    let made = std::process::Command::new("python3")
        .arg(script)
        .arg(layout)
        .args(["v1", "2", "512"])
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skopeo_pushes_inspects_lists_pulls_and_deletes() {
    let registry = TestRegistry::start().await;
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("layout");
    make_layout(&layout);
    let (manifest_digest, manifest) = layout_manifest(&layout);
    let source = format!("oci:{}:v1", layout.display());
    let host = registry.addr.to_string();
    let image = |reference: &str| format!("docker://{host}/{reference}");

    // Push the OCI image unchanged.
    skopeo_ok(&[
        "copy",
        "--dest-tls-verify=false",
        "--dest-creds",
        CREDS,
        &source,
        &image("myapp:v1"),
    ])
    .await;

    let inspected: Value = serde_json::from_str(
        &skopeo_ok(&[
            "inspect",
            "--tls-verify=false",
            "--creds",
            CREDS,
            &image("myapp:v1"),
        ])
        .await,
    )
    .unwrap();
    assert_eq!(inspected["Digest"], manifest_digest.as_str());
    assert_eq!(inspected["Layers"], serde_json::json!(layer_digests(&manifest)));
    let raw = skopeo_ok(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        "--creds",
        CREDS,
        &image("myapp:v1"),
    ])
    .await;
    let pushed = std::fs::read_to_string(blob_path(&layout, &manifest_digest)).unwrap();
    assert_eq!(raw.trim_end(), pushed.trim_end());

    // Pull it back into a fresh layout: same manifest, same blobs.
    let pulled = work.path().join("pulled");
    let pulled_ref = format!("oci:{}:v1", pulled.display());
    skopeo_ok(&[
        "copy",
        "--src-tls-verify=false",
        "--src-creds",
        CREDS,
        &image("myapp:v1"),
        &pulled_ref,
    ])
    .await;
    let (pulled_digest, _) = layout_manifest(&pulled);
    assert_eq!(pulled_digest, manifest_digest);
    let config = manifest["config"]["digest"].as_str().unwrap().to_owned();
    for digest in layer_digests(&manifest).iter().chain([&config]) {
        assert_eq!(
            std::fs::read(blob_path(&pulled, digest)).unwrap(),
            std::fs::read(blob_path(&layout, digest)).unwrap(),
            "{digest}"
        );
    }

    // The same image as a Docker schema 2 manifest.
    skopeo_ok(&[
        "copy",
        "--format",
        "v2s2",
        "--dest-tls-verify=false",
        "--dest-creds",
        CREDS,
        &source,
        &image("myapp:docker"),
    ])
    .await;
    let raw = skopeo_ok(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        "--creds",
        CREDS,
        &image("myapp:docker"),
    ])
    .await;
    let docker: Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(docker["mediaType"], deis_registry::DOCKER_MANIFEST);
    assert_eq!(docker["config"]["digest"], config.as_str());
    let pulled_docker = work.path().join("pulled-docker");
    skopeo_ok(&[
        "copy",
        "--src-tls-verify=false",
        "--src-creds",
        CREDS,
        &image("myapp:docker"),
        &format!("oci:{}:docker", pulled_docker.display()),
    ])
    .await;
    let (_, converted) = layout_manifest(&pulled_docker);
    assert_eq!(layer_digests(&converted), layer_digests(&manifest));

    // Registry to registry (blobs are mounted across repositories).
    skopeo_ok(&[
        "copy",
        "--src-tls-verify=false",
        "--src-creds",
        CREDS,
        "--dest-tls-verify=false",
        "--dest-creds",
        CREDS,
        &image("myapp:v1"),
        &image("team/other:v1"),
    ])
    .await;
    let copied = skopeo_ok(&[
        "inspect",
        "--tls-verify=false",
        "--creds",
        CREDS,
        &image("team/other:v1"),
    ])
    .await;
    assert_eq!(
        serde_json::from_str::<Value>(&copied).unwrap()["Digest"],
        manifest_digest.as_str()
    );

    let tags = skopeo_ok(&[
        "list-tags",
        "--tls-verify=false",
        "--creds",
        CREDS,
        &image("myapp"),
    ])
    .await;
    let mut listed: Vec<String> =
        serde_json::from_value(serde_json::from_str::<Value>(&tags).unwrap()["Tags"].clone()).unwrap();
    listed.sort();
    assert_eq!(listed, ["docker", "v1"]);

    // Delete: the tag goes, the other image stays.
    skopeo_ok(&[
        "delete",
        "--tls-verify=false",
        "--creds",
        CREDS,
        &image("myapp:v1"),
    ])
    .await;
    let tags = skopeo_ok(&[
        "list-tags",
        "--tls-verify=false",
        "--creds",
        CREDS,
        &image("myapp"),
    ])
    .await;
    assert_eq!(
        serde_json::from_str::<Value>(&tags).unwrap()["Tags"],
        serde_json::json!(["docker"])
    );
    let gone = skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--creds",
        CREDS,
        &image("myapp:v1"),
    ])
    .await;
    assert!(!gone.status.success());

    // Without credentials, or with read-only ones, pushing fails.
    let anonymous = skopeo(&["copy", "--dest-tls-verify=false", &source, &image("myapp:anon")]).await;
    assert!(!anonymous.status.success());
    let refusal = String::from_utf8_lossy(&anonymous.stderr).to_lowercase();
    assert!(
        refusal.contains("unauthorized") || refusal.contains("authentication required"),
        "{refusal}"
    );
    let reader = skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        "--dest-creds",
        "reader:pass",
        &source,
        &image("myapp:r"),
    ])
    .await;
    assert!(!reader.status.success());
    registry.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skopeo_pushes_and_pulls_through_the_token_flow() {
    let options = RegistryOptions {
        token: Some(TokenOptions::new(&b"a key for the skopeo token test!"[..])),
        ..RegistryOptions::default()
    };
    let registry = TestRegistry::start_logged(Arc::new(common::test_auth()), options).await;
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("layout");
    make_layout(&layout);
    let (manifest_digest, _) = layout_manifest(&layout);
    let source = format!("oci:{}:v1", layout.display());
    let host = registry.addr.to_string();
    let image = |reference: &str| format!("docker://{host}/{reference}");

    skopeo_ok(&[
        "copy",
        "--dest-tls-verify=false",
        "--dest-creds",
        CREDS,
        &source,
        &image("myapp:v1"),
    ])
    .await;
    let pushed = registry.registry.resolve_tag("myapp", "v1").await.unwrap();
    assert_eq!(pushed.unwrap().to_string(), manifest_digest);
    // skopeo traded the credentials for a token, and used only the token
    // on the repository.
    let requests = registry.requests();
    let token_requests: Vec<_> = requests.iter().filter(|r| r.path() == "/v2/token").collect();
    assert!(!token_requests.is_empty(), "{requests:#?}");
    assert!(
        token_requests
            .iter()
            .all(|r| r.scheme.as_deref() == Some("Basic") && r.target.contains("push")),
        "{token_requests:#?}"
    );
    let on_repository: Vec<_> = requests
        .iter()
        .filter(|r| r.path().starts_with("/v2/myapp/"))
        .collect();
    assert!(
        on_repository
            .iter()
            .any(|r| r.method == Method::PUT && r.path().contains("/manifests/")),
        "{requests:#?}"
    );
    assert!(
        on_repository
            .iter()
            .all(|r| r.scheme.as_deref() == Some("Bearer")),
        "{on_repository:#?}"
    );

    // A user who may only pull gets a pull token: reading works...
    let inspected = skopeo_ok(&[
        "inspect",
        "--tls-verify=false",
        "--creds",
        "reader:pass",
        &image("myapp:v1"),
    ])
    .await;
    assert_eq!(
        serde_json::from_str::<Value>(&inspected).unwrap()["Digest"],
        manifest_digest.as_str()
    );
    // ...pushing is refused, and nothing was stored.
    let before = registry.requests().len();
    let refused = skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        "--dest-creds",
        "reader:pass",
        &source,
        &image("myapp:reader"),
    ])
    .await;
    assert!(!refused.status.success());
    let refusal = String::from_utf8_lossy(&refused.stderr).to_lowercase();
    assert!(
        refusal.contains("denied") || refusal.contains("unauthorized"),
        "{refusal}"
    );
    assert!(
        registry.requests()[before..]
            .iter()
            .any(|r| r.path() == "/v2/token"),
        "the reader's push went through the token endpoint"
    );
    assert!(
        registry
            .registry
            .resolve_tag("myapp", "reader")
            .await
            .unwrap()
            .is_none()
    );
    // Wrong credentials fail at the token endpoint.
    let wrong = skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--creds",
        "user:wrong",
        &image("myapp:v1"),
    ])
    .await;
    assert!(!wrong.status.success());
    registry.stop().await;
}
