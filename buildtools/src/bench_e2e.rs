//! `buildtools/bench e2e`: the main job as a user sees it, on the release
//! `deis-workflow up` with the release `deis` CLI, real `git` and `ssh`.
//!
//! - `git push` of the Python sample app to its first 200 through the edge
//!   router: the first deploy (pip fills the build cache), then re-deploys
//!   of a changed commit (cache restored), each until the router serves the
//!   new code.
//! - `deis config:set GREETING=...` to the new value served through the
//!   router.
//!
//! Needs `DEIS_WORKFLOW_BIN` and `DEIS_BIN`; `buildtools/bench e2e` builds
//! both and runs this from the repository root (for the sample app).

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};

use crate::{Samples, exec, free_port, ms};

const REDEPLOYS: usize = 6;
const CONFIG_CHANGES: usize = 12;
const APP: &str = "bench";
const HOST: &str = "bench.localhost";
/// The line of the sample app that builds its answer; each re-deploy
/// changes it so the new release can be told from the old one.
const ANSWER_LINE: &str = "body = \"Hello from Python\"";

pub(crate) fn binary(var: &str) -> Result<PathBuf> {
    std::env::var_os(var)
        .map(PathBuf::from)
        .with_context(|| format!("{var} is not set (buildtools/bench e2e sets it)"))
}

/// `deis-workflow up`, stopped like Ctrl-C (its apps with it) on drop.
pub(crate) struct Up {
    child: Child,
    pub(crate) controller_url: String,
    router_port: u16,
}

impl Drop for Up {
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGINT);
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn start_up(data: &Path) -> Result<Up> {
    start_up_with(data, &[])
}

/// [`start_up`] with `extra` arguments.
fn start_up_with(data: &Path, extra: &[&str]) -> Result<Up> {
    let router_port = free_port()?;
    let mut child = Command::new(binary("DEIS_WORKFLOW_BIN")?)
        .args([
            "up",
            "--controller-addr",
            "127.0.0.1:0",
            "--builder-addr",
            "127.0.0.1:0",
        ])
        .args(["--xds-addr", "127.0.0.1:0", "--logger-addr", "127.0.0.1:0"])
        .args(["--forward-addr", "127.0.0.1:0", "--registration-mode", "enabled"])
        .args(["--registry-addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0"])
        .args(["--router-port", &router_port.to_string()])
        .args(["--router-https-port", &free_port()?.to_string()])
        .args(extra)
        .arg("--data-dir")
        .arg(data)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("cannot start deis-workflow up")?;
    let stdout = child.stdout.take().context("no stdout")?;
    let mut controller_url = None;
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        if let Some(url) = line.trim().strip_prefix("Controller") {
            controller_url = Some(url.trim().to_owned());
        }
        if line.contains("Ctrl-C") {
            break;
        }
    }
    let controller_url = controller_url.context("`up` printed no controller URL")?;
    Ok(Up {
        child,
        controller_url,
        router_port,
    })
}

/// The CLI as a user runs it, with `home` as HOME.
pub(crate) fn deis(home: &Path, dir: &Path, args: &[&str]) -> Result<String> {
    exec(
        Command::new(binary("DEIS_BIN")?)
            .args(args)
            .env("HOME", home)
            .env("NO_COLOR", "1")
            .env_remove("DEIS_PROFILE")
            .current_dir(dir)
            .stdin(Stdio::null()),
    )
}

fn git(dir: &Path, home: &Path, key: &Path) -> Command {
    let mut command = Command::new("git");
    command
        .current_dir(dir)
        .env("HOME", home)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "bench")
        .env("GIT_AUTHOR_EMAIL", "bench@example.com")
        .env("GIT_COMMITTER_NAME", "bench")
        .env("GIT_COMMITTER_EMAIL", "bench@example.com")
        .env(
            "GIT_SSH_COMMAND",
            format!(
                "ssh -i {} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o IdentitiesOnly=yes \
                 -o LogLevel=ERROR -o BatchMode=yes",
                key.display()
            ),
        );
    command
}

/// `GET /` through the router: the whole response.
fn get_response(port: u16) -> std::io::Result<String> {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    write!(
        stream,
        "GET / HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    Ok(response)
}

/// `GET /` through the router: the body when the answer is a 200.
fn get(port: u16) -> Option<String> {
    let response = get_response(port).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200 ").then(|| body.to_owned())
}

/// Polls the router every millisecond until the answer contains `text`;
/// returns when that happened.
fn served(port: u16, text: &str, within: Duration) -> Result<Instant> {
    let started = Instant::now();
    loop {
        if get(port).is_some_and(|body| body.contains(text)) {
            return Ok(Instant::now());
        }
        ensure!(
            started.elapsed() < within,
            "the router never served {text:?} within {within:?}; it answers: {:?}",
            get_response(port)
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Commits the sample app answering with `marker` in its text.
fn commit_marker(repo: &Path, home: &Path, key: &Path, marker: &str) -> Result<()> {
    let path = repo.join("app.py");
    let source = std::fs::read_to_string(&path)?;
    let line = source
        .lines()
        .find(|l| l.trim_start().starts_with("body = \"Hello from Python"))
        .context("the sample app's answer line moved")?
        .to_owned();
    let indent = line.strip_suffix(line.trim_start()).unwrap_or_default();
    let changed = source.replacen(
        &line,
        &format!("{indent}body = \"Hello from Python {marker}\""),
        1,
    );
    std::fs::write(&path, changed)?;
    exec(git(repo, home, key).args(["commit", "-q", "-am", marker]))?;
    Ok(())
}

/// `git push deis main`; fails unless the push deployed.
fn push(repo: &Path, home: &Path, key: &Path) -> Result<()> {
    let out = git(repo, home, key)
        .args(["push", "deis", "main"])
        .output()
        .context("running git push")?;
    let text = String::from_utf8_lossy(&out.stderr);
    ensure!(
        out.status.success() && text.contains("deployed"),
        "git push did not deploy:\n{text}"
    );
    Ok(())
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

fn report(name: &str, samples: &Samples, target: Option<Duration>) {
    let verdict = match target {
        Some(t) if samples.median() <= t => format!("  (target <= {}: met)", ms(t)),
        Some(t) => format!("  (target <= {}: NOT met)", ms(t)),
        None => String::new(),
    };
    println!(
        "{name:<44} median {:>10}  p99 {:>10}  ({}){verdict}",
        ms(samples.median()),
        ms(samples.percentile(99.0)),
        samples.summary()
    );
}

pub(crate) fn run() -> Result<()> {
    let sample = std::env::current_dir()?.join("crates/deis-builder/tests/fixtures/apps/python");
    ensure!(
        sample.join("app.py").is_file(),
        "run from the repository root: {} is missing",
        sample.display()
    );
    ensure!(
        std::fs::read_to_string(sample.join("app.py"))?.contains(ANSWER_LINE),
        "the sample app's answer line changed; update bench_e2e"
    );
    let dir = tempfile::tempdir()?;
    let (data, home, repo) = (
        dir.path().join("data"),
        dir.path().join("home"),
        dir.path().join("repo"),
    );
    std::fs::create_dir_all(&home)?;
    // DEIS_BENCH_APP_USERS=1: apps and builds as users of their own, whose
    // data directory must be reachable by them.
    let app_users = std::env::var_os("DEIS_BENCH_APP_USERS").is_some_and(|v| v == "1");
    let up = if app_users {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711))?;
        println!("app users: on");
        start_up_with(&data, &["--app-users"])?
    } else {
        start_up(&data)?
    };
    let port = up.router_port;

    deis(
        &home,
        &home,
        &[
            "register",
            &up.controller_url,
            "--username=bench",
            "--password=bench-pw-123",
            "--email=bench@example.com",
        ],
    )?;
    let key = home.join("id_ed25519");
    exec(
        Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(&key),
    )?;
    let public = key.with_extension("pub");
    deis(&home, &home, &["keys:add", &public.to_string_lossy()])?;
    copy_dir(&sample, &repo)?;
    exec(git(&repo, &home, &key).args(["init", "-q", "-b", "main"]))?;
    exec(git(&repo, &home, &key).args(["add", "-A"]))?;
    exec(git(&repo, &home, &key).args(["commit", "-q", "-m", "init"]))?;
    deis(&home, &repo, &["create", APP])?;

    // The first deploy: nothing cached yet.
    commit_marker(&repo, &home, &key, "r0")?;
    let started = Instant::now();
    push(&repo, &home, &key)?;
    let pushed = started.elapsed();
    let first = served(port, "r0", Duration::from_secs(30))? - started;
    println!(
        "first deploy: git push to the first 200 {} (git push returned after {})",
        ms(first),
        ms(pushed)
    );

    let mut redeploys = Samples::new();
    let mut push_only = Samples::new();
    for round in 1..=REDEPLOYS {
        let marker = format!("r{round}");
        commit_marker(&repo, &home, &key, &marker)?;
        let started = Instant::now();
        push(&repo, &home, &key)?;
        push_only.0.push(started.elapsed());
        let took = served(port, &marker, Duration::from_secs(60))? - started;
        redeploys.0.push(took);
        println!("re-deploy {round}: {}", ms(took));
    }

    let mut changes = Samples::new();
    for round in 1..=CONFIG_CHANGES {
        let value = format!("c{round}");
        let started = Instant::now();
        deis(
            &home,
            &home,
            &["config:set", &format!("GREETING={value}"), "-a", APP],
        )?;
        let took = served(port, &format!(" {value}\n"), Duration::from_secs(30))? - started;
        changes.0.push(took);
        println!("config change {round}: {}", ms(took));
    }

    println!();
    println!("{:<44} {}", "first deploy, git push to the first 200", ms(first));
    report(
        "re-deploy (build cache), push to first 200",
        &redeploys,
        Some(Duration::from_secs(5)),
    );
    report("re-deploy, git push alone", &push_only, None);
    report(
        "config:set to the new value served",
        &changes,
        Some(Duration::from_secs(1)),
    );
    drop(up);
    Ok(())
}
