//! The real `deis-workflow up` binary on free ports with its own data
//! directory, and the real `deis` CLI.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The `deis` binary next to `deis-workflow`, built on demand.
pub fn deis_binary() -> PathBuf {
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

/// A running `deis-workflow up`.
pub struct UpServer {
    pub child: Child,
    /// The controller URL it printed.
    pub url: String,
    /// The builder's SSH port it printed.
    pub builder_port: u16,
    /// The routing feed's address it printed.
    pub xds_addr: String,
    /// The port apps answer on (`App URLs`).
    pub http_port: u16,
    /// The logger's Fluentd Forward listener.
    pub forward_addr: String,
    /// The logger's gRPC API.
    pub logger_addr: String,
    /// Where Prometheus scrapes (`host:port`; the path is `/metrics`).
    pub metrics_addr: String,
    /// The container registry (`host:port`).
    pub registry_addr: String,
    /// The REST API's own address (`http://host:port`), with `--rest-addr`.
    pub rest_url: Option<String>,
}

/// A loopback port that was free a moment ago (for services whose port
/// must be known before they start, sometimes seconds later).
///
/// It is drawn at random from below Linux's ephemeral range (32768 and
/// up): a port the kernel hands out for `bind(0)` can be handed out again
/// as the source port of any outgoing connection in the meantime, which
/// once made Envoy's HTTPS listener fail with "Address already in use".
pub fn free_port() -> u16 {
    use std::hash::{BuildHasher, RandomState};
    let seed = RandomState::new();
    for attempt in 0u32..1000 {
        let port = 20_000 + (seed.hash_one(attempt) % 12_000) as u16;
        let free_on = |addr: &str| std::net::TcpListener::bind((addr, port)).is_ok();
        if free_on("127.0.0.1") && free_on("0.0.0.0") {
            return port;
        }
    }
    panic!("no free port between 20000 and 32000 after 1000 tries");
}

impl UpServer {
    /// Starts `up` on free ports with `data_dir`, optionally on PostgreSQL,
    /// with `extra` arguments; waits for its ready banner.
    pub fn start(data_dir: &Path, database_url: Option<&str>, extra: &[&str]) -> UpServer {
        Self::start_with_env(data_dir, database_url, extra, &[])
    }

    /// `start`, with `env` set for the server process.
    pub fn start_with_env(
        data_dir: &Path,
        database_url: Option<&str>,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> UpServer {
        let mut command = Command::new(env!("CARGO_BIN_EXE_deis-workflow"));
        command.envs(env.iter().copied());
        command
            .args([
                "up",
                "--controller-addr",
                "127.0.0.1:0",
                "--builder-addr",
                "127.0.0.1:0",
            ])
            .args(if extra.contains(&"--xds-addr") {
                &[][..]
            } else {
                &["--xds-addr", "127.0.0.1:0"][..]
            })
            .args(if extra.contains(&"--metrics-addr") {
                &[][..]
            } else {
                &["--metrics-addr", "127.0.0.1:0"][..]
            })
            .args(if extra.contains(&"--registry-addr") {
                &[][..]
            } else {
                &["--registry-addr", "127.0.0.1:0"][..]
            })
            .args(if extra.contains(&"--logger-addr") {
                &[][..]
            } else {
                &["--logger-addr", "127.0.0.1:0", "--forward-addr", "127.0.0.1:0"][..]
            })
            .args(if extra.contains(&"--router-port") {
                Vec::new()
            } else {
                let (http, https) = (free_port().to_string(), free_port().to_string());
                vec![
                    "--router-port".to_owned(),
                    http,
                    "--router-https-port".to_owned(),
                    https,
                ]
            })
            .args(["--registration-mode", "enabled"])
            .args(extra)
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
        let (mut url, mut builder_port, mut xds_addr, mut http_port) = (None, None, None, None);
        let mut logs: Option<(String, String)> = None;
        let (mut metrics_addr, mut registry_addr, mut rest_url) = (None, None, None);
        let mut banner = String::new();
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap();
            banner.push_str(&line);
            banner.push('\n');
            if let Some(rest) = line.trim().strip_prefix("Controller") {
                url = Some(rest.trim().to_owned());
            }
            if let Some(rest) = line.trim().strip_prefix("Git remote   ssh://git@") {
                builder_port = rest
                    .split(':')
                    .nth(1)
                    .and_then(|p| p.split('/').next())
                    .and_then(|p| p.parse().ok());
            }
            if let Some(rest) = line.trim().strip_prefix("App URLs     http://<app>.localhost:") {
                http_port = rest.trim().parse().ok();
            }
            if let Some(rest) = line.trim().strip_prefix("Routing feed") {
                xds_addr = rest.split_whitespace().next().map(str::to_owned);
            }
            if let Some(rest) = line.trim().strip_prefix("Logs         Forward on ") {
                logs = rest
                    .split_once(", logger API ")
                    .map(|(forward, api)| (forward.trim().to_owned(), api.trim().to_owned()));
            }
            if let Some(rest) = line.trim().strip_prefix("Metrics      http://") {
                metrics_addr = rest.strip_suffix("/metrics").map(str::to_owned);
            }
            if let Some(rest) = line.trim().strip_prefix("REST API") {
                rest_url = rest
                    .split_whitespace()
                    .next()
                    .map(|u| u.trim_end_matches("/v2/").to_owned());
            }
            if let Some(rest) = line.trim().strip_prefix("Registry") {
                registry_addr = rest.split_whitespace().next().map(str::to_owned);
            }
            if line.contains("Ctrl-C") || Instant::now() > deadline {
                break;
            }
        }
        let url = url.unwrap_or_else(|| panic!("no controller URL in:\n{banner}"));
        let builder_port = builder_port.unwrap_or_else(|| panic!("no git remote in:\n{banner}"));
        let xds_addr = xds_addr.unwrap_or_else(|| panic!("no routing feed in:\n{banner}"));
        let http_port = http_port.unwrap_or_else(|| panic!("no app URLs in:\n{banner}"));
        let (forward_addr, logger_addr) = logs.unwrap_or_else(|| panic!("no logger addresses in:\n{banner}"));
        let metrics_addr = metrics_addr.unwrap_or_else(|| panic!("no metrics address in:\n{banner}"));
        let registry_addr = registry_addr.unwrap_or_else(|| panic!("no registry address in:\n{banner}"));
        for expected in ["App URLs     http://<app>.localhost:", "deis register"] {
            assert!(banner.contains(expected), "banner lacks {expected:?}:\n{banner}");
        }
        UpServer {
            child,
            url,
            builder_port,
            xds_addr,
            http_port,
            forward_addr,
            logger_addr,
            metrics_addr,
            registry_addr,
            rest_url,
        }
    }

    /// Ctrl-C, and wait for a clean exit.
    pub fn interrupt(mut self) {
        let status = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "deis-workflow exited with {status}");
                return;
            }
            assert!(Instant::now() < deadline, "deis-workflow did not stop on Ctrl-C");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL: the platform dies without cleaning up anything.
    pub fn sigkill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for UpServer {
    fn drop(&mut self) {
        // A failing test gets here mid-way: stop the platform as Ctrl-C
        // would, so it stops the podman containers it started (a SIGKILL
        // would leave them running on the machine), and kill it only if
        // that takes too long.
        if std::thread::panicking() && matches!(self.child.try_wait(), Ok(None)) {
            let _ = Command::new("kill")
                .args(["-INT", &self.child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if !matches!(self.child.try_wait(), Ok(None)) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the CLI with `home` as HOME and working directory.
pub fn deis(home: &Path, args: &[&str]) -> Output {
    deis_in(home, home, args)
}

/// Runs the CLI with `home` as HOME in `dir`.
pub fn deis_in(home: &Path, dir: &Path, args: &[&str]) -> Output {
    Command::new(deis_binary())
        .args(args)
        .env("HOME", home)
        .env("NO_COLOR", "1")
        .env_remove("DEIS_PROFILE")
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// Runs the CLI on a terminal of its own, as a person at a shell would:
/// util-linux `script` gives it a pseudo-terminal and types `typed` into
/// it. Returns the CLI's exit code and what the terminal showed.
///
/// The terminal echoes `typed` back before the CLI takes it over, so check
/// for output that the typed text itself does not contain.
pub fn deis_on_terminal(home: &Path, args: &[&str], typed: &str) -> (Option<i32>, String) {
    let quote = |word: &str| format!("'{}'", word.replace('\'', r"'\''"));
    let command_line: Vec<String> = std::iter::once(quote(&deis_binary().to_string_lossy()))
        .chain(args.iter().map(|arg| quote(arg)))
        .collect();
    let mut script = Command::new("timeout")
        .args(["120", "script", "--quiet", "--return", "--command"])
        .arg(command_line.join(" "))
        .arg("/dev/null")
        .env("HOME", home)
        .env("NO_COLOR", "1")
        .env("TERM", "xterm")
        .env_remove("DEIS_PROFILE")
        .current_dir(home)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("util-linux script (Debian's bsdutils) runs the CLI on a terminal");
    if let Some(mut stdin) = script.stdin.take() {
        std::io::Write::write_all(&mut stdin, typed.as_bytes()).unwrap();
    }
    let out = script.wait_with_output().unwrap();
    let shown = String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr);
    (out.status.code(), shown.into_owned())
}

/// Runs the CLI and requires success; returns stdout.
pub fn ok(home: &Path, args: &[&str]) -> String {
    let out = deis(home, args);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "deis {args:?}: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Processes of an app on this machine, found by their environment:
/// `(pid, dyno, port)`.
pub fn app_processes(app: &str) -> Vec<(i32, String, u16)> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        let vars: Vec<&[u8]> = environ.split(|b| *b == 0).collect();
        let get = |key: &str| {
            vars.iter()
                .find_map(|v| v.strip_prefix(format!("{key}=").as_bytes()))
                .map(|v| String::from_utf8_lossy(v).into_owned())
        };
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        let zombie = stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'));
        // The app's own process: what bash exec'd into (python3, node...).
        let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
        if zombie || comm.trim() == "bash" {
            continue;
        }
        if get("DEIS_APP").as_deref() == Some(app)
            && let (Some(dyno), Some(port)) = (get("DYNO"), get("PORT").and_then(|p| p.parse().ok()))
        {
            found.push((pid, dyno, port));
        }
    }
    found.sort();
    found
}

/// GET `path` on 127.0.0.1:`port`: status and body.
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    http_get_host(port, "x", path)
}

/// GET `path` on 127.0.0.1:`port` for `host` (through a router).
pub fn http_get_host(port: u16, host: &str, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split_whitespace().nth(1)?.parse().ok()?;
    Some((
        status,
        response
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default(),
    ))
}

/// Runs git in `dir` as the user whose HOME is `home`, over ssh with `key`.
pub fn git(dir: &Path, home: &Path, key: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("HOME", home)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "alice")
        .env("GIT_AUTHOR_EMAIL", "alice@example.com")
        .env("GIT_COMMITTER_NAME", "alice")
        .env("GIT_COMMITTER_EMAIL", "alice@example.com")
        .env(
            "GIT_SSH_COMMAND",
            format!(
                "ssh -i {} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o IdentitiesOnly=yes -o LogLevel=ERROR",
                key.display()
            ),
        )
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Registers `alice` on `server` from `home` and adds a new SSH key of hers;
/// returns the key's path.
pub fn register_with_key(server: &UpServer, home: &Path) -> PathBuf {
    ok(
        home,
        &[
            "register",
            &server.url,
            "--username=alice",
            "--password=s3cret-pw",
            "--email=a@example.com",
        ],
    );
    let key = home.join("id_ed25519");
    assert!(
        Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(&key)
            .status()
            .unwrap()
            .success()
    );
    ok(home, &["keys:add", key.with_extension("pub").to_str().unwrap()]);
    key
}

/// Registers `alice` (with an SSH key) on `server` from `home`, creates
/// `app` from the sample app `sample`, pushes it and waits for "Done";
/// returns the app's repository.
pub fn register_and_push(server: &UpServer, home: &Path, sample: &str, app: &str) -> tempfile::TempDir {
    register_and_push_output(server, home, sample, app).0
}

/// [`register_and_push`], also returning what `git push` printed.
pub fn register_and_push_output(
    server: &UpServer,
    home: &Path,
    sample: &str,
    app: &str,
) -> (tempfile::TempDir, String) {
    let key = register_with_key(server, home);
    push_sample(home, &key, sample, app)
}

/// Creates `app` from the sample app `sample` and pushes it with `key`,
/// waiting for "Done"; returns the app's repository and what `git push`
/// printed.
pub fn push_sample(home: &Path, key: &Path, sample: &str, app: &str) -> (tempfile::TempDir, String) {
    let repo = tempfile::tempdir().unwrap();
    super::copy_dir(&super::sample_app(sample), repo.path());
    let output = push_dir(home, key, repo.path(), app);
    (repo, output)
}

/// Commits everything in `dir`, creates `app` there and pushes it with
/// `key`, waiting for "Done"; returns what `git push` printed.
pub fn push_dir(home: &Path, key: &Path, dir: &Path, app: &str) -> String {
    for args in [
        &["init", "-q", "-b", "main"][..],
        &["add", "-A"],
        &["commit", "-q", "-m", "init"],
    ] {
        assert!(git(dir, home, key, args).0);
    }
    let out = deis_in(home, dir, &["create", app]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (pushed, output) = git(dir, home, key, &["push", "deis", "main"]);
    assert!(
        pushed && output.contains(&format!("Done, {app}:v2 deployed")),
        "{output}"
    );
    output
}

/// Whether the routing feed reports itself healthy (gRPC health of the ADS
/// service: not serving while any client rejects its config).
pub fn feed_is_healthy(xds_addr: &str) -> bool {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_client::HealthClient;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let channel = tonic::transport::Channel::from_shared(format!("http://{xds_addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut client = HealthClient::new(channel);
        let response = client
            .check(HealthCheckRequest {
                service: "envoy.service.discovery.v3.AggregatedDiscoveryService".into(),
            })
            .await
            .unwrap();
        response.into_inner().status == tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    })
}

/// The first line an SSH server sends on 127.0.0.1:`port` (empty if none).
pub fn ssh_banner(port: u16) -> String {
    use std::io::BufRead;
    let Ok(stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return String::new();
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut line = String::new();
    let _ = BufReader::new(stream).read_line(&mut line);
    line
}
