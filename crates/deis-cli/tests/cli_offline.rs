//! Runs the built `deis` binary for everything that needs no controller:
//! help, shortcuts, version, profile handling, errors, plugins, git remotes.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tempfile::TempDir;

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// A throw-away HOME and working directory.
struct Env {
    home: TempDir,
    cwd: TempDir,
}

impl Env {
    fn new() -> std::io::Result<Self> {
        Ok(Self {
            home: tempfile::tempdir()?,
            cwd: tempfile::tempdir()?,
        })
    }

    fn command(&self) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_deis"));
        command
            .env("HOME", self.home.path())
            .env_remove("DEIS_PROFILE")
            .env("NO_COLOR", "1")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .current_dir(self.cwd.path());
        command
    }

    fn run(&self, args: &[&str]) -> std::io::Result<Output> {
        self.command().args(args).output()
    }

    /// Writes a logged-in profile pointing at `controller`.
    fn login(&self, controller: &str) -> std::io::Result<PathBuf> {
        let dir = self.home.path().join(".deis");
        fs::create_dir_all(&dir)?;
        let path = dir.join("client.json");
        fs::write(
            &path,
            format!(
                r#"{{"username":"alice","ssl_verify":true,"controller":"{controller}","token":"t0k3n","response_limit":100}}"#
            ),
        )?;
        Ok(path)
    }
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A port with nothing listening on it.
fn closed_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

#[test]
fn help_flag_prints_the_overview() -> TestResult {
    let env = Env::new()?;
    for args in [&["--help"][..], &["-h"], &["help"], &[]] {
        let out = env.run(args)?;
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        let text = stdout(&out);
        assert!(text.contains("Usage: deis <command>"), "{args:?}: {text}");
        assert!(
            text.contains("Subcommands, use 'deis help [subcommand]'"),
            "{text}"
        );
        assert!(text.contains("apps ") && text.contains("whitelist "), "{text}");
    }
    Ok(())
}

#[test]
fn help_for_a_command_shows_its_usage_and_flags() -> TestResult {
    let env = Env::new()?;
    for args in [
        &["help", "apps:create"][..],
        &["apps:create", "--help"],
        &["help", "create"],
        &["create", "-h"],
    ] {
        let out = env.run(args)?;
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        let text = stdout(&out);
        assert!(text.contains("Usage: deis apps:create"), "{args:?}: {text}");
        assert!(
            text.contains("--no-remote") && text.contains("--buildpack") && text.contains("--remote"),
            "{text}"
        );
    }
    Ok(())
}

#[test]
fn help_for_a_topic_lists_its_commands() -> TestResult {
    let env = Env::new()?;
    for args in [&["help", "config"][..], &["config", "--help"]] {
        let out = env.run(args)?;
        assert!(out.status.success());
        let text = stdout(&out);
        for command in [
            "config:list",
            "config:set",
            "config:unset",
            "config:pull",
            "config:push",
        ] {
            assert!(text.contains(command), "{args:?} lacks {command}: {text}");
        }
    }
    let auth = env.run(&["auth"])?;
    assert!(auth.status.success());
    assert!(stdout(&auth).contains("auth:register"), "{}", stdout(&auth));
    Ok(())
}

#[test]
fn shortcuts_list_maps_every_shortcut() -> TestResult {
    let env = Env::new()?;
    for args in [&["shortcuts:list"][..], &["shortcuts"]] {
        let out = env.run(args)?;
        assert!(out.status.success());
        let text = stdout(&out);
        for line in [
            "create",
            "apps:create",
            "rollback",
            "releases:rollback",
            "sharing:add",
            "perms:create",
            "pull",
            "builds:create",
        ] {
            assert!(text.contains(line), "{text}");
        }
    }
    let json = env.run(&["--json", "shortcuts"])?;
    let value: serde_json::Value = serde_json::from_slice(&json.stdout)?;
    assert_eq!(value["scale"], "ps:scale");
    Ok(())
}

#[test]
fn version_prints_the_client_version() -> TestResult {
    let env = Env::new()?;
    let expected = format!("v{}\n", env!("CARGO_PKG_VERSION"));
    for args in [&["version"][..], &["-v"], &["--version"]] {
        let out = env.run(args)?;
        assert!(out.status.success());
        assert_eq!(stdout(&out), expected, "{args:?}");
    }
    Ok(())
}

#[test]
fn not_logged_in_is_one_sentence_and_exit_1() -> TestResult {
    let env = Env::new()?;
    for args in [
        &["apps:list"][..],
        &["apps"],
        &["config:set", "A=1", "-a", "x"],
        &["whoami"],
        &["version", "--all"],
    ] {
        let out = env.run(args)?;
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert_eq!(
            stderr(&out),
            "Error: Not logged in. Run `deis login <controller>` or `deis register <controller>`.\n",
            "{args:?}"
        );
        assert_eq!(stdout(&out), "", "{args:?}");
    }
    Ok(())
}

#[test]
fn unreachable_controller_is_one_sentence_and_exit_1() -> TestResult {
    let env = Env::new()?;
    let port = closed_port()?;
    env.login(&format!("http://127.0.0.1:{port}"))?;
    let out = env.run(&["apps:list"])?;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        format!(
            "Error: cannot reach the controller at http://127.0.0.1:{port}: connection refused — is `deis-workflow up` running?\n"
        )
    );
    Ok(())
}

#[test]
fn login_to_unreachable_controller_fails_before_prompting() -> TestResult {
    let env = Env::new()?;
    let port = closed_port()?;
    let out = env.run(&["login", &format!("127.0.0.1:{port}")])?;
    assert_eq!(out.status.code(), Some(1));
    let text = stderr(&out);
    assert!(
        text.starts_with(&format!(
            "Error: cannot reach the controller at http://127.0.0.1:{port}"
        )),
        "{text}"
    );
    assert!(!text.contains("username"), "{text}");
    Ok(())
}

#[test]
fn invalid_arguments_fail_before_connecting() -> TestResult {
    let env = Env::new()?;
    env.login(&format!("http://127.0.0.1:{}", closed_port()?))?;
    let cases: &[(&[&str], &str)] = &[
        (
            &["scale", "web", "-a", "x"],
            "'web' does not match the pattern 'type=num', ex: web=2",
        ),
        (&["limits:set", "web=lots", "-a", "x"], "doesn't fit format"),
        (&["limits:set", "--cpu", "web=1G", "-a", "x"], "invalid CPU limit"),
        (&["tags:set", "rack", "-a", "x"], "Must be in format key=value"),
        (&["labels:set", "a=b=c", "-a", "x"], "Must be in format key=value"),
        (&["registry:set", "hostname=x", "-a", "x"], "Valid keys are"),
        (
            &[
                "autoscale:set",
                "web",
                "--min=3",
                "--max=1",
                "--cpu-percent=50",
                "-a",
                "x",
            ],
            "--max (1) must be at least --min (3)",
        ),
        (
            &["healthchecks:set", "startup", "httpGet", "80", "-a", "x"],
            "Invalid healthcheck type",
        ),
        (
            &["config:set", "1A=b", "-a", "x"],
            "does not match the pattern 'key=var'",
        ),
        (
            &["releases:info", "latest", "-a", "x"],
            "is not a release version",
        ),
        (
            &["whitelist:add", "10.0.0.300", "-a", "x"],
            "The address 10.0.0.300 is not valid",
        ),
        (&["destroy", "-a", "x"], "re-run with --confirm=x"),
    ];
    for (args, expected) in cases {
        let out = env.run(args)?;
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let text = stderr(&out);
        assert!(
            text.starts_with("Error: ") && text.contains(expected),
            "{args:?}: {text}"
        );
        assert!(!text.contains("cannot reach"), "{args:?} connected first: {text}");
    }
    Ok(())
}

#[test]
fn config_push_reports_the_bad_line() -> TestResult {
    let env = Env::new()?;
    env.login(&format!("http://127.0.0.1:{}", closed_port()?))?;
    fs::write(env.cwd.path().join(".env"), "A=1\r\nthis is not a variable\r\n")?;
    let out = env.run(&["config:push", "-a", "x"])?;
    assert_eq!(out.status.code(), Some(1));
    let text = stderr(&out);
    assert!(text.contains("cannot parse .env: line 2"), "{text}");
    Ok(())
}

#[test]
fn usage_errors_are_one_error_line_plus_usage() -> TestResult {
    let env = Env::new()?;
    let out = env.run(&["builds:create"])?;
    assert_eq!(out.status.code(), Some(1));
    let text = stderr(&out);
    assert!(
        text.starts_with("Error: the following required arguments were not provided: <IMAGE>\n"),
        "{text}"
    );
    assert!(text.contains("Usage: deis builds:create"), "{text}");
    // An invalid value: the sentence, then where to read more.
    let out = env.run(&["logs", "-n", "0", "-a", "x"])?;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        "Error: invalid value '0' for '--lines <N>': 0 is not in 1..=2147483647.\nSee 'deis help logs'.\n"
    );
    Ok(())
}

#[test]
fn unknown_command_without_plugin_is_an_error() -> TestResult {
    let env = Env::new()?;
    let out = env
        .command()
        .args(["frobnicate"])
        .env("PATH", env.home.path())
        .output()?;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        "Error: 'frobnicate' is not a deis command. See 'deis help'.\n"
    );
    Ok(())
}

#[cfg(unix)]
fn write_script(path: &Path, body: &str) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::write(path, body)?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o755))
}

#[cfg(unix)]
#[test]
fn plugins_on_path_are_executed() -> TestResult {
    let env = Env::new()?;
    let bin = tempfile::tempdir()?;
    write_script(
        &bin.path().join("deis-foo"),
        "#!/bin/sh\necho \"plugin $0 args: $*\"\necho \"profile: $DEIS_PROFILE\"\nexit 3\n",
    )?;
    let path = std::env::join_paths(
        std::iter::once(bin.path().to_path_buf()).chain(std::env::split_paths(
            &std::env::var_os("PATH").unwrap_or_default(),
        )),
    )?;
    let out = env
        .command()
        .env("PATH", &path)
        .args(["-c", "staging", "foo:bar", "baz", "--flag"])
        .output()?;
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("args: bar baz --flag"), "{text}");
    assert!(text.contains("profile: staging"), "{text}");

    let plain = env.command().env("PATH", &path).args(["foo"]).output()?;
    assert!(
        stdout(&plain).contains("args: \n") || stdout(&plain).contains("args:\n"),
        "{}",
        stdout(&plain)
    );
    Ok(())
}

#[test]
fn profile_selection_by_flag_env_and_path() -> TestResult {
    let env = Env::new()?;
    let dir = env.home.path().join(".deis");
    fs::create_dir_all(&dir)?;
    let profile = |user: &str| {
        format!(
            r#"{{"username":"{user}","ssl_verify":true,"controller":"http://c.example.com","token":"t","response_limit":100}}"#
        )
    };
    fs::write(dir.join("staging.json"), profile("stan"))?;
    let literal = env.cwd.path().join("custom.json");
    fs::write(&literal, profile("carl"))?;

    let by_flag = env.run(&["whoami", "-c", "staging"])?;
    assert_eq!(
        stdout(&by_flag),
        "You are stan at http://c.example.com\n",
        "{}",
        stderr(&by_flag)
    );
    let by_env = env
        .command()
        .env("DEIS_PROFILE", "staging")
        .arg("whoami")
        .output()?;
    assert_eq!(stdout(&by_env), "You are stan at http://c.example.com\n");
    let by_path = env.run(&["--config", "custom.json", "whoami"])?;
    assert_eq!(
        stdout(&by_path),
        "You are carl at http://c.example.com\n",
        "{}",
        stderr(&by_path)
    );
    let missing = env.run(&["-c", "nope", "whoami"])?;
    assert_eq!(missing.status.code(), Some(1));
    Ok(())
}

#[test]
fn logout_removes_the_profile() -> TestResult {
    let env = Env::new()?;
    let path = env.login("http://127.0.0.1:8000")?;
    let out = env.run(&["logout"])?;
    assert!(out.status.success());
    assert_eq!(stdout(&out), "Logged out\n");
    assert!(!path.exists());
    Ok(())
}

#[test]
fn git_remote_add_force_and_remove() -> TestResult {
    let env = Env::new()?;
    env.login("http://127.0.0.1:8000")?;
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .current_dir(env.cwd.path())
            .env("HOME", env.home.path())
            .output()
    };
    if !git(&["init", "-q"])?.status.success() {
        return Ok(()); // No git on this machine; nothing to check.
    }
    let remotes = || -> std::io::Result<String> { Ok(stdout(&git(&["remote", "-v"])?)) };

    let added = env.run(&["git:remote", "-a", "myapp"])?;
    assert!(added.status.success(), "{}", stderr(&added));
    assert_eq!(
        stdout(&added),
        "Git remote deis successfully created for app myapp.\n"
    );
    assert!(remotes()?.contains("deis\tssh://git@127.0.0.1:2222/myapp.git (push)"));

    let again = env.run(&["git:remote", "-a", "myapp"])?;
    assert!(again.status.success());
    let clash = env.run(&["git:remote", "-a", "other"])?;
    assert_eq!(clash.status.code(), Some(1));
    assert!(stderr(&clash).contains("git:remote -f"), "{}", stderr(&clash));

    let forced = env.run(&["git:remote", "-a", "other", "-f"])?;
    assert!(forced.status.success(), "{}", stderr(&forced));
    assert!(remotes()?.contains("ssh://git@127.0.0.1:2222/other.git"));

    let removed = env.run(&["git:remove", "-a", "other"])?;
    assert!(removed.status.success());
    assert!(!remotes()?.contains("other.git"));
    Ok(())
}
