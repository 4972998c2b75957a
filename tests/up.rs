//! `deis-workflow up` as a user runs it: the real binary on a free port with
//! its own data directory, driven by the real `deis` CLI; then stopped with
//! Ctrl-C (SIGINT) and started again, resuming where it left off.

mod support;

use support::up::{UpServer, ok};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_serves_the_cli_and_resumes_after_ctrl_c() {
    let database_url = deis_testkit::fresh_postgres_database().await;
    tokio::task::spawn_blocking(move || scenario(database_url.as_deref()))
        .await
        .unwrap();
}

fn scenario(database_url: Option<&str>) {
    let data = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let server = UpServer::start(data.path(), database_url, &[]);
    ok(
        home.path(),
        &[
            "register",
            &server.url,
            "--username=admin",
            "--password=adm1n-pw",
            "--email=a@example.com",
        ],
    );
    ok(home.path(), &["create", "persisted", "--no-remote"]);
    ok(home.path(), &["config:set", "KEEP=me", "-a", "persisted"]);
    let version = ok(home.path(), &["version", "--all"]);
    assert!(version.contains(env!("CARGO_PKG_VERSION")), "{version}");
    server.interrupt();

    if database_url.is_none() {
        assert!(data.path().join("deis.sqlite3").exists());
    }
    assert!(data.path().join("platform-secret").exists());
    assert!(
        data.path()
            .join("builder/host-keys/ssh_host_ed25519_key")
            .exists()
    );
    let server = UpServer::start(data.path(), database_url, &[]);
    // The saved profile points at the old port; log in to the new one.
    ok(
        home.path(),
        &["login", &server.url, "--username=admin", "--password=adm1n-pw"],
    );
    let config = ok(home.path(), &["config", "-a", "persisted"]);
    assert!(config.contains("KEEP") && config.contains("me"), "{config}");
    let releases = ok(home.path(), &["releases", "-a", "persisted"]);
    assert!(releases.contains("v2"), "{releases}");
    server.interrupt();
}
