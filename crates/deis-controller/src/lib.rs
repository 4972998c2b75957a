//! The controller: the public `deis.v2` gRPC API, the internal API for other
//! components, authentication and authorization, and the release and deploy
//! logic around the [`Scheduler`] trait.
//!
//! Architecture invariants: every RPC authenticates and authorizes in its
//! handler before touching state (see `access`); domain errors become gRPC
//! statuses in exactly one place (`error`); the controller reaches processes
//! only through [`Scheduler`] and state only through [`Store`].

mod access;
mod convert;
mod error;
mod events;
mod metrics;
mod release;
mod routing;
mod serve;
mod services;
mod status;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use deis_auth::{LoginLimiter, LoginLimits, PlatformSecret};
use deis_scheduler::{LogService, Scheduler};
use deis_store::Store;
use tokio::net::TcpListener;

pub use access::{ImageScope, ImageVerdict};
pub use error::HTTP_STATUS_METADATA;
pub use metrics::GrpcMetricsLayer;
pub use services::{ApiRouter, PLATFORM_SECRET_METADATA, PUBLIC_PACKAGE, gateway};
pub use status::{ComponentCheck, ComponentReport, ComponentState};

/// The version of the platform (this build).
pub const PLATFORM_VERSION: &str = env!("CARGO_PKG_VERSION");
/// The Deis REST API version this controller is compatible with.
pub const API_VERSION: &str = "2.3";
/// The largest gRPC message the controller accepts.
pub const MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;

/// Who may register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegistrationMode {
    /// Anyone.
    Enabled,
    /// Nobody.
    Disabled,
    /// Administrators only (and the very first user).
    AdminOnly,
}

impl RegistrationMode {
    /// The name used in configuration and by Deis.
    pub fn as_str(self) -> &'static str {
        match self {
            RegistrationMode::Enabled => "enabled",
            RegistrationMode::Disabled => "disabled",
            RegistrationMode::AdminOnly => "admin_only",
        }
    }
}

impl std::str::FromStr for RegistrationMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "enabled" => Ok(RegistrationMode::Enabled),
            "disabled" => Ok(RegistrationMode::Disabled),
            "admin_only" => Ok(RegistrationMode::AdminOnly),
            other => Err(format!(
                "unknown registration mode {other:?}; use enabled, disabled or admin_only"
            )),
        }
    }
}

/// Settings of the controller.
#[derive(Clone, Debug)]
pub struct ControllerConfig {
    /// Apps answer at `<app>.<platform_domain>`.
    pub platform_domain: String,
    /// The scheme and port apps answer on, for the URLs shown to users
    /// (e.g. `http` and 8080; port 80 or 443 is left out of URLs).
    pub router_scheme: String,
    /// See `router_scheme`.
    pub router_port: u16,
    /// Where `git push` goes.
    pub builder_host: String,
    /// See `builder_host`.
    pub builder_port: u16,
    /// Who may register.
    pub registration_mode: RegistrationMode,
    /// App names nobody may use.
    pub reserved_names: Vec<String>,
    /// How long a release may take to become ready.
    pub deploy_timeout: Duration,
    /// How long `deis run` may take.
    pub run_timeout: Duration,
    /// Failed-login limits.
    pub login_limits: LoginLimits,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        ControllerConfig {
            platform_domain: "localhost".into(),
            router_scheme: "http".into(),
            router_port: 8080,
            builder_host: "127.0.0.1".into(),
            builder_port: 2222,
            registration_mode: RegistrationMode::AdminOnly,
            reserved_names: [
                "deis",
                "deis-builder",
                "deis-workflow",
                "deis-workflow-manager",
                "grafana",
            ]
            .into_iter()
            .map(String::from)
            .collect(),
            deploy_timeout: Duration::from_secs(120),
            run_timeout: Duration::from_secs(1200),
            login_limits: LoginLimits::default(),
        }
    }
}

pub(crate) struct Inner {
    /// Copies `deis pull` images into the platform's registry.
    pub(crate) image_importer: std::sync::OnceLock<Arc<dyn ImageImporter>>,
    pub(crate) store: Store,
    pub(crate) scheduler: Arc<dyn Scheduler>,
    pub(crate) config: ControllerConfig,
    pub(crate) secret: PlatformSecret,
    pub(crate) limiter: LoginLimiter,
    pub(crate) logs: Arc<dyn LogService>,
    routing: routing::Routing,
    component_checks: Mutex<Vec<status::ComponentCheck>>,
    app_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    pub(crate) destroyed: tokio::sync::broadcast::Sender<AppDestroyed>,
    pub(crate) metrics: Arc<metrics::ControllerMetrics>,
}

/// Copies an image from wherever it is into the platform's registry, so
/// `deis pull` releases run from there as Dockerfile builds do (Deis's
/// controller pulled, re-tagged and pushed with its Docker daemon).
#[tonic::async_trait]
pub trait ImageImporter: Send + Sync + 'static {
    /// Copies `source` to `<app>:<tag>` in the platform's registry, logging
    /// in to the source with `credentials` (from `deis registry:set`) when
    /// given. Errors are one sentence for the user.
    async fn import(
        &self,
        source: &str,
        credentials: Option<(String, String)>,
        app: &str,
        tag: &str,
    ) -> Result<(), String>;
}

/// An app was destroyed (its records are gone for good): components that
/// keep data of their own per app (the builder's repository and objects)
/// drop theirs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppDestroyed {
    /// The app's name.
    pub app: String,
}

/// Destroy events buffered for a slow subscriber before it lags.
const DESTROYED_BUFFER: usize = 1024;

/// The controller's shared state; cheap to clone.
#[derive(Clone)]
pub struct Controller {
    pub(crate) inner: Arc<Inner>,
}

impl Controller {
    /// A controller over a migrated store and a scheduler, with app logs in
    /// `logs` (the logger, which the runtime and router also write to).
    pub fn new(
        store: Store,
        scheduler: Arc<dyn Scheduler>,
        config: ControllerConfig,
        secret: PlatformSecret,
        logs: Arc<dyn LogService>,
    ) -> Self {
        let limiter = LoginLimiter::new(config.login_limits);
        Controller {
            inner: Arc::new(Inner {
                image_importer: std::sync::OnceLock::new(),
                store,
                scheduler,
                config,
                secret,
                limiter,
                logs,
                routing: routing::Routing::new(),
                component_checks: Mutex::new(Vec::new()),
                app_locks: Mutex::new(HashMap::new()),
                destroyed: tokio::sync::broadcast::channel(DESTROYED_BUFFER).0,
                metrics: Arc::new(metrics::ControllerMetrics::new()),
            }),
        }
    }

    /// Lets `deis pull` copy images into the platform's registry (without
    /// one, image builds run as given, which only a runtime with access to
    /// the image can do). Set once, at start.
    pub fn set_image_importer(&self, importer: Arc<dyn ImageImporter>) {
        let _ = self.inner.image_importer.set(importer);
    }

    /// Where app logs are kept (the logger).
    pub fn logs(&self) -> &Arc<dyn LogService> {
        &self.inner.logs
    }

    /// Every app destroyed from now on, sent once its records are deleted
    /// (the transaction committed). The controller depends on nobody who
    /// listens: `deis-workflow` wires listeners such as the builder.
    pub fn destroyed_apps(&self) -> tokio::sync::broadcast::Receiver<AppDestroyed> {
        self.inner.destroyed.subscribe()
    }

    /// Serialises changes to one app: releases get consecutive versions and
    /// deploys happen in version order. Other apps are not blocked.
    pub(crate) async fn lock_app(&self, app_uuid: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            let mut locks = self.inner.app_locks.lock().unwrap_or_else(|p| p.into_inner());
            locks.entry(app_uuid.to_owned()).or_default().clone()
        };
        lock.lock_owned().await
    }

    pub(crate) fn forget_app_lock(&self, app_uuid: &str) {
        let mut locks = self.inner.app_locks.lock().unwrap_or_else(|p| p.into_inner());
        locks.remove(app_uuid);
    }

    /// Re-applies every app's desired state to the scheduler, as Deis's
    /// `load_db_state_to_k8s` did, so a restarted platform converges.
    pub async fn converge(&self) {
        release::converge_all(self).await;
    }

    /// Gives the logger every app's drains (it keeps no state of its own);
    /// run at start and whenever a remote logger comes back.
    pub async fn sync_logger(&self) -> deis_core::Result<()> {
        services::sync_all_drains(self).await
    }

    /// The gRPC services with reflection and health (served with the REST
    /// gateway in front by [`Controller::serve_with`]).
    pub fn router(&self) -> services::ApiRouter {
        services::router(self)
    }

    /// Registers the controller's metrics (API calls, deploys, processes by
    /// state) for Prometheus.
    pub fn register_metrics(&self, registry: &mut prometheus_client::registry::Registry) {
        self.inner
            .metrics
            .register(registry, Arc::clone(&self.inner.scheduler));
    }

    /// Serves the API on `listener` until `shutdown` resolves.
    pub async fn serve(
        &self,
        listener: TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        self.serve_with(listener, shutdown, |router| router).await
    }

    /// Serves the API and the services `extend` adds beside it (those of
    /// components the controller does not depend on, such as the
    /// registry's administration) on `listener` until `shutdown` resolves:
    /// gRPC, and REST told apart by content type.
    pub async fn serve_with(
        &self,
        listener: TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
        extend: impl FnOnce(ApiRouter) -> ApiRouter,
    ) -> std::io::Result<()> {
        let service = services::layered(self, extend(self.router()), services::Surface::GrpcAndRest);
        serve::serve(service, listener, shutdown).await
    }

    /// Serves only the REST API (the gateway, through the same service
    /// stack) on `listener` until `shutdown` resolves: for a port of its
    /// own, e.g. behind an HTTP load balancer.
    pub async fn serve_rest(
        &self,
        listener: TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let service = services::layered(self, self.router(), services::Surface::RestOnly);
        serve::serve(service, listener, shutdown).await
    }
}

/// Binds `addr` and serves the controller there; returns the bound address
/// and the server task.
pub async fn spawn(
    controller: Controller,
    addr: SocketAddr,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<std::io::Result<()>>)> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let task = tokio::spawn(async move { controller.serve(listener, std::future::pending()).await });
    Ok((local, task))
}
