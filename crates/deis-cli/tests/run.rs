//! `deis run` (the real binary) against a real controller whose runtime is
//! the recording scheduler: output, exit codes and the errors a user sees.
//! The pseudo-terminal itself is the runtime's to test; here stdin is never
//! a terminal.

use std::process::{Command, Output, Stdio};

use deis_scheduler::{RecordedCall, RunOutcome};
use deis_testkit::TestPlatform;
use tempfile::TempDir;

/// One user's terminal: their own HOME and working directory.
struct User {
    home: TempDir,
    cwd: TempDir,
}

impl User {
    fn new() -> User {
        User {
            home: tempfile::tempdir().unwrap(),
            cwd: tempfile::tempdir().unwrap(),
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_deis"))
            .args(args)
            .env("HOME", self.home.path())
            .env_remove("DEIS_PROFILE")
            .env("NO_COLOR", "1")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .current_dir(self.cwd.path())
            .stdin(Stdio::null())
            .output()
            .expect("run deis")
    }

    /// Runs and requires success; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "deis {args:?} failed:\nstdout: {}\nstderr: {}",
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Alice, logged in, with the apps `built` (an image deployed) and `bare`.
fn alice(url: &str) -> User {
    let alice = User::new();
    alice.ok(&[
        "register",
        url,
        "--username=alice",
        "--password=s3cret-pw",
        "--email=alice@example.com",
    ]);
    alice.ok(&["create", "built", "--no-remote"]);
    alice.ok(&["pull", "example/app:v1", "-a", "built"]);
    alice.ok(&["create", "bare", "--no-remote"]);
    alice
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_streams_output_and_exits_with_the_commands_code() {
    let p = TestPlatform::start().await;
    let url = p.url.clone();
    let alice = tokio::task::spawn_blocking(move || alice(&url)).await.unwrap();

    // The recording scheduler echoes the command; `--` keeps its options.
    let (alice, out) = tokio::task::spawn_blocking(move || {
        let out = alice.run(&["run", "-a", "built", "--", "ls", "-la"]);
        (alice, out)
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "ls -la\n");
    assert!(
        text(&out.stderr).contains("Running 'ls -la'..."),
        "{}",
        text(&out.stderr)
    );
    assert!(p.scheduler.calls_for("built").contains(&RecordedCall::Run {
        app: "built".into(),
        version: 2,
        command: "ls -la".into(),
    }));

    // The remote exit code becomes deis's.
    p.scheduler.set_run_outcome(RunOutcome {
        exit_code: 3,
        output: "it broke\n".into(),
    });
    let (alice, out) = tokio::task::spawn_blocking(move || {
        let out = alice.run(&["apps:run", "-a", "built", "false"]);
        (alice, out)
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "it broke\n");

    // --json: one document, shaped like RunCommand's answer.
    let out = tokio::task::spawn_blocking(move || alice.run(&["--json", "run", "-a", "built", "false"]))
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(json["exit_code"], 3);
    assert_eq!(json["output"], "it broke\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_errors_are_one_clear_sentence() {
    let p = TestPlatform::start().await;
    let url = p.url.clone();
    let out = tokio::task::spawn_blocking(move || {
        let alice = alice(&url);
        [
            alice.run(&["run", "--tty", "-a", "built", "bash"]),
            alice.run(&["run", "-t", "-a", "built", "--", "bash"]),
            alice.run(&["run", "-a", "bare", "ls"]),
            alice.run(&["run", "-a", "nope", "ls"]),
        ]
    })
    .await
    .unwrap();
    for tty in &out[..2] {
        assert_eq!(tty.status.code(), Some(1));
        let err = text(&tty.stderr);
        assert!(err.starts_with("Error: --tty needs a terminal"), "{err}");
    }
    let err = text(&out[2].stderr);
    assert_eq!(out[2].status.code(), Some(1));
    assert!(
        err.contains("Error: No build associated with this release to run this command"),
        "{err}"
    );
    assert_eq!(out[3].status.code(), Some(1));
    assert!(text(&out[3].stderr).contains("nope"), "{}", text(&out[3].stderr));
    // Nothing ran.
    assert!(
        !p.scheduler
            .calls()
            .iter()
            .any(|call| matches!(call, RecordedCall::Run { .. }))
    );
}
