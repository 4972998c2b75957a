//! `deis-workflow up` as a user runs it: the real binary on a free port with
//! its own data directory, driven by the real `deis` CLI; then stopped with
//! Ctrl-C (SIGINT) and started again, resuming where it left off.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The `deis` binary next to `deis-workflow`, built on demand.
fn deis_binary() -> PathBuf {
    let server = PathBuf::from(env!("CARGO_BIN_EXE_deis-workflow"));
    let cli = server.with_file_name("deis");
    if !cli.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "-q", "-p", "deis-cli", "--bin", "deis"])
            .status()
            .unwrap();
        assert!(status.success(), "building the deis CLI failed");
    }
    cli
}

struct Server {
    child: Child,
    url: String,
}

impl Server {
    fn start(data_dir: &Path, database_url: Option<&str>) -> Server {
        let mut command = Command::new(env!("CARGO_BIN_EXE_deis-workflow"));
        command
            .args([
                "up",
                "--controller-addr",
                "127.0.0.1:0",
                "--registration-mode",
                "enabled",
            ])
            .arg("--data-dir")
            .arg(data_dir)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(url) = database_url {
            command.args(["--database-url", url]);
        }
        let mut child = command.spawn().expect("start deis-workflow up");
        let stdout = child.stdout.take().unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut url = None;
        let mut banner = String::new();
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap();
            banner.push_str(&line);
            banner.push('\n');
            if let Some(rest) = line.trim().strip_prefix("Controller") {
                url = Some(rest.trim().to_owned());
            }
            if line.contains("Ctrl-C") || Instant::now() > deadline {
                break;
            }
        }
        let url = url.unwrap_or_else(|| panic!("no controller URL in:\n{banner}"));
        for expected in [
            "Git remote   ssh://git@127.0.0.1:2222/<app>.git",
            "App URLs     http://<app>.localhost:8080",
            "deis register",
        ] {
            assert!(banner.contains(expected), "banner lacks {expected:?}:\n{banner}");
        }
        Server { child, url }
    }

    /// Ctrl-C, and wait for a clean exit.
    fn interrupt(mut self) {
        let status = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "deis-workflow exited with {status}");
                return;
            }
            assert!(Instant::now() < deadline, "deis-workflow did not stop on Ctrl-C");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

fn deis(home: &Path, args: &[&str]) -> Output {
    Command::new(deis_binary())
        .args(args)
        .env("HOME", home)
        .env("NO_COLOR", "1")
        .env_remove("DEIS_PROFILE")
        .current_dir(home)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn ok(home: &Path, args: &[&str]) -> String {
    let out = deis(home, args);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "deis {args:?}: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

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
    let server = Server::start(data.path(), database_url);
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
    let server = Server::start(data.path(), database_url);
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
