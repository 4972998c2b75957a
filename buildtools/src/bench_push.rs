//! `buildtools/bench push`: the same 20 MB repository pushed (a) to the
//! builder, with a buildpack that does nothing, and (b) to OpenSSH's sshd
//! running `git-receive-pack` directly, side by side in one run.
//!
//! Needs `DEIS_WORKFLOW_BIN` (the `deis-workflow` binary, for the git hook)
//! and `SSHD_BIN` (OpenSSH's sshd); `buildtools/bench push` provides both.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use deis_builder::{Builder, BuilderConfig, ControllerClient, HookCommand, LocalExecutor, Objects};
use deis_proto::v2 as pb;
use deis_testkit::{TestPlatform, authed};

use crate::{Samples, exec, ms};

const ROUNDS: usize = 5;
const REPO_BYTES: usize = 20 * 1024 * 1024;

fn git(dir: &Path) -> Command {
    let mut command = Command::new("git");
    command
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "bench")
        .env("GIT_AUTHOR_EMAIL", "bench@example.com")
        .env("GIT_COMMITTER_NAME", "bench")
        .env("GIT_COMMITTER_EMAIL", "bench@example.com");
    command
}

/// A repository of ~20 MB of source-like text (base64 of random bytes) in
/// 200 files, plus a Procfile.
fn make_repo(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir.join("src"))?;
    let mut random = std::fs::File::open("/dev/urandom")?;
    let per_file = REPO_BYTES / 200;
    for i in 0..200 {
        let mut raw = vec![0u8; per_file * 3 / 4];
        std::io::Read::read_exact(&mut random, &mut raw)?;
        let text: String = raw
            .chunks(57)
            .map(|line| {
                let mut encoded = base64_line(line);
                encoded.push('\n');
                encoded
            })
            .collect();
        std::fs::write(dir.join(format!("src/module_{i:03}.txt")), text)?;
    }
    std::fs::write(dir.join("Procfile"), "web: sleep 1000\n")?;
    exec(git(dir).args(["init", "-q", "-b", "main"]))?;
    exec(git(dir).args(["add", "-A"]))?;
    exec(git(dir).args(["commit", "-q", "-m", "bench"]))?;
    Ok(())
}

fn base64_line(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len() * 4 / 3 + 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn ssh_command(key: &Path, port: u16) -> String {
    format!(
        "ssh -i {} -p {port} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o IdentitiesOnly=yes \
         -o LogLevel=ERROR -o BatchMode=yes",
        key.display()
    )
}

fn timed_push(repo: &Path, key: &Path, port: u16, url: &str) -> Result<Duration> {
    let start = Instant::now();
    exec(
        git(repo)
            .env("GIT_SSH_COMMAND", ssh_command(key, port))
            .args(["push", "-q", url, "main"]),
    )?;
    Ok(start.elapsed())
}

/// OpenSSH's sshd on a loopback port, letting `key` in.
struct Sshd {
    child: std::process::Child,
    port: u16,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_sshd(dir: &Path, public_key: &str) -> Result<Sshd> {
    let sshd = std::env::var("SSHD_BIN").unwrap_or_else(|_| "/usr/sbin/sshd".into());
    let host_key = dir.join("host_ed25519");
    exec(
        Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(&host_key),
    )?;
    std::fs::write(dir.join("authorized_keys"), public_key)?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let config = dir.join("sshd_config");
    std::fs::write(
        &config,
        format!(
            "ListenAddress 127.0.0.1\nPort {port}\nHostKey {}\nAuthorizedKeysFile {}\nUsePAM no\nStrictModes no\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n\
             PidFile {}\nLogLevel ERROR\n",
            host_key.display(),
            dir.join("authorized_keys").display(),
            dir.join("sshd.pid").display()
        ),
    )?;
    std::fs::create_dir_all("/run/sshd")?;
    let child = Command::new(sshd)
        .arg("-D")
        .arg("-f")
        .arg(&config)
        .arg("-E")
        .arg(dir.join("sshd.log"))
        .stdin(Stdio::null())
        .spawn()
        .context("starting sshd")?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        ensure!(
            Instant::now() < deadline,
            "sshd did not start; see {}",
            dir.join("sshd.log").display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(Sshd { child, port })
}

pub(crate) async fn run() -> Result<()> {
    let hook_program =
        PathBuf::from(std::env::var("DEIS_WORKFLOW_BIN").context("DEIS_WORKFLOW_BIN is not set")?);
    let dir = tempfile::tempdir()?;
    let repo = dir.path().join("repo");
    make_repo(&repo)?;
    let size = exec(Command::new("du").args(["-sh", ".git"]).current_dir(&repo))?;
    println!(
        "repository: 200 files, {} MB of text; packed .git {}",
        REPO_BYTES / (1024 * 1024),
        size.split_whitespace().next().unwrap_or("?")
    );

    let key = dir.path().join("id_ed25519");
    exec(
        Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(&key),
    )?;
    let public = std::fs::read_to_string(key.with_extension("pub"))?;

    // (a) The builder, with a buildpack that does nothing.
    let platform = TestPlatform::start().await;
    let token = platform.register("bench").await;
    let mut c = platform.clients().await;
    c.keys
        .add_key(authed(
            &token,
            pb::AddKeyRequest {
                id: "bench".into(),
                public: public.clone(),
            },
        ))
        .await?;
    let buildpack = dir.path().join("noop-buildpack");
    for (name, body) in [
        ("detect", "#!/bin/sh\necho Noop\n"),
        ("compile", "#!/bin/sh\nexit 0\n"),
        (
            "release",
            "#!/bin/sh\nprintf -- '---\\ndefault_process_types: {}\\n'\n",
        ),
    ] {
        let path = buildpack.join("bin").join(name);
        std::fs::create_dir_all(path.parent().unwrap_or(&buildpack))?;
        std::fs::write(&path, body)?;
        exec(Command::new("chmod").arg("+x").arg(&path))?;
    }
    exec(git(&buildpack).args(["init", "-q", "-b", "main"]))?;
    exec(git(&buildpack).args(["add", "-A"]))?;
    exec(git(&buildpack).args(["commit", "-q", "-m", "noop"]))?;

    let objects = Objects::local(&dir.path().join("objects"))?;
    let packs = dir.path().join("buildpacks");
    LocalExecutor::install_builtin_buildpacks(&packs)?;
    let hook = HookCommand {
        program: hook_program,
        args: vec!["hook".into(), "pre-receive".into()],
    };
    let config = BuilderConfig::new("127.0.0.1:0".parse()?, dir.path().join("builder"), hook);
    let controller = ControllerClient::new(&platform.url, &platform.secret)?;
    let builder = Builder::start(config, controller, objects, Arc::new(LocalExecutor::new(packs))).await?;
    let builder_port = builder.ssh_addr.port();

    // (b) OpenSSH's sshd running git-receive-pack directly.
    let sshd_dir = dir.path().join("sshd");
    std::fs::create_dir_all(&sshd_dir)?;
    let sshd = start_sshd(&sshd_dir, &public)?;

    let mut ours = Samples::new();
    let mut theirs = Samples::new();
    for round in 0..=ROUNDS {
        let app = format!("bench-{round}");
        c.apps
            .create_app(authed(&token, pb::CreateAppRequest { id: app.clone() }))
            .await?;
        let value = prost_types::Value {
            kind: Some(prost_types::value::Kind::StringValue(format!(
                "file://{}",
                buildpack.display()
            ))),
        };
        let req = pb::SetConfigRequest {
            app: app.clone(),
            values: [("BUILDPACK_URL".to_string(), value)].into(),
            ..Default::default()
        };
        c.config.set_config(authed(&token, req)).await?;
        let bare = sshd_dir.join(format!("{app}.git"));
        exec(Command::new("git").args(["init", "-q", "--bare"]).arg(&bare))?;

        let (repo_a, key_a) = (repo.clone(), key.clone());
        let url_a = format!("ssh://git@127.0.0.1:{builder_port}/{app}.git");
        let a =
            tokio::task::spawn_blocking(move || timed_push(&repo_a, &key_a, builder_port, &url_a)).await??;
        let (repo_b, key_b, port) = (repo.clone(), key.clone(), sshd.port);
        let url_b = format!("ssh://root@127.0.0.1:{port}{}", bare.display());
        let b = tokio::task::spawn_blocking(move || timed_push(&repo_b, &key_b, port, &url_b)).await??;
        // Round 0 warms caches (page cache, ssh, pip) and is not counted.
        if round > 0 {
            ours.0.push(a);
            theirs.0.push(b);
            println!("round {round}: builder {}  sshd+git {}", ms(a), ms(b));
        }
    }
    let ratio = ours.median().as_secs_f64() / theirs.median().as_secs_f64();
    println!(
        "builder (push + build + release)  median {}  ({})",
        ms(ours.median()),
        ours.summary()
    );
    println!(
        "sshd + git-receive-pack           median {}  ({})",
        ms(theirs.median()),
        theirs.summary()
    );
    println!("ratio builder / sshd: {ratio:.2}x (target <= 1.2x)");
    drop(builder);
    Ok(())
}
