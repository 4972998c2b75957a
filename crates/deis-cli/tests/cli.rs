//! The real `deis` binary against a real controller on a loopback port (over
//! SQLite, or PostgreSQL when `DEIS_TEST_DATABASE_URL` is set), in a
//! temporary HOME, the way a user types it.

use std::path::Path;
use std::process::{Command, Output};

use deis_testkit::{TestPlatform, random_ed25519_public_key, test_certificate};
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

    fn run_in(&self, dir: &Path, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_deis"))
            .args(args)
            .env("HOME", self.home.path())
            .env_remove("DEIS_PROFILE")
            .env("NO_COLOR", "1")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.com")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.com")
            .current_dir(dir)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run deis")
    }

    fn run(&self, args: &[&str]) -> Output {
        self.run_in(self.cwd.path(), args)
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

    /// Runs and requires failure; returns stderr.
    fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            !out.status.success(),
            "deis {args:?} succeeded:\n{}",
            text(&out.stdout)
        );
        assert_eq!(out.status.code(), Some(1));
        text(&out.stderr)
    }

    fn file(&self, name: &str, contents: &str) -> String {
        let path = self.cwd.path().join(name);
        std::fs::write(&path, contents).unwrap();
        path.display().to_string()
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_session_from_register_to_destroy() {
    let p = TestPlatform::start().await;
    let url = p.url.clone();
    tokio::task::spawn_blocking(move || session(&url)).await.unwrap();
}

fn session(url: &str) {
    let alice = User::new();
    let out = alice.ok(&[
        "register",
        url,
        "--username=alice",
        "--password=s3cret-pw",
        "--email=alice@example.com",
    ]);
    assert!(out.contains("alice"), "{out}");
    let profile = std::fs::read_to_string(alice.home.path().join(".deis/client.json")).unwrap();
    let profile: serde_json::Value = serde_json::from_str(&profile).unwrap();
    assert_eq!(profile["username"], "alice");
    assert_eq!(profile["controller"], url);
    assert_eq!(profile["token"].as_str().unwrap().len(), 64);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(alice.home.path().join(".deis/client.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "the profile holds a token: owner-only");
    }
    assert!(alice.ok(&["whoami"]).contains(&format!("You are alice at {url}")));
    alice.ok(&["logout"]);
    assert!(alice.fails(&["apps"]).contains("Not logged in"));
    alice.ok(&["login", url, "--username=alice", "--password=s3cret-pw"]);
    let bad = alice.run(&["login", url, "--username=alice", "--password=wrong"]);
    assert!(!bad.status.success());
    assert!(
        text(&bad.stderr).contains("Unable to log in with provided credentials"),
        "{}",
        text(&bad.stderr)
    );

    // Apps and config.
    assert!(alice.ok(&["create", "myapp", "--no-remote"]).contains("myapp"));
    let out = alice.ok(&["config:set", "FOO=bar", "GREETING=hello world", "-a", "myapp"]);
    assert!(out.contains("done, v2"), "{out}");
    let out = alice.ok(&["config", "-a", "myapp"]);
    assert!(
        out.contains("FOO") && out.contains("bar") && out.contains("hello world"),
        "{out}"
    );
    assert!(
        alice
            .ok(&["config:unset", "FOO", "-a", "myapp"])
            .contains("done, v3")
    );
    let err = alice.fails(&["config:unset", "FOO", "-a", "myapp"]);
    assert!(
        err.starts_with("Error: ") && err.contains("FOO does not exist under values"),
        "{err}"
    );
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "errors are one sentence: {err}"
    );

    let out = alice.ok(&["releases", "-a", "myapp"]);
    let lines: Vec<&str> = out.lines().filter(|l| l.starts_with('v')).collect();
    assert!(
        lines[0].starts_with("v3") && lines[0].contains("alice deleted FOO"),
        "{out}"
    );
    assert!(
        lines[1].starts_with("v2") && lines[1].contains("alice added FOO, GREETING"),
        "{out}"
    );
    assert!(
        lines[2].starts_with("v1") && lines[2].contains("alice created initial release"),
        "{out}"
    );
    let out = alice.ok(&["rollback", "-a", "myapp"]);
    assert!(out.contains("done, v4"), "{out}");
    assert!(
        alice.ok(&["config", "-a", "myapp"]).contains("FOO"),
        "rolling back to v2 brings FOO back"
    );
    assert!(
        alice
            .ok(&["releases:info", "v2", "-a", "myapp"])
            .contains("alice added FOO, GREETING")
    );
    let err = alice.fails(&["rollback", "v1", "-a", "myapp"]);
    assert!(err.contains("Cannot roll back to initial release."), "{err}");

    // --json for scripts.
    let json: serde_json::Value = serde_json::from_str(&alice.ok(&["apps", "--json"])).unwrap();
    let found = json.to_string();
    assert!(found.contains("\"myapp\""), "{found}");

    // Collaborators.
    let bob = User::new();
    bob.ok(&[
        "register",
        url,
        "--username=bob",
        "--password=b0b-pw",
        "--email=bob@example.com",
    ]);
    assert!(bob.fails(&["info", "-a", "myapp"]).contains("permission"));
    alice.ok(&["perms:create", "bob", "-a", "myapp"]);
    assert!(alice.ok(&["perms", "-a", "myapp"]).contains("bob"));
    assert!(bob.ok(&["config", "-a", "myapp"]).contains("GREETING"));
    assert!(
        bob.fails(&["destroy", "-a", "myapp", "--confirm=myapp"])
            .contains("permission")
    );
    alice.ok(&["perms:delete", "bob", "-a", "myapp"]);
    assert!(!alice.ok(&["perms", "-a", "myapp"]).contains("bob"));

    // Keys.
    let key = alice.file(
        "laptop.pub",
        &format!("{}\n", random_ed25519_public_key("alice@laptop")),
    );
    alice.ok(&["keys:add", &key]);
    assert!(alice.ok(&["keys"]).contains("alice@laptop"));
    let err = alice.fails(&["keys:add", &key]);
    assert!(err.contains("Public Key is already in use"), "{err}");
    alice.ok(&["keys:remove", "alice@laptop"]);
    assert!(!alice.ok(&["keys"]).contains("alice@laptop"));

    // Domains and certificates.
    alice.ok(&["domains:add", "www.example.com", "-a", "myapp"]);
    assert!(alice.ok(&["domains", "-a", "myapp"]).contains("www.example.com"));
    let (cert, key) = test_certificate();
    let cert = alice.file("www.crt", &cert);
    let key = alice.file("www.key", &key);
    alice.ok(&["certs:add", "www", &cert, &key]);
    alice.ok(&["certs:attach", "www", "www.example.com"]);
    let out = alice.ok(&["certs"]);
    assert!(out.contains("www") && out.contains("www.example.com"), "{out}");
    let err = alice.fails(&["certs:add", "www", &key, &cert]);
    assert!(err.contains("Could not load certificate"), "{err}");
    alice.ok(&["certs:detach", "www", "www.example.com"]);
    alice.ok(&["certs:remove", "www"]);
    alice.ok(&["domains:remove", "www.example.com", "-a", "myapp"]);
    assert!(!alice.ok(&["domains", "-a", "myapp"]).contains("www.example.com"));

    // Settings without releases.
    alice.ok(&["maintenance:on", "-a", "myapp"]);
    assert!(
        alice
            .ok(&["maintenance:info", "-a", "myapp"])
            .to_lowercase()
            .contains("on")
    );
    alice.ok(&["tls:enable", "-a", "myapp"]);
    alice.ok(&["whitelist:add", "10.0.0.0/8", "-a", "myapp"]);
    assert!(alice.ok(&["whitelist", "-a", "myapp"]).contains("10.0.0.0/8"));
    alice.ok(&["limits:set", "web=512M", "-a", "myapp"]);
    assert!(alice.ok(&["limits", "-a", "myapp"]).contains("512M"));

    // Errors are one sentence and exit 1.
    let err = alice.fails(&["info", "-a", "nope"]);
    assert!(err.contains("App nope does not exist."), "{err}");

    // App detection from the git remote `deis create` adds.
    let repo = tempfile::tempdir().unwrap();
    let git = |args: &[&str]| {
        let status = Command::new("git")
            .args(args)
            .current_dir(repo.path())
            .env("HOME", alice.home.path())
            .status()
            .unwrap();
        assert!(status.success());
    };
    git(&["init", "-q", "-b", "main"]);
    let out = alice.run_in(repo.path(), &["create", "detected"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let remotes = Command::new("git")
        .args(["remote", "-v"])
        .current_dir(repo.path())
        .output()
        .unwrap();
    let remotes = text(&remotes.stdout);
    assert!(
        remotes.contains("deis") && remotes.contains("detected.git"),
        "{remotes}"
    );
    let out = alice.run_in(repo.path(), &["info"]);
    assert!(
        out.status.success() && text(&out.stdout).contains("detected"),
        "{}",
        text(&out.stderr)
    );

    alice.ok(&["destroy", "-a", "myapp", "--confirm=myapp"]);
    assert!(alice.fails(&["info", "-a", "myapp"]).contains("does not exist"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_and_limit_enforcement_notes() {
    let p = TestPlatform::start().await;
    let url = p.url.clone();
    tokio::task::spawn_blocking(move || timeouts_and_limits(&url))
        .await
        .unwrap();
}

fn timeouts_and_limits(url: &str) {
    let carol = User::new();
    carol.ok(&[
        "register",
        url,
        "--username=carol",
        "--password=c4rol-pw",
        "--email=carol@example.com",
    ]);
    carol.ok(&["create", "slow", "--no-remote"]);

    // Help lists the topic and its commands.
    assert!(carol.ok(&["help"]).contains("timeouts"));
    let help = carol.ok(&["help", "timeouts"]);
    assert!(
        help.contains("timeouts:list") && help.contains("timeouts:set") && help.contains("timeouts:unset"),
        "{help}"
    );

    // Nothing set: the default, and a bare topic lists.
    let out = carol.ok(&["timeouts", "-a", "slow"]);
    assert!(out.starts_with("=== slow Timeouts\n"), "{out}");
    assert!(
        out.contains("Default (30 sec) or controlled by the runtime"),
        "{out}"
    );

    let out = carol.ok(&["timeouts:set", "web=60", "worker=0", "-a", "slow"]);
    assert!(out.contains("Applying timeouts... done, v2"), "{out}");
    assert!(out.contains("=== slow Timeouts"), "{out}");
    let out = carol.ok(&["timeouts:list", "-a", "slow"]);
    let rows: Vec<Vec<&str>> = out
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows, [vec!["web", "60"], vec!["worker", "0"]], "{out}");
    assert!(!out.contains("Default"), "{out}");

    // Checked before anything is sent.
    let err = carol.fails(&["timeouts:set", "web=soon", "-a", "slow"]);
    assert!(err.contains("web=soon doesn't fit format type=#"), "{err}");
    let err = carol.fails(&["timeouts:set", "web=7200", "-a", "slow"]);
    assert!(err.contains("from 0 to 3600"), "{err}");
    let err = carol.fails(&["timeouts:unset", "Web", "-a", "slow"]);
    assert!(err.contains("invalid process type 'Web'"), "{err}");

    let out = carol.ok(&["timeouts:unset", "worker", "-a", "slow"]);
    assert!(out.contains("done, v3"), "{out}");
    assert!(!out.contains("worker"), "{out}");
    let err = carol.fails(&["timeouts:unset", "worker", "-a", "slow"]);
    assert!(
        err.contains("worker does not exist under termination_grace_period"),
        "{err}"
    );

    let json: serde_json::Value =
        serde_json::from_str(&carol.ok(&["timeouts", "--json", "-a", "slow"])).unwrap();
    assert_eq!(json, serde_json::json!({"web": "60"}));

    let out = carol.ok(&["releases", "-a", "slow"]);
    assert!(
        out.contains("carol changed termination grace period for worker"),
        "{out}"
    );
    assert!(
        out.contains("carol changed termination grace period for web, worker"),
        "{out}"
    );

    // Limits: a note for each kind that is set and that the runtime (here
    // the recording scheduler) does not enforce.
    let memory_note = "Note: memory limits are recorded but not enforced by this platform's runtime.";
    let cpu_note = "Note: CPU limits are recorded but not enforced by this platform's runtime.";
    let out = carol.ok(&["limits", "-a", "slow"]);
    assert!(!out.contains("Note:"), "nothing set, nothing to note: {out}");
    let out = carol.ok(&["limits:set", "web=512M", "-a", "slow"]);
    assert!(out.contains(memory_note) && !out.contains(cpu_note), "{out}");
    let out = carol.ok(&["limits:set", "--cpu", "web=500m", "-a", "slow"]);
    assert!(out.contains(memory_note) && out.contains(cpu_note), "{out}");
    let out = carol.ok(&["limits:list", "-a", "slow"]);
    assert!(out.contains(memory_note) && out.contains(cpu_note), "{out}");
    let json: serde_json::Value =
        serde_json::from_str(&carol.ok(&["limits", "--json", "-a", "slow"])).unwrap();
    assert_eq!(json["memory"]["web"], "512M");

    // Autoscale rules are recorded, with a note that this runtime does not
    // apply them.
    let autoscale_note = "Note: autoscale rules are recorded but not applied by this platform's runtime";
    let out = carol.ok(&[
        "autoscale:set",
        "web",
        "--min=1",
        "--max=3",
        "--cpu-percent=60",
        "-a",
        "slow",
    ]);
    assert!(out.contains(autoscale_note), "{out}");
    let out = carol.ok(&["autoscale", "-a", "slow"]);
    assert!(
        out.contains("Max Replicas: 3") && out.contains(autoscale_note),
        "{out}"
    );
    let out = carol.ok(&["autoscale:unset", "web", "-a", "slow"]);
    assert!(!out.contains(autoscale_note), "nothing left to note: {out}");
}

/// Runs git in `dir` as `user` (their HOME keeps other git config out).
fn git(user: &User, dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("HOME", user.home.path())
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {}", text(&out.stderr));
    text(&out.stdout)
}

/// A registered user called `name`.
fn registered(url: &str, name: &str) -> User {
    let user = User::new();
    user.ok(&[
        "register",
        url,
        &format!("--username={name}"),
        "--password=s3cret-pw",
        &format!("--email={name}@example.com"),
    ]);
    user
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_git_remote_hint_follows_only_a_missing_app() {
    let p = TestPlatform::start().await;
    let url = p.url.clone();
    tokio::task::spawn_blocking(move || {
        let alice = registered(&url, "alice");
        git(&alice, alice.cwd.path(), &["init", "-q"]);
        alice.ok(&["create", "myapp"]);
        alice.ok(&["pull", "example/app:v1"]);

        // Missing things of an existing app: the controller's sentence alone.
        for (args, expected) in [
            (
                &["scale", "worker=1"][..],
                "Container type worker does not exist in application",
            ),
            (&["releases:info", "v99"], "Release v99 does not exist."),
            (
                &["domains:remove", "nothere.com"],
                "Domain nothere.com on myapp does not exist.",
            ),
            (&["perms:create", "nosuchuser"], "User nosuchuser does not exist."),
        ] {
            let err = alice.fails(args);
            assert_eq!(err, format!("Error: {expected}\n"), "deis {args:?}");
        }

        // The app itself missing: the hint on where its name came from.
        alice.ok(&["git:remote", "-a", "ghost", "--force"]);
        let err = alice.fails(&["info"]);
        assert_eq!(
            err,
            "Error: App ghost does not exist. The app name `ghost` comes from git remote `deis`; pass -a <app> to choose another.\n"
        );
        // Named with -a, there is nothing to explain.
        assert_eq!(
            alice.fails(&["info", "-a", "ghost"]),
            "Error: App ghost does not exist.\n"
        );
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authentication_errors_say_what_to_do_once() {
    let p = TestPlatform::start().await;
    let url = p.url.clone();
    tokio::task::spawn_blocking(move || {
        let alice = registered(&url, "alice");
        // Wrong credentials are a typing matter.
        let err = alice.fails(&["login", &url, "--username=alice", "--password=wrong"]);
        assert_eq!(
            err,
            "Error: Unable to log in with provided credentials; check the username and password.\n"
        );
        // So is a wrong current password.
        let err = alice.fails(&["passwd", "--password=wrong", "--new-password=n3w-s3cret"]);
        assert_eq!(err, "Error: Current password does not match.\n");

        // A token the controller no longer knows: log in again, said once.
        let path = alice.home.path().join(".deis/client.json");
        let mut profile: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        profile["token"] = serde_json::json!("0".repeat(64));
        std::fs::write(&path, profile.to_string()).unwrap();
        let err = alice.fails(&["apps"]);
        assert_eq!(err, "Error: Invalid token; log in again with `deis login`.\n");
        assert_eq!(err.matches("log in").count(), 1, "{err}");
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_add_with_a_missing_file_says_so() {
    let p = TestPlatform::start().await;
    let url = p.url.clone();
    tokio::task::spawn_blocking(move || {
        let alice = registered(&url, "alice");
        // A key in ~/.ssh, so the picker would have something to offer.
        let ssh = alice.home.path().join(".ssh");
        std::fs::create_dir_all(&ssh).unwrap();
        std::fs::write(
            ssh.join("id_ed25519.pub"),
            format!("{}\n", random_ed25519_public_key("alice@laptop")),
        )
        .unwrap();
        for args in [
            &["keys:add", "/nonexistent.pub"][..],
            &["keys:add", "laptop", "/nonexistent.pub"],
            &["keys:add", "/nonexistent.pub", "laptop"],
        ] {
            let out = alice.run(args);
            assert_eq!(out.status.code(), Some(1), "deis {args:?}");
            assert_eq!(
                text(&out.stderr),
                "Error: The key file /nonexistent.pub does not exist.\n",
                "deis {args:?}"
            );
            assert_eq!(text(&out.stdout), "", "deis {args:?}");
        }
        assert!(!alice.ok(&["keys"]).contains("alice@laptop"));
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_checks_the_git_remote_before_creating_the_app() {
    let p = TestPlatform::start().await;
    let url = p.url.clone();
    tokio::task::spawn_blocking(move || {
        let alice = registered(&url, "alice");
        let repo = alice.cwd.path();
        git(&alice, repo, &["init", "-q"]);
        alice.ok(&["create", "first"]);

        // The `deis` remote is taken: nothing is created, and the error says
        // how to go on.
        let err = alice.fails(&["create", "another"]);
        assert!(
            err.starts_with("Error: A git remote named deis already exists (")
                && err.contains("no app was created")
                && err.contains("--remote <name>")
                && err.contains("--no-remote"),
            "{err}"
        );
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        let err = alice.fails(&["info", "-a", "another"]);
        assert!(err.contains("App another does not exist."), "{err}");
        // Nor for a generated name.
        let before = alice.ok(&["apps"]);
        alice.fails(&["create"]);
        assert_eq!(alice.ok(&["apps"]), before);

        // Either way out works, and the `deis` remote is left alone.
        alice.ok(&["create", "another", "--remote", "second"]);
        alice.ok(&["create", "third", "--no-remote"]);
        let remotes = git(&alice, repo, &["remote", "-v"]);
        assert!(
            remotes.contains("deis\tssh://") && remotes.contains("/first.git"),
            "{remotes}"
        );
        assert!(
            remotes.contains("second\tssh://") && remotes.contains("/another.git"),
            "{remotes}"
        );
        assert!(!remotes.contains("third.git"), "{remotes}");
        // A remote already pointing at the app being created is fine.
        let first_url = remotes_url(&remotes, "deis");
        alice.ok(&["destroy", "-a", "first", "--confirm=first"]);
        git(&alice, repo, &["remote", "add", "deis", &first_url]);
        let out = alice.ok(&["create", "first"]);
        assert!(
            out.contains("already exists and is correctly configured"),
            "{out}"
        );
    })
    .await
    .unwrap();
}

/// The push URL of `remote` in `git remote -v` output.
fn remotes_url(remotes: &str, remote: &str) -> String {
    remotes
        .lines()
        .find(|l| l.starts_with(&format!("{remote}\t")) && l.ends_with("(push)"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap()
        .to_owned()
}
