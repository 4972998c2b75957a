//! `deis-workflow`: the platform's server binary.
//!
//! `up` runs every component in one process on embedded defaults (SQLite and
//! local files in one data directory); the other subcommands run one
//! component each, for split deployments.

mod build_slug;
mod destroy;
mod incoming;
mod logging;
mod metrics;
mod registry;
mod routing;
mod slug_run;
mod status;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::builder::BoolishValueParser;
use clap::{Args, Parser, Subcommand};
use deis_auth::PlatformSecret;
use deis_builder::{
    BuildExecutor, Builder, BuilderConfig, ControllerClient, HookCommand, ImageRegistry, IsolatedExecutor,
    LocalExecutor, LoginLimits, Objects,
};
use deis_controller::{Controller, ControllerConfig, RegistrationMode};
use deis_runtime::{ContainerSettings, LocalRuntime, RuntimeConfig};
use deis_scheduler::{LogService, LogSink, NoRuntime, Scheduler};
use deis_store::Store;

#[derive(Parser)]
#[command(
    name = "deis-workflow",
    version,
    about = "A Heroku-style platform: git push, get a running app."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once at start-up: the size of its variants does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Start the whole platform on embedded defaults (SQLite and local files in the data directory).
    Up(UpArgs),
    /// Run only the controller (gRPC API), for split deployments.
    Controller(ControllerArgs),
    /// Run only the builder (git push over SSH), for split deployments.
    Builder(BuilderArgs),
    /// Apply database migrations and exit.
    Migrate(StoreArgs),
    /// Run only the logger (gRPC API and Fluentd Forward listener), for split deployments.
    Logger(logging::LoggerArgs),
    /// Run only the edge router (reads the routing feed), for split deployments.
    Router(routing::RouterArgs),
    /// Run one build inside a Kubernetes build Job (what the builder's Jobs run).
    BuildSlug(build_slug::BuildSlugArgs),
    /// Run a buildpack app from its slug, as Deis's slugrunner did (the image's /runner/init).
    SlugRun(slug_run::SlugRunArgs),
    /// Print an Envoy bootstrap that reads this platform's routing feed.
    EnvoyBootstrap(routing::EnvoyBootstrapArgs),
    /// Show each component's health, version and address, and warnings for anything degraded.
    Status(status::StatusArgs),
    /// The running platform's container registry: repositories, tags, garbage collection.
    #[command(subcommand)]
    Registry(registry::RegistryCommand),
    /// Print the version.
    Version,
    /// Internal: git hooks of the builder's repositories.
    #[command(hide = true, subcommand)]
    Hook(HookCommandArgs),
}

#[derive(Subcommand)]
enum HookCommandArgs {
    /// Hands a push to the builder and streams the build (run by git).
    PreReceive,
}

#[derive(Args, Clone)]
struct StoreArgs {
    /// Where the platform keeps its state (database, platform secret, repositories, objects).
    #[arg(long, env = "DEIS_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// PostgreSQL URL (postgres://user:pass@host/db); defaults to SQLite in the data directory.
    #[arg(long, env = "DATABASE_URL")]
    database_url: Option<String>,
}

#[derive(Args, Clone)]
struct ControllerOpts {
    /// Address of the controller's API (gRPC).
    #[arg(long, env = "DEIS_CONTROLLER_ADDR", default_value = "127.0.0.1:8000")]
    controller_addr: SocketAddr,
    /// Apps answer at <app>.<platform-domain>.
    #[arg(long, env = "DEIS_PLATFORM_DOMAIN", default_value = "localhost")]
    platform_domain: String,
    /// Port the router serves apps on (shown in app URLs).
    #[arg(long, env = "DEIS_ROUTER_PORT", default_value_t = 8080)]
    router_port: u16,
    /// Who may register: enabled, disabled or admin_only (the first user may always register).
    #[arg(long, env = "DEIS_REGISTRATION_MODE", default_value = "admin_only")]
    registration_mode: RegistrationMode,
    /// Comma-separated app names nobody may use.
    #[arg(long, env = "DEIS_RESERVED_NAMES", value_delimiter = ',')]
    reserved_names: Option<Vec<String>>,
    /// Seconds a release may take to become ready (an app's DEIS_DEPLOY_TIMEOUT overrides it).
    #[arg(long, env = "DEIS_DEPLOY_TIMEOUT", default_value_t = 120)]
    deploy_timeout: u64,
    /// Also serve the REST API alone on this address, e.g. for an HTTP load balancer
    /// (the controller's address serves REST beside gRPC either way).
    #[arg(long, env = "DEIS_REST_ADDR")]
    rest_addr: Option<SocketAddr>,
}

#[derive(Args, Clone)]
struct BuilderOpts {
    /// Address of the builder's SSH server (git push).
    #[arg(long, env = "DEIS_BUILDER_ADDR", default_value = "127.0.0.1:2222")]
    builder_addr: SocketAddr,
    /// Host name users push to, shown in git remotes [default: the builder's address].
    #[arg(long, env = "DEIS_BUILDER_HOST")]
    builder_host: Option<String>,
    /// Longest a build may take, in seconds.
    #[arg(long, env = "DEIS_BUILD_TIMEOUT", default_value_t = 900)]
    build_timeout: u64,
    /// Largest push, source tree and slug accepted, in MiB.
    #[arg(long, env = "DEIS_BUILD_MAX_MB", default_value_t = 1024)]
    build_max_mb: u64,
    /// Seconds an SSH client has from connecting to logging in.
    #[arg(long, env = "DEIS_BUILDER_LOGIN_GRACE", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    builder_login_grace: u64,
    /// SSH connections that may be logging in at once; more wait.
    #[arg(long, env = "DEIS_BUILDER_MAX_PENDING_LOGINS", default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=65536))]
    builder_max_pending_logins: u64,
    /// Where builds run: on this machine, or as Kubernetes Jobs (with the
    /// pod's service account, else KUBECONFIG) [default: kubernetes for
    /// `up --runtime kubernetes` with --object-store, else local].
    #[arg(long, env = "DEIS_BUILD_EXECUTOR", value_enum)]
    build_executor: Option<BuildExecutorKind>,
    /// Kubernetes builds: the namespace of their Jobs [default: the
    /// builder's own (its service account's, else the kubeconfig's)].
    #[arg(long, env = "DEIS_BUILD_NAMESPACE")]
    build_namespace: Option<String>,
    /// Kubernetes builds: the deis-workflow image, which runs `build-slug`.
    #[arg(long, env = "DEIS_BUILD_IMAGE", default_value = deis_kubernetes::build::DEFAULT_IMAGE)]
    build_image: String,
    /// Kubernetes builds: the buildah image of Dockerfile builds.
    #[arg(long, env = "DEIS_BUILDAH_IMAGE", default_value = deis_kubernetes::build::DEFAULT_BUILDAH_IMAGE)]
    buildah_image: String,
    /// Kubernetes builds: pull policy of the build images.
    #[arg(long, env = "DEIS_BUILD_IMAGE_PULL_POLICY", default_value = "IfNotPresent")]
    build_image_pull_policy: String,
    /// Kubernetes builds: a Secret in their namespace whose keys become the
    /// build pods' environment (the object store's credentials).
    #[arg(long, env = "DEIS_BUILD_OBJECT_STORE_SECRET")]
    build_object_store_secret: Option<String>,
    /// Kubernetes builds: pull secrets of the build images (names, comma-separated).
    #[arg(long, env = "DEIS_BUILD_IMAGE_PULL_SECRETS", value_delimiter = ',')]
    build_image_pull_secrets: Vec<String>,
}

/// Where builds run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum BuildExecutorKind {
    /// Buildpacks as child processes of the builder, buildah for Dockerfiles.
    Local,
    /// Kubernetes Jobs, their output streamed back to `git push`.
    Kubernetes,
}

#[derive(Args, Clone)]
struct ObjectsOpts {
    /// Object storage for sources, slugs and caches: file:///path, s3://bucket, gs://bucket, az://container
    /// [default: the data directory's objects/].
    #[arg(long, env = "DEIS_OBJECT_STORE")]
    object_store: Option<String>,
}

impl ObjectsOpts {
    /// Where objects are, for `status`.
    fn location(&self, data_dir: &Path) -> String {
        self.object_store
            .clone()
            .unwrap_or_else(|| format!("file://{}", data_dir.join("objects").display()))
    }

    fn open(&self, data_dir: &Path) -> Result<Objects> {
        Ok(match &self.object_store {
            Some(url) => Objects::from_url(url)?,
            None => Objects::local(&data_dir.join("objects"))?,
        })
    }
}

/// Which runtime runs the apps.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum RuntimeKind {
    /// Supervised processes on this machine.
    Local,
    /// None: releases are recorded, nothing runs.
    None,
    /// A Kubernetes cluster (the pod's service account, else KUBECONFIG).
    Kubernetes,
}

#[derive(Args, Clone)]
struct RuntimeOpts {
    /// Where apps run.
    #[arg(long, env = "DEIS_RUNTIME", value_enum, default_value = "local")]
    runtime: RuntimeKind,
    /// Labels of this machine for `deis tags` (key=value, comma-separated).
    #[arg(long, env = "DEIS_NODE_LABELS", value_delimiter = ',')]
    node_labels: Vec<String>,
    /// Run each slug app and each buildpack build as an operating-system
    /// user of its own, which can read neither the platform's files nor
    /// other apps' (needs root).
    #[arg(long, env = "DEIS_APP_USERS", value_parser = BoolishValueParser::new())]
    app_users: bool,
    /// Kubernetes: the image that runs buildpack slugs (`/runner/init`): the platform image.
    #[arg(long, env = "DEIS_SLUGRUNNER_IMAGE", default_value = deis_kubernetes::build::DEFAULT_IMAGE)]
    slugrunner_image: String,
    /// Kubernetes: what slug keys are appended to for SLUG_URL (e.g. s3://bucket/).
    #[arg(long, env = "DEIS_SLUG_URL_PREFIX", default_value = "")]
    slug_url_prefix: String,
    /// Kubernetes: a Secret in the platform's namespace with the object-store
    /// credentials the slug runner needs; copied into each app's namespace.
    #[arg(long, env = "DEIS_OBJECT_STORE_SECRET")]
    object_store_secret: Option<String>,
    /// Kubernetes: the pods' image pull policy (IfNotPresent, Always, Never).
    #[arg(long, env = "DEIS_IMAGE_PULL_POLICY", default_value = "IfNotPresent")]
    image_pull_policy: String,
    /// Kubernetes: pods a rollout adds at once (Deis's DEIS_DEPLOY_BATCHES).
    #[arg(long, env = "DEIS_DEPLOY_BATCHES", default_value_t = 1)]
    deploy_batches: i32,
}

/// The local runtime's directory in the data directory.
const RUNTIME_DIR: &str = "runtime";
/// The builder's directory in the data directory.
const BUILDER_DIR: &str = "builder";

/// With `--app-users`: makes the data directory searchable (not listable)
/// by the apps' and builds' users, who must reach their slugs and builds in
/// the runtime's and builder's directories, and everything else in it
/// private to the platform.
fn open_to_app_users(data_dir: &Path) -> Result<()> {
    let prepared = deis_isolation::require_root().and_then(|()| {
        deis_isolation::reachable_by_others(data_dir).map_err(std::io::Error::other)?;
        deis_isolation::lock_down(data_dir, &[RUNTIME_DIR, BUILDER_DIR])
    });
    prepared.with_context(|| format!("cannot prepare {} for app users", data_dir.display()))
}

impl RuntimeOpts {
    /// [`open_to_app_users`] with `--app-users`: before the runtime starts,
    /// and again once every component has created its files.
    fn lock_down(&self, data_dir: &Path) -> Result<()> {
        if self.app_users {
            open_to_app_users(data_dir)?;
        }
        Ok(())
    }

    /// The scheduler to give the controller.
    async fn start(
        &self,
        data_dir: &Path,
        objects: Objects,
        logs: Arc<dyn LogSink>,
        containers: Option<ContainerSettings>,
    ) -> Result<Arc<dyn Scheduler>> {
        Ok(match self.runtime {
            RuntimeKind::None => Arc::new(NoRuntime),
            RuntimeKind::Local => {
                let mut node_labels = std::collections::BTreeMap::new();
                for label in &self.node_labels {
                    let (key, value) = label
                        .split_once('=')
                        .with_context(|| format!("node label {label:?} is not key=value"))?;
                    node_labels.insert(key.trim().to_owned(), value.trim().to_owned());
                }
                self.lock_down(data_dir)?;
                let config = RuntimeConfig {
                    state_dir: data_dir.join(RUNTIME_DIR),
                    node_labels,
                    containers,
                    app_users: self.app_users,
                };
                Arc::new(
                    LocalRuntime::start(config, objects, logs).context("cannot start the local runtime")?,
                )
            }
            RuntimeKind::Kubernetes => {
                let client = kube::Client::try_default().await.context(
                    "cannot reach the Kubernetes API (no service account in this pod and no usable KUBECONFIG)",
                )?;
                let settings = deis_kubernetes::Settings {
                    slug_runner_image: self.slugrunner_image.clone(),
                    slug_url_prefix: self.slug_url_prefix.clone(),
                    object_store_secret: self.object_store_secret.clone(),
                    image_pull_policy: self.image_pull_policy.clone(),
                    deploy_batches: self.deploy_batches.max(1),
                    ..deis_kubernetes::Settings::default()
                };
                deis_kubernetes::KubeScheduler::new(client, settings, deis_kubernetes::Timing::default())
            }
        })
    }
}

#[derive(Args, Clone)]
struct UpArgs {
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    objects: ObjectsOpts,
    #[command(flatten)]
    controller: ControllerOpts,
    #[command(flatten)]
    runtime: RuntimeOpts,
    #[command(flatten)]
    builder: BuilderOpts,
    #[command(flatten)]
    router: routing::RouterOpts,
    #[command(flatten)]
    logger: logging::LoggerOpts,
    #[command(flatten)]
    registry: registry::RegistryOpts,
    /// The embedded router serves plain HTTP/1.1 with epoll alone, not io_uring.
    #[arg(long, env = "DEIS_ROUTER_NO_IO_URING", value_parser = BoolishValueParser::new())]
    no_io_uring: bool,
    /// Which router serves apps: the embedded one, or none (run Envoy on the routing feed instead).
    #[arg(long = "router", env = "DEIS_ROUTER", value_enum, default_value = "embedded")]
    router_kind: routing::RouterKind,
    /// The secret platform components authenticate with (default: generated into the data directory).
    #[arg(long, env = "DEIS_PLATFORM_SECRET", hide_env_values = true)]
    platform_secret: Option<String>,
    #[command(flatten)]
    metrics: metrics::MetricsOpts,
}

#[derive(Args, Clone)]
struct ControllerArgs {
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    objects: ObjectsOpts,
    #[command(flatten)]
    controller: ControllerOpts,
    #[command(flatten)]
    runtime: RuntimeOpts,
    #[command(flatten)]
    router: routing::RouterOpts,
    /// The logger to use (http://host:port of `deis-workflow logger`) [default: one in this process].
    #[arg(long, env = "DEIS_LOGGER_URL")]
    logger_url: Option<String>,
    /// Host name users push to, shown in git remotes.
    #[arg(long, env = "DEIS_BUILDER_HOST", default_value = "127.0.0.1")]
    builder_host: String,
    /// Port users push to, shown in git remotes.
    #[arg(long, env = "DEIS_BUILDER_PORT", default_value_t = 2222)]
    builder_port: u16,
    /// The secret platform components authenticate with (default: generated into the data directory).
    #[arg(long, env = "DEIS_PLATFORM_SECRET", hide_env_values = true)]
    platform_secret: Option<String>,
    #[command(flatten)]
    registry: registry::RegistryOpts,
    #[command(flatten)]
    metrics: metrics::MetricsOpts,
}

#[derive(Args, Clone)]
struct BuilderArgs {
    /// Where the builder keeps repositories, host keys and (by default) objects.
    #[arg(long, env = "DEIS_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// The controller's URL.
    #[arg(long, env = "DEIS_CONTROLLER_URL", default_value = "http://127.0.0.1:8000")]
    controller_url: String,
    /// The secret shared with the controller.
    #[arg(long, env = "DEIS_PLATFORM_SECRET", hide_env_values = true)]
    platform_secret: String,
    #[command(flatten)]
    objects: ObjectsOpts,
    #[command(flatten)]
    builder: BuilderOpts,
    /// Where Dockerfile builds push their images: host:port of the platform's registry (the controller serves it).
    #[arg(long, env = "DEIS_REGISTRY_HOST")]
    registry_host: Option<String>,
    /// Run each buildpack build as an operating-system user of its own,
    /// which can read neither the platform's files nor other apps' (needs
    /// root).
    #[arg(long, env = "DEIS_APP_USERS", value_parser = BoolishValueParser::new())]
    app_users: bool,
    #[command(flatten)]
    metrics: metrics::MetricsOpts,
}

pub(crate) fn default_data_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("deis-workflow");
    }
    match std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        Some(home) => PathBuf::from(home).join(".local/share/deis-workflow"),
        None => PathBuf::from("/var/lib/deis-workflow"),
    }
}

/// Creates the data directory, readable by nobody else: it holds the
/// platform secret, host keys and every user's certificates.
pub(crate) fn ensure_data_dir(dir: Option<&Path>) -> Result<PathBuf> {
    let dir = dir.map_or_else(default_data_dir, Path::to_owned);
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("cannot create the data directory {}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        // 0711 (searchable, set for `--app-users`) is left as it is.
        let mode = std::fs::metadata(&dir)
            .with_context(|| format!("cannot read the data directory {}", dir.display()))?
            .mode();
        if mode & 0o066 != 0 {
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
                .with_context(|| format!("cannot restrict permissions of {}", dir.display()))?;
        }
    }
    Ok(dir)
}

/// One platform's hold on its data directory, kept while it runs. Two
/// platforms on one directory would each start every app's processes and
/// stop the other's, so a second one is refused.
struct DataDirLock {
    _file: std::fs::File,
}

impl DataDirLock {
    const FILE: &str = "deis-workflow.lock";

    fn take(dir: &Path) -> Result<DataDirLock> {
        use std::io::{Read, Seek, Write};
        let path = dir.join(Self::FILE);
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = match holder.trim() {
                    "" => String::new(),
                    pid => format!(" (pid {pid})"),
                };
                anyhow::bail!(
                    "the data directory {} is in use by another deis-workflow{holder}; stop that one first, or give this one a --data-dir of its own",
                    dir.display()
                );
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("cannot lock {}", path.display()));
            }
        }
        // Who holds it, for the message above; the lock itself is what counts.
        let _ = file
            .set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| writeln!(file, "{}", std::process::id()));
        Ok(DataDirLock { _file: file })
    }
}

impl StoreArgs {
    /// Opens the platform's database (migrated) and holds its data
    /// directory against a second platform.
    async fn open(&self) -> Result<(Store, PathBuf, DataDirLock)> {
        let dir = ensure_data_dir(self.data_dir.as_deref())?;
        let lock = DataDirLock::take(&dir)?;
        let url = match &self.database_url {
            Some(url) => url.clone(),
            None => format!("sqlite://{}?mode=rwc", dir.join("deis.sqlite3").display()),
        };
        let store = Store::connect(&url)
            .await
            .with_context(|| format!("cannot open the database ({})", redact(&url)))?;
        store
            .migrate()
            .await
            .context("cannot apply database migrations")?;
        Ok((store, dir, lock))
    }
}

impl ControllerOpts {
    fn config(&self, builder_host: String, builder_port: u16) -> ControllerConfig {
        let mut config = ControllerConfig {
            platform_domain: self.platform_domain.clone(),
            router_port: self.router_port,
            builder_host,
            builder_port,
            registration_mode: self.registration_mode,
            deploy_timeout: Duration::from_secs(self.deploy_timeout),
            ..ControllerConfig::default()
        };
        if let Some(names) = &self.reserved_names {
            config.reserved_names = names
                .iter()
                .map(|n| n.trim().to_owned())
                .filter(|n| !n.is_empty())
                .collect();
        }
        config
    }
}

impl BuilderOpts {
    /// Starts the builder with its state under `data_dir`.
    async fn start(
        &self,
        data_dir: &Path,
        objects: Objects,
        controller_url: &str,
        secret: &str,
        registry: Option<ImageRegistry>,
        builds: Builds<'_>,
    ) -> Result<Builder> {
        let state_dir = data_dir.join(BUILDER_DIR);
        let app_users = builds.app_users;
        let executor = self.executor(&state_dir, builds).await?;
        let program =
            std::env::current_exe().context("cannot find the deis-workflow binary for git hooks")?;
        let hook = HookCommand {
            program,
            args: vec!["hook".into(), "pre-receive".into()],
        };
        let limit = self.build_max_mb.saturating_mul(1024 * 1024);
        let config = BuilderConfig {
            max_push_bytes: limit,
            max_source_bytes: limit,
            max_slug_bytes: limit,
            build_timeout: Duration::from_secs(self.build_timeout),
            registry,
            ssh_login: LoginLimits {
                grace: Duration::from_secs(self.builder_login_grace),
                max_pending: usize::try_from(self.builder_max_pending_logins).unwrap_or(usize::MAX),
            },
            ..BuilderConfig::new(self.builder_addr, state_dir.clone(), hook)
        };
        let controller = ControllerClient::new(controller_url, secret)?;
        let builder = Builder::start(config, controller, objects, executor)
            .await
            .with_context(|| format!("cannot start the builder on {}", self.builder_addr))?;
        if app_users {
            // Builds reach their work directories and the shared binary;
            // repositories, host keys and images stay the platform's (made
            // now, not at the first push, so that they are private too).
            use std::os::unix::fs::PermissionsExt;
            ["repos", "images"]
                .iter()
                .try_for_each(|dir| std::fs::create_dir_all(state_dir.join(dir)))
                .and_then(|()| deis_isolation::lock_down(&state_dir, &[BUILD_PROGRAM_DIR, "work"]))
                .and_then(|()| {
                    std::fs::set_permissions(state_dir.join("work"), std::fs::Permissions::from_mode(0o711))
                })
                .with_context(|| format!("cannot prepare {} for build users", state_dir.display()))?;
        }
        Ok(builder)
    }

    async fn executor(&self, state_dir: &Path, builds: Builds<'_>) -> Result<Arc<dyn BuildExecutor>> {
        // On Kubernetes, builds run as Jobs when their pods can reach the
        // object store; with the data directory's files, on this machine.
        let kind = self
            .build_executor
            .unwrap_or(match (builds.on_kubernetes, builds.object_store) {
                (true, Some(_)) => BuildExecutorKind::Kubernetes,
                (true, None) => {
                    tracing::info!(
                        "builds run on this machine: build Jobs need --object-store (s3://, gs:// or az://)"
                    );
                    BuildExecutorKind::Local
                }
                (false, _) => BuildExecutorKind::Local,
            });
        if kind == BuildExecutorKind::Local {
            let buildpacks = state_dir.join("buildpacks");
            LocalExecutor::install_builtin_buildpacks(&buildpacks).with_context(|| {
                format!(
                    "cannot install the built-in buildpacks into {}",
                    buildpacks.display()
                )
            })?;
            let local = LocalExecutor::new(buildpacks).with_image_storage(state_dir.join("images"));
            if builds.app_users {
                deis_isolation::require_root()?;
                let program = shared_program(&state_dir.join(BUILD_PROGRAM_DIR))?;
                let users =
                    deis_isolation::OsUsers::open(state_dir.join("build-users"), deis_isolation::BUILD_UIDS)?;
                return Ok(Arc::new(IsolatedExecutor::new(program, users, local)));
            }
            return Ok(Arc::new(local));
        }
        let Some(object_store) = builds.object_store else {
            anyhow::bail!(
                "Kubernetes builds need object storage their pods can reach: set --object-store (s3://, gs:// or az://)"
            );
        };
        if object_store.starts_with("file:") {
            tracing::warn!(
                object_store,
                "build Jobs are given a local object store: their pods see it only if they share this machine's files"
            );
        }
        let client = kube::Client::try_default().await.context(
            "cannot reach the Kubernetes API for build Jobs (no service account in this pod and no usable KUBECONFIG)",
        )?;
        let settings = deis_kubernetes::BuildJobSettings {
            namespace: self
                .build_namespace
                .clone()
                .unwrap_or_else(|| client.default_namespace().to_owned()),
            image: self.build_image.clone(),
            buildah_image: self.buildah_image.clone(),
            image_pull_policy: self.build_image_pull_policy.clone(),
            object_store: object_store.to_owned(),
            object_store_secret: self.build_object_store_secret.clone(),
            image_pull_secrets: self.build_image_pull_secrets.clone(),
            ..deis_kubernetes::BuildJobSettings::default()
        };
        tracing::info!(namespace = %settings.namespace, image = %settings.image, "builds run as Kubernetes Jobs");
        Ok(Arc::new(deis_kubernetes::KubeBuildExecutor::new(
            client, settings,
        )))
    }

    fn advertised_host(&self, bound: SocketAddr) -> String {
        self.builder_host
            .clone()
            .unwrap_or_else(|| bound.ip().to_string())
    }
}

/// What decides where the builder's builds run.
#[derive(Clone, Copy)]
struct Builds<'a> {
    /// The object store URL, when one was given.
    object_store: Option<&'a str>,
    /// Apps run on Kubernetes (`up --runtime kubernetes`): builds do too,
    /// unless told otherwise.
    on_kubernetes: bool,
    /// Buildpack builds run as users of their own (`--app-users`).
    app_users: bool,
}

/// Where builds find `deis-workflow` (`build-slug`) with `--app-users`.
const BUILD_PROGRAM_DIR: &str = "bin";

/// This binary, linked (or copied) into `dir` where every user can run it:
/// the build users cannot reach it where it was installed (under /root, say).
fn shared_program(dir: &Path) -> Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let this = std::env::current_exe().context("cannot find the deis-workflow binary for builds")?;
    let shared = dir.join("deis-workflow");
    if this == shared {
        return Ok(shared);
    }
    let placed = std::fs::create_dir_all(dir)
        .and_then(|()| std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)))
        .and_then(|()| match std::fs::remove_file(&shared) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        })
        .and_then(|()| {
            std::fs::hard_link(&this, &shared).or_else(|_| std::fs::copy(&this, &shared).map(drop))
        })
        .and_then(|()| std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o755)));
    placed.with_context(|| format!("cannot place deis-workflow in {} for builds", dir.display()))?;
    Ok(shared)
}

/// Hides the password of a database URL.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

fn platform_secret(given: Option<&str>, data_dir: &Path) -> Result<PlatformSecret> {
    Ok(match given {
        Some(secret) => PlatformSecret::new(secret)?,
        None => PlatformSecret::load_or_create(&data_dir.join("platform-secret"))?,
    })
}

pub(crate) async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}

async fn bind(addr: SocketAddr, what: &str) -> Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await.with_context(|| {
        format!("cannot listen on {addr} for the {what} (is another deis-workflow running?)")
    })
}

/// The REST API's own listener, when `--rest-addr` asks for one.
async fn bind_rest(opts: &ControllerOpts) -> Result<Option<tokio::net::TcpListener>> {
    match opts.rest_addr {
        Some(addr) => Ok(Some(bind(addr, "REST API").await?)),
        None => Ok(None),
    }
}

/// Serves the controller, with the services `extend` adds (and the REST API
/// alone on `rest`, if given), until Ctrl-C, re-applying every app's
/// desired state first.
async fn serve_controller(
    controller: Controller,
    listener: tokio::net::TcpListener,
    rest: Option<tokio::net::TcpListener>,
    extend: impl FnOnce(deis_controller::ApiRouter) -> deis_controller::ApiRouter,
) -> Result<()> {
    tokio::spawn({
        let controller = controller.clone();
        async move { controller.converge().await }
    });
    if let Some(rest) = rest {
        let controller = controller.clone();
        tokio::spawn(async move {
            if let Err(e) = controller.serve_rest(rest, shutdown_signal()).await {
                tracing::error!(error = %e, "the REST API's listener stopped");
            }
        });
    }
    controller
        .serve_with(listener, shutdown_signal(), extend)
        .await
        .context("the controller stopped")
}

async fn up(args: UpArgs) -> Result<()> {
    let (store, data_dir, _data_dir_lock) = args.store.open().await?;
    let secret = platform_secret(args.platform_secret.as_deref(), &data_dir)?;
    let listener = bind(args.controller.controller_addr, "controller").await?;
    let rest_listener = bind_rest(&args.controller).await?;
    let controller_addr = listener.local_addr()?;
    let controller_url = format!("http://{controller_addr}");
    let objects = args.objects.open(&data_dir)?;
    // The registry's address first: the builder pushes images to it and
    // the runtime pulls them, both with the internal login.
    let registry = args.registry.bind(&secret).await?;
    let builder = args
        .builder
        .start(
            &data_dir,
            objects.clone(),
            &controller_url,
            secret.expose(),
            Some(registry.builder_login()),
            Builds {
                object_store: args.objects.object_store.as_deref(),
                on_kubernetes: matches!(args.runtime.runtime, RuntimeKind::Kubernetes),
                app_users: args.runtime.app_users,
            },
        )
        .await?;
    let builder_host = args.builder.advertised_host(builder.ssh_addr);
    let config = args
        .controller
        .config(builder_host.clone(), builder.ssh_addr.port());
    let logger = args.logger.start(logging::logger_token(&secret)).await?;
    let logs = logger.logger.clone();
    let scheduler = args
        .runtime
        .start(
            &data_dir,
            objects.clone(),
            logs.clone(),
            Some(registry.runtime_login()),
        )
        .await?;
    let xds_token = routing::xds_token(&secret);
    let admin_secret = secret.clone();
    let controller = Controller::new(store, scheduler.clone(), config, secret, logs.clone());
    let builder = Arc::new(builder);
    status::register_controller(&controller, &controller_url);
    status::register_builder(&controller, builder.ssh_addr);
    status::register_logger(&controller, &logger);
    let registry = args
        .registry
        .start(registry, objects.clone(), &controller, &data_dir)
        .await?;
    tokio::spawn(destroy::forget_destroyed_apps(
        controller.destroyed_apps(),
        Some(builder.clone()),
        registry.registry.clone(),
    ));
    status::register_objects(&controller, objects, args.objects.location(&data_dir));
    controller
        .sync_logger()
        .await
        .context("cannot give the logger the apps' drains")?;
    let router_settings = args.router.settings(
        &args.controller.platform_domain,
        args.controller.router_port,
        Some(builder.ssh_addr),
    )?;
    let (xds_addr, feed) = routing::start_feed(
        &controller,
        router_settings,
        args.router.xds_addr,
        xds_token.clone(),
    )
    .await?;
    status::register_feed(&controller, feed.clone(), xds_addr);
    let router = match args.router_kind {
        routing::RouterKind::Embedded => Some(
            routing::start_embedded_router(
                xds_addr,
                xds_token,
                logs,
                !args.no_io_uring,
                Duration::from_secs(5),
            )
            .await,
        ),
        routing::RouterKind::None => None,
    };
    if let Some(router) = &router {
        status::register_router(&controller, router.router());
    }
    let metrics_server = metrics::Sources {
        controller: Some(&controller),
        builder: Some(builder.as_ref()),
        logs: Some(logger.logger.metrics()),
        router: router.as_ref().map(|r| r.router().metrics()),
        feed: Some(&feed),
    }
    .serve(&args.metrics, metrics::Component::Controller)
    .await?;

    args.runtime.lock_down(&data_dir)?;
    println!("deis-workflow {} is up.", env!("CARGO_PKG_VERSION"));
    println!();
    println!("  Controller   {controller_url}");
    println!(
        "  Git remote   ssh://git@{builder_host}:{}/<app>.git",
        builder.ssh_addr.port()
    );
    println!(
        "  App URLs     http://<app>.{}:{}",
        args.controller.platform_domain, args.controller.router_port
    );
    println!("  Routing feed {xds_addr} (xDS; `deis-workflow envoy-bootstrap` for Envoy)");
    println!(
        "  Logs         Forward on {}, logger API {}",
        logger.forward.local_addr(),
        logger.grpc_addr
    );
    println!(
        "  Registry     {} (OCI; log in with your username and `deis auth:token`)",
        registry.addr
    );
    if let Some(rest) = &rest_listener {
        println!(
            "  REST API     http://{}/v2/ (also on the controller's address)",
            rest.local_addr()?
        );
    }
    println!("  Metrics      http://{}/metrics", metrics_server.addr);
    println!("  Data         {}", data_dir.display());
    if args.runtime.app_users {
        println!("  App users    each app and each build runs as a user of its own");
    } else if matches!(args.runtime.runtime, RuntimeKind::Local) && nix::unistd::geteuid().is_root() {
        println!(
            "  App users    off: apps and builds run as root, like the platform (--app-users isolates them)"
        );
    }
    println!();
    println!("Next:");
    println!("  deis register {controller_url}");
    println!("  deis create myapp");
    println!("  git push deis main");
    println!();
    println!("Press Ctrl-C to stop.");

    let admin = registry::AdminService::new(registry.registry.clone(), admin_secret);
    serve_controller(controller, listener, rest_listener, |router| {
        router.add_service(admin)
    })
    .await?;
    builder.shutdown();
    registry.shutdown().await;
    if let Some(router) = router {
        router.shutdown().await;
    }
    eprintln!("Stopping apps...");
    scheduler.shutdown().await;
    logger.shutdown().await;
    eprintln!("deis-workflow stopped.");
    Ok(())
}

async fn controller(args: ControllerArgs) -> Result<()> {
    let (store, data_dir, _data_dir_lock) = args.store.open().await?;
    let secret = platform_secret(args.platform_secret.as_deref(), &data_dir)?;
    let listener = bind(args.controller.controller_addr, "controller").await?;
    let rest_listener = bind_rest(&args.controller).await?;
    let config = args
        .controller
        .config(args.builder_host.clone(), args.builder_port);
    let objects = args.objects.open(&data_dir)?;
    // A logger of its own unless told where the platform's is.
    let log_metrics = deis_logger::LogMetrics::default();
    let logs: Arc<dyn LogService> = match &args.logger_url {
        Some(url) => logging::remote(url, &secret, &log_metrics)?,
        None => Arc::new(deis_logger::Logger::with_metrics(
            deis_logger::StoreOptions::default(),
            deis_logger::DrainOptions::default(),
            log_metrics.clone(),
        )),
    };
    // The controller serves the registry: it asks the controller's accounts
    // who may push and pull.
    let registry = args.registry.bind(&secret).await?;
    let scheduler = args
        .runtime
        .start(
            &data_dir,
            objects.clone(),
            logs.clone(),
            Some(registry.runtime_login()),
        )
        .await?;
    let xds_token = routing::xds_token(&secret);
    let admin_secret = secret.clone();
    let controller = Controller::new(store, scheduler.clone(), config, secret, logs);
    let registry = args
        .registry
        .start(registry, objects.clone(), &controller, &data_dir)
        .await?;
    // A builder in another process is not told yet (its data for the app
    // stays behind); the registry drops the app's images here.
    tokio::spawn(destroy::forget_destroyed_apps(
        controller.destroyed_apps(),
        None,
        registry.registry.clone(),
    ));
    status::register_controller(&controller, &format!("http://{}", listener.local_addr()?));
    status::register_objects(&controller, objects, args.objects.location(&data_dir));
    if let Err(e) = controller.sync_logger().await {
        tracing::warn!(error = %e, "the logger did not take the apps' drains yet");
    }
    let router_settings = args.router.settings(
        &args.controller.platform_domain,
        args.controller.router_port,
        None,
    )?;
    let (xds_addr, feed) =
        routing::start_feed(&controller, router_settings, args.router.xds_addr, xds_token).await?;
    status::register_feed(&controller, feed.clone(), xds_addr);
    let _metrics = metrics::Sources {
        controller: Some(&controller),
        logs: Some(&log_metrics),
        feed: Some(&feed),
        ..Default::default()
    }
    .serve(&args.metrics, metrics::Component::Controller)
    .await?;
    args.runtime.lock_down(&data_dir)?;
    tracing::info!(addr = %listener.local_addr()?, "controller listening");
    if let Some(rest) = &rest_listener {
        tracing::info!(addr = %rest.local_addr()?, "REST API listening");
    }
    let admin = registry::AdminService::new(registry.registry.clone(), admin_secret);
    serve_controller(controller, listener, rest_listener, |router| {
        router.add_service(admin)
    })
    .await?;
    registry.shutdown().await;
    scheduler.shutdown().await;
    Ok(())
}

async fn builder(args: BuilderArgs) -> Result<()> {
    let data_dir = ensure_data_dir(args.data_dir.as_deref())?;
    if args.app_users {
        open_to_app_users(&data_dir)?;
    }
    let secret = PlatformSecret::new(args.platform_secret.clone())?;
    let objects = args.objects.open(&data_dir)?;
    let login = args
        .registry_host
        .clone()
        .map(|host| registry::builder_login(host, &secret));
    let builder = args
        .builder
        .start(
            &data_dir,
            objects,
            &args.controller_url,
            secret.expose(),
            login,
            Builds {
                object_store: args.objects.object_store.as_deref(),
                on_kubernetes: false,
                app_users: args.app_users,
            },
        )
        .await?;
    let _metrics = metrics::Sources {
        builder: Some(&builder),
        ..Default::default()
    }
    .serve(&args.metrics, metrics::Component::Builder)
    .await?;
    shutdown_signal().await;
    builder.shutdown();
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    if let Command::Hook(HookCommandArgs::PreReceive) = cli.command {
        // git shows a hook's output to the pusher; keep logs out of it.
        std::process::exit(deis_builder::hook::run_pre_receive().await);
    }
    // Every TLS client (object storage, PostgreSQL) uses ring; install it
    // once, before any of them starts.
    let _ = rustls::crypto::ring::default_provider().install_default();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new("info,sqlx=warn,sea_orm=warn,russh=warn")
            }),
        )
        .with_writer(std::io::stderr)
        // Colour only on a terminal: a log file or journal gets plain text.
        .with_ansi(
            std::io::IsTerminal::is_terminal(&std::io::stderr()) && std::env::var_os("NO_COLOR").is_none(),
        )
        .init();
    if matches!(
        cli.command,
        Command::Up(_)
            | Command::Controller(_)
            | Command::Builder(_)
            | Command::Router(_)
            | Command::Logger(_)
    ) {
        raise_open_files_limit();
    }
    match cli.command {
        Command::Up(args) => up(args).await,
        Command::Controller(args) => controller(args).await,
        Command::Builder(args) => builder(args).await,
        Command::BuildSlug(args) => build_slug::build_slug(args).await,
        Command::SlugRun(args) => slug_run::slug_run(args).await,
        Command::EnvoyBootstrap(args) => routing::envoy_bootstrap(&args),
        Command::Router(args) => routing::router(args).await,
        Command::Logger(args) => logging::logger(args).await,
        Command::Status(args) => status::status(args).await,
        Command::Registry(command) => command.run().await,
        Command::Migrate(args) => {
            args.open().await?;
            println!("Database is up to date.");
            Ok(())
        }
        Command::Version => {
            println!(
                "deis-workflow {} ({})",
                env!("CARGO_PKG_VERSION"),
                env!("DEIS_GIT_SHA")
            );
            Ok(())
        }
        Command::Hook(_) => Ok(()),
    }
}

/// Servers hold a descriptor per connection: take the hard limit on open
/// files rather than the soft one many systems start processes with (1024),
/// as nginx's `worker_rlimit_nofile` or Go's runtime do.
fn raise_open_files_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return;
    };
    // An unlimited hard limit cannot be the soft one: the kernel caps both
    // at `fs.nr_open`.
    let most = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|text| text.trim().parse::<u64>().ok())
        .unwrap_or(1 << 20);
    let wanted = hard.min(most);
    if soft >= wanted {
        return;
    }
    match setrlimit(Resource::RLIMIT_NOFILE, wanted, hard) {
        Ok(()) => tracing::debug!(from = soft, to = wanted, "raised the open files limit"),
        Err(error) => tracing::warn!(
            %error,
            limit = soft,
            "cannot raise the open files limit: connections beyond it will wait"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn database_passwords_are_redacted() {
        assert_eq!(
            redact("postgres://deis:secret@db/deis"),
            "postgres://deis:***@db/deis"
        );
        assert_eq!(redact("sqlite:///tmp/x?mode=rwc"), "sqlite:///tmp/x?mode=rwc");
    }
}
