//! A platform for end-to-end tests of `git push`: a real controller (with the
//! recording scheduler) and a real builder on loopback ports, driven by the
//! system's `git` and OpenSSH client with keys made by `ssh-keygen`.

#![allow(dead_code, unreachable_pub)]

pub mod rest;
pub mod up;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use deis_builder::{Builder, BuilderConfig, ControllerClient, HookCommand, LocalExecutor, Objects};
use deis_proto::v2 as pb;
use deis_testkit::{Clients, TestPlatform, authed};

/// The repository's sample apps.
pub fn sample_app(name: &str) -> PathBuf {
    PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("tests run under cargo"))
        .join("crates/deis-builder/tests/fixtures/apps")
        .join(name)
}

pub struct PushPlatform {
    pub platform: TestPlatform,
    pub builder: Builder,
    pub objects: Objects,
    pub dir: tempfile::TempDir,
    pub clients: Clients,
}

impl PushPlatform {
    pub async fn start() -> PushPlatform {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tune: impl FnOnce(&mut BuilderConfig)) -> PushPlatform {
        let platform = TestPlatform::start().await;
        let dir = tempfile::tempdir().unwrap();
        let objects = Objects::local(&dir.path().join("objects")).unwrap();
        let buildpacks = dir.path().join("buildpacks");
        LocalExecutor::install_builtin_buildpacks(&buildpacks).unwrap();
        let hook = HookCommand {
            program: env!("CARGO_BIN_EXE_deis-workflow").into(),
            args: vec!["hook".into(), "pre-receive".into()],
        };
        let mut config = BuilderConfig::new("127.0.0.1:0".parse().unwrap(), dir.path().join("builder"), hook);
        config.build_timeout = std::time::Duration::from_secs(300);
        tune(&mut config);
        let controller = ControllerClient::new(&platform.url, &platform.secret).unwrap();
        let builder = Builder::start(
            config,
            controller,
            objects.clone(),
            Arc::new(LocalExecutor::new(buildpacks)),
        )
        .await
        .unwrap();
        let clients = platform.clients().await;
        PushPlatform {
            platform,
            builder,
            objects,
            dir,
            clients,
        }
    }

    /// Registers a user with a fresh Ed25519 key; returns their session.
    pub async fn user(&self, name: &str) -> Pusher {
        let token = self.platform.register(name).await;
        let home = tempfile::tempdir().unwrap();
        let key = home.path().join("id_ed25519");
        let out = Command::new("ssh-keygen")
            .args([
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                &format!("{name}@test"),
                "-f",
            ])
            .arg(&key)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "ssh-keygen: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
        let mut keys = self.clients.keys.clone();
        keys.add_key(authed(
            &token,
            pb::AddKeyRequest {
                id: format!("{name}-key"),
                public,
            },
        ))
        .await
        .unwrap();
        Pusher {
            name: name.into(),
            token,
            home,
            key,
            port: self.builder.ssh_addr.port(),
        }
    }

    /// A user whose key the platform does not know.
    pub fn stranger_key(&self) -> Pusher {
        let home = tempfile::tempdir().unwrap();
        let key = home.path().join("id_ed25519");
        let out = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(&key)
            .output()
            .unwrap();
        assert!(out.status.success());
        Pusher {
            name: "nobody".into(),
            token: String::new(),
            home,
            key,
            port: self.builder.ssh_addr.port(),
        }
    }

    pub async fn create_app(&self, owner: &Pusher, app: &str) {
        let mut apps = self.clients.apps.clone();
        apps.create_app(authed(&owner.token, pb::CreateAppRequest { id: app.into() }))
            .await
            .unwrap();
    }

    pub async fn releases(&self, owner: &Pusher, app: &str) -> Vec<pb::Release> {
        let mut releases = self.clients.releases.clone();
        releases
            .list_releases(authed(
                &owner.token,
                pb::ListReleasesRequest {
                    app: app.into(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .results
    }

    pub async fn builds(&self, owner: &Pusher, app: &str) -> Vec<pb::Build> {
        let mut builds = self.clients.builds.clone();
        builds
            .list_builds(authed(
                &owner.token,
                pb::ListBuildsRequest {
                    app: app.into(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .results
    }

    pub async fn set_config(&self, owner: &Pusher, app: &str, key: &str, value: &str) {
        let mut config = self.clients.config.clone();
        let value = prost_types::Value {
            kind: Some(prost_types::value::Kind::StringValue(value.into())),
        };
        let req = pb::SetConfigRequest {
            app: app.into(),
            values: [(key.to_string(), value)].into(),
            ..Default::default()
        };
        config.set_config(authed(&owner.token, req)).await.unwrap();
    }
}

/// Someone at a terminal with an SSH key.
pub struct Pusher {
    pub name: String,
    pub token: String,
    pub home: tempfile::TempDir,
    pub key: PathBuf,
    pub port: u16,
}

impl Pusher {
    fn ssh_command(&self) -> String {
        format!(
            "ssh -i {} -p {} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o IdentitiesOnly=yes \
             -o LogLevel=ERROR -o BatchMode=yes",
            self.key.display(),
            self.port
        )
    }

    pub fn remote(&self, app: &str) -> String {
        format!("ssh://git@127.0.0.1:{}/{app}.git", self.port)
    }

    /// Runs git in `dir` with this user's key.
    pub fn git(&self, dir: &Path, args: &[&str]) -> Output {
        Command::new("git")
            .args(args)
            .current_dir(dir)
            .env("HOME", self.home.path())
            .env("GIT_SSH_COMMAND", self.ssh_command())
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_AUTHOR_NAME", &self.name)
            .env("GIT_AUTHOR_EMAIL", format!("{}@example.com", self.name))
            .env("GIT_COMMITTER_NAME", &self.name)
            .env("GIT_COMMITTER_EMAIL", format!("{}@example.com", self.name))
            .output()
            .unwrap()
    }

    /// Runs an arbitrary command over SSH against the builder.
    pub fn ssh(&self, command: &str) -> Output {
        let mut args: Vec<String> = self.ssh_command().split_whitespace().map(String::from).collect();
        let program = args.remove(0);
        Command::new(program)
            .args(args)
            .arg("git@127.0.0.1")
            .arg(command)
            .env("HOME", self.home.path())
            .output()
            .unwrap()
    }

    /// A git repository with `source`'s files committed on `main`.
    pub fn repo_from(&self, source: &Path) -> tempfile::TempDir {
        let repo = tempfile::tempdir().unwrap();
        copy_dir(source, repo.path());
        let ok = |out: Output| assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        ok(self.git(repo.path(), &["init", "-q", "-b", "main"]));
        ok(self.git(repo.path(), &["add", "-A"]));
        ok(self.git(repo.path(), &["commit", "-q", "-m", "initial"]));
        repo
    }

    /// `git push <remote of app> main`; returns (success, combined output).
    pub fn push(&self, repo: &Path, app: &str, refspec: &str) -> (bool, String) {
        let out = self.git(repo, &["push", &self.remote(app), refspec]);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Writes an executable file.
pub fn write_executable(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}

/// A buildpack in its own git repository (for BUILDPACK_URL): `compile`
/// runs `compile_body`; it always detects and declares `web: <web>`.
pub fn buildpack_repo(compile_body: &str, web: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write_executable(&dir.path().join("bin/detect"), "#!/bin/sh\necho Custom\n");
    write_executable(
        &dir.path().join("bin/compile"),
        &format!("#!/bin/sh\nset -e\n{compile_body}\n"),
    );
    write_executable(
        &dir.path().join("bin/release"),
        &format!("#!/bin/sh\nprintf -- '---\\ndefault_process_types:\\n  web: {web}\\n'\n"),
    );
    let git = |args: &[&str]| {
        let out = Command::new("git")
            .args(args)
            .current_dir(dir.path())
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_AUTHOR_NAME", "bp")
            .env("GIT_AUTHOR_EMAIL", "bp@example.com")
            .env("GIT_COMMITTER_NAME", "bp")
            .env("GIT_COMMITTER_EMAIL", "bp@example.com")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    git(&["init", "-q", "-b", "main"]);
    git(&["add", "-A"]);
    git(&["commit", "-q", "-m", "buildpack"]);
    dir
}
