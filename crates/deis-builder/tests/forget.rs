//! `Builder::forget_app`: what `deis apps:destroy` asks of the builder. A
//! running builder with real bare repositories on disk and real objects in
//! a local object store drops one app's repository, sources, slugs,
//! Procfiles and build cache, and nothing of any other app.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use deis_builder::objects::{cache_key, procfile_key, slug_key, source_key};
use deis_builder::{
    Builder, BuilderConfig, ControllerClient, ForgetError, HookCommand, LocalExecutor, Objects,
};

const SHA1: &str = "0123456789abcdef0123456789abcdef01234567";
const SHA2: &str = "89abcdef0123456789abcdef0123456789abcdef";

async fn start(dir: &Path, objects: Objects) -> Builder {
    let hook = HookCommand {
        program: "/bin/false".into(),
        args: Vec::new(),
    };
    let config = BuilderConfig::new("127.0.0.1:0".parse().unwrap(), dir.join("builder"), hook);
    // Never called here: the client connects lazily.
    let controller =
        ControllerClient::new("http://127.0.0.1:9", "forget-test-platform-secret-0123456789").unwrap();
    Builder::start(
        config,
        controller,
        objects,
        Arc::new(LocalExecutor::new(dir.join("buildpacks"))),
    )
    .await
    .unwrap()
}

fn bare_repository(path: &Path) {
    let out = Command::new("git")
        .args(["init", "--quiet", "--bare"])
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

fn keys(app: &str) -> Vec<String> {
    vec![
        source_key(app, SHA1),
        slug_key(app, SHA1),
        procfile_key(app, SHA1),
        source_key(app, SHA2),
        slug_key(app, SHA2),
        cache_key(app),
    ]
}

#[tokio::test]
async fn forgetting_an_app_removes_its_repository_and_objects_only() {
    let dir = tempfile::tempdir().unwrap();
    let objects = Objects::local(&dir.path().join("objects")).unwrap();
    let builder = start(dir.path(), objects.clone()).await;

    // `web` and apps whose names start the same way.
    let apps = ["web", "web-2", "webapp"];
    for app in apps {
        let repo = builder.repository(app);
        assert!(repo.starts_with(dir.path().join("builder")), "{}", repo.display());
        bare_repository(&repo);
        for key in keys(app) {
            objects.put_bytes(&key, app.as_bytes().to_vec()).await.unwrap();
        }
    }

    builder.forget_app("web").await.unwrap();

    assert!(!builder.repository("web").exists(), "the repository is left");
    for key in keys("web") {
        assert!(!objects.exists(&key).await.unwrap(), "{key} is left");
    }
    // Nothing of the app is left on disk (the local store prunes empty
    // directories).
    let home = dir.path().join("objects/home");
    let left: Vec<String> = std::fs::read_dir(&home)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name == "web" || name.starts_with("web:"))
        .collect();
    assert!(left.is_empty(), "left under {}: {left:?}", home.display());

    for app in ["web-2", "webapp"] {
        assert!(
            builder.repository(app).join("HEAD").exists(),
            "{app}'s repository"
        );
        for key in keys(app) {
            assert_eq!(
                objects.get_bytes(&key).await.unwrap().as_deref(),
                Some(app.as_bytes()),
                "{key}"
            );
        }
    }

    // Again, and for an app the builder never saw: nothing to do.
    builder.forget_app("web").await.unwrap();
    builder.forget_app("never-pushed").await.unwrap();
    builder.shutdown();
}

#[tokio::test]
async fn names_that_are_not_app_ids_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let objects = Objects::local(&dir.path().join("objects")).unwrap();
    let builder = start(dir.path(), objects).await;
    // A name like this would reach outside the repositories' directory.
    let outside = dir.path().join("builder/host-keys");
    for name in ["", "../host-keys", "Web", "a/b", "web:git-01234567", "-web"] {
        let err = builder.forget_app(name).await.unwrap_err();
        assert!(matches!(err, ForgetError::InvalidApp(_)), "{name:?}: {err}");
    }
    assert!(outside.exists());
    builder.shutdown();
}
