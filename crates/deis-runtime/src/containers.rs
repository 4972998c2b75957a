//! Image releases (Dockerfile builds and `deis pull`) run as podman
//! containers: pulled from the platform's registry with the runtime's own
//! login, started in the foreground so the supervisor sees their output and
//! exit like any process, published on a loopback port of this machine.
//!
//! podman runs with `runc` and explicit ulimits, which work where `crun`'s
//! rlimit and cgroup handling does not, and with vfs storage in the
//! runtime's state directory, which needs no kernel overlay support.

use std::path::PathBuf;

use tokio::process::Command;

use crate::limits::{cpu_millis, memory_bytes};

/// The platform's registry, as the runtime pulls from it.
#[derive(Clone)]
pub struct ContainerSettings {
    /// `host:port` of the registry.
    pub registry: String,
    /// The runtime's login.
    pub username: String,
    /// Its password.
    pub password: String,
    /// The registry speaks plain HTTP (it listens on loopback).
    pub insecure: bool,
}

impl std::fmt::Debug for ContainerSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContainerSettings")
            .field("registry", &self.registry)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// An image pulled to this machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PulledImage {
    /// The full reference (`host:port/app:tag`).
    pub(crate) reference: String,
    /// The first port the image exposes (`EXPOSE`), if any.
    pub(crate) exposed_port: Option<u16>,
}

/// What a container runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ContainerCommand {
    /// The image's own `ENTRYPOINT` and `CMD`.
    Image,
    /// The image's `ENTRYPOINT` with these arguments (the `cmd` type of a
    /// Procfile, split on whitespace as Deis does).
    Args(Vec<String>),
    /// `/bin/sh -c <command>` (any other process type).
    Shell(String),
}

/// What a container's standard streams are attached to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Attach {
    /// Output only (app processes).
    Output,
    /// Output and stdin (`deis run`).
    Stdin,
    /// A terminal (`deis run -t`).
    Terminal,
}

/// One `podman run`.
pub(crate) struct RunRequest<'a> {
    pub(crate) name: &'a str,
    pub(crate) image: &'a PulledImage,
    /// Variables passed by name (their values are in podman's environment).
    pub(crate) env_names: &'a [String],
    /// `(port on this machine, port inside)`.
    pub(crate) ports: Option<(u16, u16)>,
    pub(crate) memory: Option<&'a str>,
    pub(crate) cpu: Option<&'a str>,
    pub(crate) command: &'a ContainerCommand,
    pub(crate) attach: Attach,
}

/// podman on this machine.
#[derive(Clone, Debug)]
pub(crate) struct Podman {
    program: PathBuf,
    storage: PathBuf,
    settings: ContainerSettings,
    /// catatonit is installed: containers get a small init as PID 1, which
    /// forwards SIGTERM to the app (a PID 1 app would ignore it and be
    /// stopped only by SIGKILL at the end of its grace period).
    init: bool,
}

/// The name of a process type's container.
pub(crate) fn container_name(process: &str, version: i32) -> String {
    format!("deis-{process}-v{version}-{}", uuid_suffix())
}

fn uuid_suffix() -> String {
    use rand::Rng as _;
    let mut rng = rand::rng();
    (0..8)
        .map(|_| char::from(b"abcdefghijklmnopqrstuvwxyz0123456789"[rng.random_range(0..36)]))
        .collect()
}

impl Podman {
    /// podman, if it is installed, with its storage under `storage`.
    pub(crate) fn find(storage: PathBuf, settings: ContainerSettings) -> Option<Podman> {
        Some(Podman {
            program: deis_images::find_program("podman")?,
            storage,
            settings,
            init: std::path::Path::new("/usr/libexec/podman/catatonit").exists()
                || deis_images::find_program("catatonit").is_some(),
        })
    }

    /// The global flags every podman command starts with.
    pub(crate) fn global_args(&self) -> Vec<String> {
        vec![
            self.program.display().to_string(),
            "--root".into(),
            self.storage.join("root").display().to_string(),
            "--runroot".into(),
            deis_images::run_root(&self.storage).display().to_string(),
            "--storage-driver".into(),
            "vfs".into(),
        ]
    }

    fn command(&self) -> Command {
        let mut args = self.global_args();
        let program = args.remove(0);
        let mut command = Command::new(program);
        command
            .args(args)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        command
    }

    /// A scratch directory podman processes run in.
    pub(crate) fn work_dir(&self) -> PathBuf {
        self.storage.join("work")
    }

    /// Pulls `<registry>/<image>` (a no-op when it is already here) and
    /// reads what it exposes.
    pub(crate) async fn pull(&self, image: &str) -> Result<PulledImage, String> {
        let reference = format!("{}/{image}", self.settings.registry);
        tokio::fs::create_dir_all(self.work_dir())
            .await
            .map_err(|e| format!("cannot create {}: {e}", self.work_dir().display()))?;
        let auth = self.write_auth_file().await?;
        let pulled = self
            .command()
            .arg("pull")
            .arg("--quiet")
            .arg("--authfile")
            .arg(&auth)
            .arg(format!("--tls-verify={}", !self.settings.insecure))
            .arg(&reference)
            .output()
            .await
            .map_err(|e| format!("cannot run podman: {e}"))?;
        let _ = tokio::fs::remove_file(&auth).await;
        if !pulled.status.success() {
            return Err(format!(
                "podman could not pull {reference}: {}",
                String::from_utf8_lossy(&pulled.stderr).trim()
            ));
        }
        let inspected = self
            .command()
            .args(["image", "inspect", "--format", "{{json .Config.ExposedPorts}}"])
            .arg(&reference)
            .output()
            .await
            .map_err(|e| format!("cannot run podman: {e}"))?;
        if !inspected.status.success() {
            return Err(format!(
                "podman could not inspect {reference}: {}",
                String::from_utf8_lossy(&inspected.stderr).trim()
            ));
        }
        Ok(PulledImage {
            reference,
            exposed_port: first_exposed_port(&String::from_utf8_lossy(&inspected.stdout)),
        })
    }

    /// The login as a containers-auth.json (never on a command line).
    async fn write_auth_file(&self) -> Result<PathBuf, String> {
        let path = self.work_dir().join(format!("auth-{}.json", uuid_suffix()));
        let text = deis_images::registry_auth_json(
            &self.settings.registry,
            &self.settings.username,
            &self.settings.password,
        );
        deis_images::write_private_file(&path, &text)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        Ok(path)
    }

    /// The arguments of `podman run` (the program first) for one process.
    /// The environment's values reach the container through podman's own
    /// environment (`--env NAME`), never its command line.
    pub(crate) fn run_args(&self, run: &RunRequest<'_>) -> Vec<String> {
        let mut args = self.global_args();
        args.extend(
            [
                "run",
                "--rm",
                "--replace",
                "--name",
                run.name,
                "--runtime",
                "runc",
                "--log-driver",
                "none",
                "--ulimit",
                "nofile=1024:1024",
                "--ulimit",
                "nproc=4096:4096",
                "--label",
                "io.deis.workflow=1",
            ]
            .map(String::from),
        );
        match run.attach {
            Attach::Output => {}
            Attach::Stdin => args.push("--interactive".into()),
            Attach::Terminal => args.extend(["--interactive".into(), "--tty".into()]),
        }
        if self.init {
            args.push("--init".into());
        }
        if let Some((host, container)) = run.ports {
            args.push("--publish".into());
            args.push(format!("127.0.0.1:{host}:{container}"));
        }
        if let Some(bytes) = run.memory.and_then(memory_bytes) {
            args.push("--memory".into());
            args.push(bytes.to_string());
        }
        if let Some(millis) = run.cpu.and_then(cpu_millis) {
            args.push("--cpus".into());
            args.push(format!("{:.3}", millis as f64 / 1000.0));
        }
        for name in run.env_names {
            args.push("--env".into());
            args.push(name.clone());
        }
        let reference = run.image.reference.clone();
        match run.command {
            ContainerCommand::Image => args.push(reference),
            ContainerCommand::Args(rest) => {
                args.push(reference);
                args.extend(rest.iter().cloned());
            }
            ContainerCommand::Shell(line) => {
                args.push("--entrypoint".into());
                args.push("[\"/bin/sh\",\"-c\"]".into());
                args.push(reference);
                args.push(line.clone());
            }
        }
        args
    }

    /// `podman exec` arguments for an exec probe in a running container.
    pub(crate) fn exec_args(&self, name: &str, command: &[String]) -> Vec<String> {
        let mut args = self.global_args();
        args.push("exec".into());
        args.push(name.into());
        args.extend(command.iter().cloned());
        args
    }

    /// Stops a container: SIGTERM to its main process, SIGKILL after
    /// `grace`, then removes it.
    pub(crate) async fn stop(&self, name: &str, grace: std::time::Duration) {
        let _ = self
            .command()
            .args(["stop", "--time"])
            .arg(grace.as_secs().max(1).to_string())
            .arg(name)
            .output()
            .await;
        self.remove(name).await;
    }

    /// Removes a container, running or not.
    pub(crate) async fn remove(&self, name: &str) {
        let _ = self
            .command()
            .args(["rm", "--force", "--time", "0"])
            .arg(name)
            .output()
            .await;
    }

    /// Removes every container a previous run of the runtime left behind.
    pub(crate) async fn remove_all(&self) {
        let _ = self
            .command()
            .args([
                "rm",
                "--force",
                "--time",
                "0",
                "--filter",
                "label=io.deis.workflow=1",
            ])
            .output()
            .await;
    }
}

/// The first port of podman's `{"8000/tcp":{}}`.
fn first_exposed_port(json: &str) -> Option<u16> {
    let ports: serde_json::Map<String, serde_json::Value> = serde_json::from_str(json.trim()).ok()?;
    let mut numbers: Vec<u16> = ports
        .keys()
        .filter_map(|key| key.split('/').next()?.parse().ok())
        .collect();
    numbers.sort_unstable();
    numbers.first().copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn podman() -> Podman {
        Podman {
            program: "/usr/bin/podman".into(),
            storage: "/data/containers".into(),
            settings: ContainerSettings {
                registry: "127.0.0.1:5000".into(),
                username: "deis".into(),
                password: "pw".into(),
                insecure: true,
            },
            init: true,
        }
    }

    #[test]
    fn exposed_ports() {
        assert_eq!(first_exposed_port("{\"8000/tcp\":{}}\n"), Some(8000));
        assert_eq!(first_exposed_port("{\"9000/tcp\":{},\"80/tcp\":{}}"), Some(80));
        assert_eq!(first_exposed_port("null"), None);
        assert_eq!(first_exposed_port("{}"), None);
    }

    #[test]
    fn run_arguments() {
        let image = PulledImage {
            reference: "127.0.0.1:5000/app:git-1".into(),
            exposed_port: Some(8000),
        };
        let args = podman().run_args(&RunRequest {
            name: "deis-app-web-1",
            image: &image,
            env_names: &["PORT".into()],
            ports: Some((40001, 8000)),
            memory: Some("64M"),
            cpu: Some("500m"),
            command: &ContainerCommand::Shell("echo hi".into()),
            attach: Attach::Output,
        });
        let line = args.join(" ");
        assert!(
            line.starts_with("/usr/bin/podman --root /data/containers/root"),
            "{line}"
        );
        assert!(line.contains("--init --publish 127.0.0.1:40001:8000"), "{line}");
        assert!(
            line.contains("--memory 67108864 --cpus 0.500 --env PORT"),
            "{line}"
        );
        assert!(
            line.ends_with("--entrypoint [\"/bin/sh\",\"-c\"] 127.0.0.1:5000/app:git-1 echo hi"),
            "{line}"
        );
        let args = podman().run_args(&RunRequest {
            name: "n",
            image: &image,
            env_names: &[],
            ports: None,
            memory: None,
            cpu: None,
            command: &ContainerCommand::Args(vec!["-p".into(), "1".into()]),
            attach: Attach::Terminal,
        });
        let line = args.join(" ");
        assert!(line.contains("--interactive --tty"), "{line}");
        assert!(line.ends_with("127.0.0.1:5000/app:git-1 -p 1"), "{line}");
    }
}
