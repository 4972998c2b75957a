//! How an app process starts, like Deis's slugrunner: in the unpacked slug
//! with HOME pointing at it, `.profile.d/*.sh` sourced, then the Procfile
//! command run with `bash -c`. Never through anything but bash itself.

use std::path::PathBuf;

use deis_isolation::OsUser;
use deis_scheduler::ReleaseSpec;

use crate::containers::{Attach, ContainerCommand, Podman, PulledImage, RunRequest};
use crate::limits::Applied;
use crate::process::Spec;

/// How one process of an image release runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ContainerRun {
    /// The container's name (unique per process and release).
    pub(crate) name: String,
    /// What it runs.
    pub(crate) command: ContainerCommand,
    /// The port it listens on inside, published on the process's port.
    pub(crate) port: Option<u16>,
}

/// Joins the process's cgroups (so everything it starts is limited from the
/// first instruction), becomes the app's user, sources `.profile.d`, and
/// replaces itself with the command. `$1` is the command; `$2` is the
/// command prefix that changes user (`setpriv ...`, or empty); `$3...` are
/// cgroup `procs` files. Joining needs root, so it comes first.
const LAUNCHER: &str = r#"for procs in "${@:3}"; do echo $$ > "$procs" || exit 125; done
exec $2 bash -c 'cd "$HOME" || exit 126
for f in .profile.d/*.sh; do [ -r "$f" ] && . "$f"; done
unset f
exec bash -c "$1"' deis-run "$1""#;

/// A release unpacked (or, for an image, pulled) on this machine.
#[derive(Clone, Debug)]
pub(crate) struct Unpacked {
    pub(crate) spec: ReleaseSpec,
    /// The slug's directory; for an image, the directory podman runs in.
    pub(crate) slug: PathBuf,
    /// `.release` `config_vars` of the slug (defaults under the app's config).
    pub(crate) config_vars: Vec<(String, String)>,
    /// The image of an image release.
    pub(crate) image: Option<PulledImage>,
    /// The user a slug's processes run as (`--app-users`).
    pub(crate) user: Option<OsUser>,
}

impl Unpacked {
    /// The port a process of this release listens on: the app's own `PORT`
    /// when its config sets one (user config wins), else `allocated`. A
    /// container's port on this machine is always `allocated` (its `PORT`
    /// is the one inside).
    pub(crate) fn port(&self, allocated: u16) -> u16 {
        if self.image.is_some() {
            return allocated;
        }
        self.spec
            .env
            .get("PORT")
            .and_then(|p| p.parse().ok())
            .unwrap_or(allocated)
    }

    /// The environment of a process: the machine's PATH and locale, the
    /// slug's config vars, the platform's variables and the app's config
    /// (which wins), then HOME, PORT and DYNO.
    pub(crate) fn environment(&self, port: u16, dyno: &str) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = Vec::new();
        let mut set = |key: &str, value: String| {
            env.retain(|(k, _)| k != key);
            env.push((key.to_owned(), value));
        };
        set(
            "PATH",
            std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into()),
        );
        for key in ["LANG", "LC_ALL", "TZ"] {
            if let Ok(value) = std::env::var(key) {
                set(key, value);
            }
        }
        for (key, value) in &self.config_vars {
            set(key, value.clone());
        }
        set("PORT", port.to_string());
        set("DYNO", dyno.to_owned());
        for (key, value) in &self.spec.env {
            set(key, value.clone());
        }
        set("HOME", self.slug.display().to_string());
        env
    }

    /// The environment inside a container: the platform's variables and the
    /// app's config, then PORT (the port inside the container) and DYNO.
    /// Nothing of this machine's own environment: the image brings its own.
    pub(crate) fn container_environment(&self, port: Option<u16>, dyno: &str) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = self
            .spec
            .env
            .iter()
            .filter(|(k, _)| k.as_str() != "PORT" && k.as_str() != "DYNO")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if let Some(port) = port {
            env.push(("PORT".into(), port.to_string()));
        }
        env.push(("DYNO".into(), dyno.to_owned()));
        env
    }

    /// The port an image process listens on inside its container: the
    /// app's `PORT`, else the first port the image exposes.
    pub(crate) fn container_port(&self) -> Option<u16> {
        self.spec
            .env
            .get("PORT")
            .and_then(|p| p.parse().ok())
            .or_else(|| self.image.as_ref().and_then(|i| i.exposed_port))
    }
}

/// A command line ready to spawn, with or without a terminal.
#[derive(Clone, Debug)]
pub(crate) struct Launch {
    pub(crate) program: String,
    pub(crate) args: Vec<String>,
    pub(crate) env: Vec<(String, String)>,
    pub(crate) dir: PathBuf,
    /// The container it runs, for an image release.
    pub(crate) container: Option<String>,
    /// What exec probes run their command under (`podman exec <name>`, or
    /// the change to the app's user).
    pub(crate) exec_prefix: Option<Vec<String>>,
}

impl Launch {
    /// Runs `command` in `release`'s slug with `env`, as its user and
    /// inside the limits of `applied`.
    pub(crate) fn new(
        release: &Unpacked,
        env: Vec<(String, String)>,
        command: &str,
        applied: &Applied,
    ) -> Launch {
        let become_user = release.user.map(|user| user.setpriv());
        let mut args: Vec<String> = applied.prefix.clone();
        args.extend([
            "bash".into(),
            "-c".into(),
            LAUNCHER.into(),
            "deis-run".into(),
            command.into(),
            become_user.as_deref().unwrap_or_default().join(" "),
        ]);
        args.extend(applied.join.iter().map(|p| p.display().to_string()));
        let program = args.remove(0);
        Launch {
            program,
            args,
            env,
            dir: release.slug.clone(),
            container: None,
            exec_prefix: become_user,
        }
    }

    /// Runs a process of an image release: `podman run` in the foreground,
    /// so its output and exit are the container's.
    pub(crate) fn container(
        podman: &Podman,
        spec: &Spec,
        image: &PulledImage,
        run: &ContainerRun,
        dyno: &str,
    ) -> Launch {
        let env = spec.release.container_environment(run.port, dyno);
        let names: Vec<String> = env.iter().map(|(k, _)| k.clone()).collect();
        let request = RunRequest {
            name: &run.name,
            image,
            env_names: &names,
            ports: run.port.map(|port| (spec.port, port)),
            memory: spec.memory.as_deref(),
            cpu: spec.cpu.as_deref(),
            command: &run.command,
            attach: Attach::Output,
        };
        Launch::podman(podman, &request, env)
    }

    /// A one-off command (`deis run`) in a new container of an image
    /// release, attached to the caller's stdin or a terminal.
    pub(crate) fn one_off(
        podman: &Podman,
        release: &Unpacked,
        image: &PulledImage,
        name: &str,
        command: &str,
        terminal: bool,
    ) -> Launch {
        let env = release.container_environment(release.container_port(), "run");
        let names: Vec<String> = env.iter().map(|(k, _)| k.clone()).collect();
        let request = RunRequest {
            name,
            image,
            env_names: &names,
            ports: None,
            memory: None,
            cpu: None,
            command: &ContainerCommand::Shell(command.to_owned()),
            attach: if terminal { Attach::Terminal } else { Attach::Stdin },
        };
        Launch::podman(podman, &request, env)
    }

    fn podman(podman: &Podman, request: &RunRequest<'_>, app_env: Vec<(String, String)>) -> Launch {
        let mut args = podman.run_args(request);
        let program = args.remove(0);
        // podman itself needs PATH and HOME; the app's values go to the
        // container through `--env NAME`.
        let mut env: Vec<(String, String)> = ["PATH", "HOME", "XDG_RUNTIME_DIR"]
            .into_iter()
            .filter_map(|k| Some((k.to_owned(), std::env::var(k).ok()?)))
            .filter(|(k, _)| !request.env_names.contains(k))
            .collect();
        env.extend(app_env);
        Launch {
            program,
            args,
            env,
            dir: podman.work_dir(),
            exec_prefix: Some(podman.exec_args(request.name, &[])),
            container: Some(request.name.to_owned()),
        }
    }

    /// A tokio command in its own process group, with no other environment.
    pub(crate) fn command(&self) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(&self.program);
        command
            .args(&self.args)
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .current_dir(&self.dir)
            .process_group(0);
        command
    }

    /// The same under a pseudo-terminal (which makes it a session leader).
    pub(crate) fn pty_command(&self) -> pty_process::Command {
        pty_process::Command::new(&self.program)
            .args(&self.args)
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .current_dir(&self.dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use deis_scheduler::{BuildKind, BuildSpec};
    use std::path::Path;

    fn unpacked(env: &[(&str, &str)], slug: &Path) -> Unpacked {
        Unpacked {
            spec: ReleaseSpec {
                app: "demo".into(),
                version: 3,
                summary: "s".into(),
                created: chrono::Utc::now(),
                build: BuildSpec {
                    uuid: "b".into(),
                    kind: BuildKind::Buildpack,
                    image: "i".into(),
                    sha: "abc".into(),
                    procfile: Default::default(),
                },
                config: Default::default(),
                env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            },
            slug: slug.to_owned(),
            image: None,
            user: None,
            config_vars: vec![
                ("LANG".into(), "slug-lang".into()),
                ("GREETING".into(), "slug".into()),
            ],
        }
    }

    #[tokio::test]
    async fn slugrunner_semantics() {
        let slug = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(slug.path().join(".profile.d")).unwrap();
        std::fs::write(slug.path().join(".profile.d/a.sh"), "export FROM_PROFILE=yes\n").unwrap();
        let release = unpacked(&[("GREETING", "user"), ("DEIS_APP", "demo")], slug.path());
        let env = release.environment(4321, "web.1");
        let launch = Launch::new(
            &release,
            env,
            "echo $GREETING $FROM_PROFILE $PORT $DYNO $DEIS_APP $LANG \"$(pwd)\" \"$1\"",
            &Applied::default(),
        );
        let out = launch.command().output().await.unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let expected = format!("user yes 4321 web.1 demo slug-lang {} \n", slug.path().display());
        assert_eq!(
            text, expected,
            "user config wins over the slug's config vars; .profile.d is sourced"
        );
        // The app's own PORT wins too.
        assert_eq!(unpacked(&[("PORT", "9000")], slug.path()).port(1234), 9000);
        assert_eq!(unpacked(&[], slug.path()).port(1234), 1234);
    }
}
