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

/// Runs git in `dir` (the user's HOME keeps the user's git config out).
fn git(user: &User, args: &[&str]) {
    let status = Command::new("git")
        .args(args)
        .current_dir(user.cwd.path())
        .env("HOME", user.home.path())
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .status()
        .expect("run git");
    assert!(status.success(), "git {args:?}");
}

/// The commands the scheduler ran for `app`.
fn runs(p: &TestPlatform, app: &str) -> Vec<String> {
    p.scheduler
        .calls_for(app)
        .into_iter()
        .filter_map(|call| match call {
            RecordedCall::Run { command, .. } => Some(command),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_takes_the_app_after_the_command_unless_after_a_double_dash() {
    let p = TestPlatform::start().await;
    let url = p.url.clone();
    // Alice is in a checkout of `built` (its git remote names the app) and
    // has a second app.
    let outs = tokio::task::spawn_blocking(move || {
        let alice = alice(&url);
        alice.ok(&["create", "second", "--no-remote"]);
        alice.ok(&["pull", "example/app:v1", "-a", "second"]);
        git(&alice, &["init", "-q"]);
        alice.ok(&["git:remote", "-a", "built"]);
        [
            alice.run(&["run", "echo $DEIS_APP", "-a", "second"]),
            alice.run(&["run", "echo", "$DEIS_APP", "-a", "second"]),
            alice.run(&["run", "echo $DEIS_APP", "--app", "second"]),
            alice.run(&["run", "echo", "--app=second", "$DEIS_APP"]),
            alice.run(&["run", "--", "ls", "-a"]),
            alice.run(&["run", "-a", "second", "--", "ls", "--app=x", "--", "-a"]),
            alice.run(&["run", "-a", "built", "echo", "-a", "second"]),
        ]
    })
    .await
    .unwrap();
    for out in &outs[..4] {
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        let err = text(&out.stderr);
        assert!(err.contains("Running 'echo $DEIS_APP'..."), "{err}");
        assert_eq!(text(&out.stdout), "echo $DEIS_APP\n");
    }
    // After `--` everything is the command, verbatim, in the remote's app.
    assert_eq!(outs[4].status.code(), Some(0), "{}", text(&outs[4].stderr));
    assert!(text(&outs[4].stderr).contains("Running 'ls -a'..."));
    assert_eq!(outs[5].status.code(), Some(0), "{}", text(&outs[5].stderr));
    assert_eq!(runs(&p, "built"), ["ls -a"]);
    assert_eq!(
        runs(&p, "second"),
        [
            "echo $DEIS_APP",
            "echo $DEIS_APP",
            "echo $DEIS_APP",
            "echo $DEIS_APP",
            "ls --app=x -- -a"
        ]
    );
    // The app twice is one sentence, and nothing runs.
    assert_eq!(outs[6].status.code(), Some(1));
    let err = text(&outs[6].stderr);
    assert!(
        err.starts_with("Error: The app is given twice (built and second)"),
        "{err}"
    );
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
}
