//! The registry in `deis-workflow up`, with the platform's accounts: real
//! skopeo (Debian) pushes an OCI image to an app's repository with the
//! owner's username and `deis auth:token`, reads it back, and is refused
//! for a stranger, a wrong token and no credentials; destroying the app
//! removes its repository.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use support::up::{UpServer, ok};

fn skopeo(args: &[&str]) -> Output {
    Command::new("skopeo")
        .args(args)
        .output()
        .expect("skopeo is needed: run buildtools/test once, it installs it")
}

fn register(server: &UpServer, home: &Path, user: &str) -> String {
    ok(
        home,
        &[
            "register",
            &server.url,
            &format!("--username={user}"),
            "--password=s3cret-pw",
            &format!("--email={user}@example.com"),
        ],
    );
    ok(home, &["auth:token"]).trim().to_owned()
}

fn image_layout(dir: &Path) -> String {
    let script = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("tests run under cargo"))
        .join("crates/deis-registry/tests/fixtures/mklayout.py");
    let made = Command::new("python3")
        .arg(script)
        .arg(dir)
        .args(["v1", "2", "64"])
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    format!("oci:{}:v1", dir.display())
}

#[test]
fn app_owners_push_and_pull_their_images_and_nobody_else_can() {
    let data = tempfile::tempdir().unwrap();
    let (alice, bob) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let server = UpServer::start(data.path(), None, &[]);
    let alice_token = register(&server, alice.path(), "alice");
    let bob_token = register(&server, bob.path(), "bob");
    ok(alice.path(), &["create", "imgapp", "--no-remote"]);
    let layout = tempfile::tempdir().unwrap();
    let source = image_layout(&layout.path().join("layout"));
    let image = |tag: &str| format!("docker://{}/imgapp:{tag}", server.registry_addr);
    let push = |creds: Option<&str>, tag: &str| {
        let mut args = vec!["copy", "--dest-tls-verify=false"];
        if let Some(creds) = creds {
            args.extend(["--dest-creds", creds]);
        }
        let target = image(tag);
        args.extend([source.as_str(), target.as_str()]);
        skopeo(&args)
    };

    let alice_creds = format!("alice:{alice_token}");
    let pushed = push(Some(&alice_creds), "v1");
    assert!(
        pushed.status.success(),
        "{}",
        String::from_utf8_lossy(&pushed.stderr)
    );
    let inspected = skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--creds",
        &alice_creds,
        &image("v1"),
    ]);
    assert!(
        inspected.status.success(),
        "{}",
        String::from_utf8_lossy(&inspected.stderr)
    );
    let inspected: serde_json::Value = serde_json::from_slice(&inspected.stdout).unwrap();
    assert_eq!(
        inspected["Layers"].as_array().map(Vec::len),
        Some(2),
        "{inspected}"
    );

    // A stranger may neither push to nor read the app's repository.
    let bob_creds = format!("bob:{bob_token}");
    let refused = push(Some(&bob_creds), "bob");
    assert!(!refused.status.success());
    let read = skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--creds",
        &bob_creds,
        &image("v1"),
    ]);
    assert!(!read.status.success());
    // Once a collaborator, they may.
    ok(alice.path(), &["perms:create", "bob", "-a", "imgapp"]);
    let pushed = push(Some(&bob_creds), "bob");
    assert!(
        pushed.status.success(),
        "{}",
        String::from_utf8_lossy(&pushed.stderr)
    );

    // A wrong token, a token under another name, or none: unauthorized.
    for creds in [
        Some("alice:not-the-token".to_owned()),
        Some(format!("bob:{alice_token}")),
        None,
    ] {
        let refused = push(creds.as_deref(), "nope");
        let stderr = String::from_utf8_lossy(&refused.stderr).to_lowercase();
        assert!(!refused.status.success(), "{creds:?}");
        assert!(
            stderr.contains("unauthorized") || stderr.contains("authentication required"),
            "{creds:?}: {stderr}"
        );
    }
    let tags = skopeo(&[
        "list-tags",
        "--tls-verify=false",
        "--creds",
        &alice_creds,
        &image("v1").replace(":v1", ""),
    ]);
    let tags: serde_json::Value = serde_json::from_slice(&tags.stdout).unwrap();
    assert_eq!(tags["Tags"], serde_json::json!(["bob", "v1"]));

    // Operators see and tidy the registry with `deis-workflow registry`.
    let admin = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_deis-workflow"))
            .arg("registry")
            .args(args)
            .args(["--controller-url", &server.url])
            .arg("--data-dir")
            .arg(data.path())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "registry {args:?}: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        text
    };
    assert_eq!(admin(&["repos"]), "imgapp\n");
    assert_eq!(admin(&["tags", "imgapp"]), "bob\nv1\n");
    assert_eq!(admin(&["delete-tag", "imgapp", "bob"]), "Deleted imgapp:bob.\n");
    assert_eq!(admin(&["tags", "imgapp"]), "v1\n");
    let stranger = Command::new(env!("CARGO_BIN_EXE_deis-workflow"))
        .args(["registry", "repos", "--controller-url", &server.url])
        .args(["--platform-secret", "not-the-platform-secret-but-long-enough"])
        .output()
        .unwrap();
    assert!(!stranger.status.success());
    assert!(
        String::from_utf8_lossy(&stranger.stderr).contains("The platform secret does not match."),
        "{}",
        String::from_utf8_lossy(&stranger.stderr)
    );

    // Destroying the app removes its image repository; garbage collection
    // then frees its blobs (config, two layers, manifest).
    let repository = data.path().join("objects/registry/repositories/imgapp");
    assert!(repository.is_dir(), "{}", repository.display());
    ok(
        alice.path(),
        &["apps:destroy", "-a", "imgapp", "--confirm", "imgapp"],
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while repository.exists() {
        assert!(Instant::now() < deadline, "the image repository outlived its app");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(1100));
    let collected = admin(&["gc", "--grace-seconds", "1"]);
    assert!(collected.starts_with("Removed 4 blobs"), "{collected}");
    assert!(collected.contains("kept 0"), "{collected}");
    server.interrupt();
}
