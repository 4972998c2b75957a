//! The builder: `git push` over SSH, the pushed commit as a source tarball in
//! object storage, a buildpack build into a slug, and a release through the
//! controller's internal API.
//!
//! Architecture invariants: the builder never touches the database; it
//! learns who a key belongs to, whether they may push, and records builds
//! only through the controller's internal API (authenticated with the
//! platform secret). Builds go through the [`executor::BuildExecutor`]
//! trait; git runs as a child process, never through a shell.

pub mod command;
pub mod controller;
pub mod executor;
pub mod hook;
pub mod hostkeys;
mod metrics;
mod pipeline;
pub mod repo;
mod ssh;
mod ssh_listener;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use russh::MethodKind;
use tokio::net::{TcpListener, UnixListener};

pub use controller::ControllerClient;
pub use deis_objects::{self as objects, Objects};
pub use executor::{BuildExecutor, ImageOutput, ImageTarget, IsolatedExecutor, LocalExecutor};
pub use pipeline::{BuildSettings, ImageRegistry};
pub use repo::HookCommand;
pub use ssh_listener::LoginLimits;

/// Settings of the builder.
#[derive(Clone, Debug)]
pub struct BuilderConfig {
    /// Where the SSH server listens.
    pub ssh_addr: SocketAddr,
    /// Limits on SSH connections that have not logged in yet.
    pub ssh_login: LoginLimits,
    /// The builder's own state: host keys, repositories, build scratch space
    /// and the hook socket.
    pub state_dir: PathBuf,
    /// How the git hook calls back into the builder.
    pub hook: HookCommand,
    /// The largest push (pack) accepted.
    pub max_push_bytes: u64,
    /// The largest source tree accepted.
    pub max_source_bytes: u64,
    /// The largest slug accepted.
    pub max_slug_bytes: u64,
    /// How long a build may take.
    pub build_timeout: Duration,
    /// Where Dockerfile builds push their images (none: Dockerfile pushes
    /// are refused with a message saying so).
    pub registry: Option<ImageRegistry>,
}

impl BuilderConfig {
    /// Defaults for a builder keeping its state in `state_dir`.
    pub fn new(ssh_addr: SocketAddr, state_dir: PathBuf, hook: HookCommand) -> BuilderConfig {
        BuilderConfig {
            ssh_addr,
            ssh_login: LoginLimits::default(),
            state_dir,
            hook,
            max_push_bytes: 1024 * 1024 * 1024,
            max_source_bytes: 1024 * 1024 * 1024,
            max_slug_bytes: 1024 * 1024 * 1024,
            build_timeout: Duration::from_secs(15 * 60),
            registry: None,
        }
    }
}

/// A running builder.
pub struct Builder {
    /// Where its SSH server listens.
    pub ssh_addr: SocketAddr,
    ssh: ssh_listener::SshListener,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    repos: repo::Repos,
    objects: Objects,
    metrics: metrics::BuildMetrics,
}

/// Why the builder could not drop a destroyed app's data.
#[derive(Debug, thiserror::Error)]
pub enum ForgetError {
    /// The name is not an app id (so it cannot name a repository).
    #[error("{0:?} is not an app name")]
    InvalidApp(String),
    /// The repository directory could not be removed.
    #[error("cannot remove the git repository of {app}: {source}")]
    Repository {
        /// The app.
        app: String,
        /// What failed.
        source: std::io::Error,
    },
    /// Object storage failed.
    #[error("cannot remove the build objects of {app}: {source}")]
    Objects {
        /// The app.
        app: String,
        /// What failed.
        source: objects::ObjectsError,
    },
}

impl Builder {
    /// Starts the SSH server and the hook socket.
    pub async fn start(
        config: BuilderConfig,
        controller: ControllerClient,
        objects: Objects,
        executor: Arc<dyn BuildExecutor>,
    ) -> std::io::Result<Builder> {
        let state = &config.state_dir;
        std::fs::create_dir_all(state)?;
        let keys = hostkeys::load_or_generate(&state.join("host-keys"))?;
        // Scratch space left over from a previous run is garbage.
        let work_root = state.join("work");
        let _ = std::fs::remove_dir_all(&work_root);
        std::fs::create_dir_all(&work_root)?;

        let socket = state.join("hook.sock");
        let _ = std::fs::remove_file(&socket);
        let hook_listener = UnixListener::bind(&socket)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600))?;
        }

        let pushes = hook::Pushes::default();
        let metrics = metrics::BuildMetrics::new();
        let pipeline = pipeline::Pipeline {
            metrics: metrics.clone(),
            controller: controller.clone(),
            objects: objects.clone(),
            executor,
            settings: BuildSettings {
                work_root,
                timeout: config.build_timeout,
                max_source_bytes: config.max_source_bytes,
                max_slug_bytes: config.max_slug_bytes,
                registry: config.registry.clone(),
            },
        };
        let hooks = tokio::spawn(hook::serve(hook_listener, pushes.clone(), Arc::new(pipeline)));

        let repos = repo::Repos::new(state.join("repos"), config.hook.clone(), config.max_push_bytes);
        let ssh_state = Arc::new(ssh::SshState {
            controller,
            repos: repos.clone(),
            pushes,
            socket,
            pushing: Mutex::new(Default::default()),
        });
        let ssh_config = Arc::new(russh::server::Config {
            server_id: russh::SshId::Standard("SSH-2.0-deis-builder".into()),
            methods: (&[MethodKind::PublicKey][..]).into(),
            auth_rejection_time: Duration::from_millis(300),
            auth_rejection_time_initial: Some(Duration::ZERO),
            keys,
            inactivity_timeout: Some(Duration::from_secs(3600)),
            keepalive_interval: Some(Duration::from_secs(30)),
            ..Default::default()
        });
        let listener = TcpListener::bind(config.ssh_addr).await?;
        let ssh_addr = listener.local_addr()?;
        let ssh = ssh_listener::SshListener::start(listener, ssh_config, ssh_state, config.ssh_login);
        tracing::info!(%ssh_addr, "builder listening");
        Ok(Builder {
            ssh_addr,
            ssh,
            tasks: vec![hooks],
            repos,
            objects,
            metrics,
        })
    }

    /// Drops what the builder keeps for a destroyed app: its git repository
    /// and its objects (source tarballs, slugs, Procfiles, build cache).
    /// Removing what is already gone is not an error.
    pub async fn forget_app(&self, app: &str) -> Result<(), ForgetError> {
        // The name becomes a path and an object prefix: only app ids pass.
        if !command::is_app_id(app) {
            return Err(ForgetError::InvalidApp(app.to_owned()));
        }
        self.repos
            .remove(app)
            .await
            .map_err(|source| ForgetError::Repository {
                app: app.to_owned(),
                source,
            })?;
        let builds = self
            .objects
            .delete_app(app)
            .await
            .map_err(|source| ForgetError::Objects {
                app: app.to_owned(),
                source,
            })?;
        tracing::info!(%app, builds, "removed the app's repository and build objects");
        Ok(())
    }

    /// Registers the builder's metrics (builds by outcome and their
    /// durations) for Prometheus.
    pub fn register_metrics(&self, registry: &mut prometheus_client::registry::Registry) {
        self.metrics.register(registry);
    }

    /// Where an app's git repository lives.
    pub fn repository(&self, app: &str) -> PathBuf {
        self.repos.path(app)
    }

    /// Stops accepting pushes.
    pub fn shutdown(&self) {
        self.ssh.stop();
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Drop for Builder {
    fn drop(&mut self) {
        self.shutdown();
    }
}
