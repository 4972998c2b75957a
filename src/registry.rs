//! The container registry in `up`: the OCI Distribution API
//! (`deis-registry`) on the platform's object store, with the platform's
//! accounts. A user logs in as `docker login` does, with their username and
//! the API token `deis login` stored as the password, and may pull the
//! images of apps they can read and push those of apps they can change
//! (the repository's first path component is the app). Platform components
//! log in as `deis` with a password derived from the platform secret.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use async_trait::async_trait;
use clap::Args;
use deis_auth::PlatformSecret;
use deis_builder::ImageRegistry;
use deis_controller::{Controller, ImageScope, ImageVerdict};
use deis_images as images;
use deis_objects::Objects;
use deis_proto::registry::registry_admin_service_client::RegistryAdminServiceClient;
use deis_proto::registry::registry_admin_service_server::{
    RegistryAdminService as RegistryAdmin, RegistryAdminServiceServer as AdminServiceServer,
};
use deis_proto::registry::{
    CollectGarbageRequest, CollectGarbageResponse, DeleteTagRequest, DeleteTagResponse,
    ListRepositoriesRequest, ListRepositoriesResponse, ListTagsRequest, ListTagsResponse,
};
use deis_registry::{
    Action, Credentials, Decision, Registry, RegistryAuth, RegistryOptions, Scope, TokenOptions,
};
use deis_runtime::ContainerSettings;
use subtle::ConstantTimeEq;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::status::PlatformArgs;

/// The username platform components log in with.
const INTERNAL_USER: &str = "deis";

/// How long a blob must have been unreferenced before garbage collection
/// removes it: longer than any push takes between its blobs and manifest.
const GC_GRACE: Duration = Duration::from_secs(3600);

#[derive(Args, Clone)]
pub(crate) struct RegistryOpts {
    /// Address of the container registry (the OCI Distribution API, for docker, podman and skopeo).
    #[arg(long, env = "DEIS_REGISTRY_ADDR", default_value = "127.0.0.1:5000")]
    registry_addr: SocketAddr,
    /// Hours between the registry's garbage collections (0: never).
    #[arg(long, env = "DEIS_REGISTRY_GC_HOURS", default_value_t = 24)]
    registry_gc_hours: u64,
}

/// The password of [`INTERNAL_USER`].
fn internal_password(secret: &PlatformSecret) -> String {
    secret.derive("registry")
}

/// Where the platform's own components reach the registry listening on
/// `addr`: an unspecified address means this machine's loopback.
fn local_host(addr: SocketAddr) -> String {
    let ip = if addr.ip().is_unspecified() {
        std::net::IpAddr::from([127, 0, 0, 1])
    } else {
        addr.ip()
    };
    SocketAddr::new(ip, addr.port()).to_string()
}

/// A registry serving until [`RunningRegistry::shutdown`].
pub(crate) struct RunningRegistry {
    pub(crate) addr: SocketAddr,
    pub(crate) registry: Registry,
    stop: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
    collector: Option<JoinHandle<()>>,
}

/// The registry's address, bound before the components that push to and
/// pull from it start, and the internal login they use.
pub(crate) struct BoundRegistry {
    listener: tokio::net::TcpListener,
    /// Where this machine's components reach it (`host:port`).
    pub(crate) host: String,
    password: String,
    token_key: String,
}

/// The builder's login to the registry at `host`.
pub(crate) fn builder_login(host: String, secret: &PlatformSecret) -> ImageRegistry {
    builder_login_with(host, internal_password(secret))
}

fn builder_login_with(host: String, password: String) -> ImageRegistry {
    ImageRegistry {
        host,
        username: INTERNAL_USER.into(),
        password,
        // The platform's registry speaks plain HTTP; put a TLS proxy in
        // front of it to expose it beyond this machine.
        insecure: true,
    }
}

impl BoundRegistry {
    /// The builder's login (Dockerfile builds push here).
    pub(crate) fn builder_login(&self) -> ImageRegistry {
        builder_login_with(self.host.clone(), self.password.clone())
    }

    /// The runtime's login (image releases are pulled from here).
    pub(crate) fn runtime_login(&self) -> ContainerSettings {
        ContainerSettings {
            registry: self.host.clone(),
            username: INTERNAL_USER.into(),
            password: self.password.clone(),
            insecure: true,
        }
    }
}

impl RegistryOpts {
    /// Binds the registry's address.
    pub(crate) async fn bind(&self, secret: &PlatformSecret) -> Result<BoundRegistry> {
        let listener = tokio::net::TcpListener::bind(self.registry_addr)
            .await
            .with_context(|| {
                format!(
                    "cannot listen on {} for the registry; is another registry running? Use --registry-addr to pick another address",
                    self.registry_addr
                )
            })?;
        Ok(BoundRegistry {
            host: local_host(listener.local_addr()?),
            listener,
            password: internal_password(secret),
            token_key: secret.derive("registry-token"),
        })
    }

    /// Serves the registry with the controller's accounts, reports it in
    /// `deis-workflow status`, and lets `deis pull` copy images into it.
    pub(crate) async fn start(
        &self,
        bound: BoundRegistry,
        objects: Objects,
        controller: &Controller,
        data_dir: &std::path::Path,
    ) -> Result<RunningRegistry> {
        let BoundRegistry {
            listener,
            host,
            password: internal_password,
            token_key,
        } = bound;
        controller.set_image_importer(Arc::new(SkopeoImporter {
            registry: host,
            password: internal_password.clone(),
            scratch: data_dir.join("registry-import"),
        }));
        let addr = listener.local_addr()?;
        crate::status::register_registry(controller, addr);
        let auth = PlatformAuth {
            controller: controller.clone(),
            internal_password,
        };
        // Docker's token flow (clients trade their login for a short-lived
        // bearer token); Basic credentials keep working on every request.
        let options = RegistryOptions {
            token: Some(TokenOptions::new(token_key.into_bytes())),
            ..RegistryOptions::default()
        };
        let registry = Registry::with_options(objects, Arc::new(auth), options);
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn({
            let registry = registry.clone();
            async move {
                registry
                    .serve(listener, async {
                        let _ = stopped.await;
                    })
                    .await
            }
        });
        let collector = (self.registry_gc_hours > 0).then(|| {
            tokio::spawn(collect_garbage_every(
                registry.clone(),
                Duration::from_secs(self.registry_gc_hours.saturating_mul(3600)),
            ))
        });
        tracing::info!(%addr, "registry listening");
        Ok(RunningRegistry {
            addr,
            registry,
            stop,
            task,
            collector,
        })
    }
}

/// Collects the registry's garbage every `period`, the first time one
/// period after start.
async fn collect_garbage_every(registry: Registry, period: Duration) {
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        match registry.collect_garbage(GC_GRACE).await {
            Ok(report) => tracing::info!(
                removed = report.blobs_removed,
                bytes = report.bytes_removed,
                uploads = report.uploads_removed,
                kept = report.blobs_kept,
                "registry garbage collected"
            ),
            Err(e) => tracing::warn!(error = %e, "registry garbage collection failed; retrying next period"),
        }
    }
}

impl RunningRegistry {
    /// Stops accepting, finishes requests in flight.
    pub(crate) async fn shutdown(self) {
        if let Some(collector) = &self.collector {
            collector.abort();
        }
        let _ = self.stop.send(());
        match self.task.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "the registry stopped with an error"),
            Err(e) => tracing::warn!(error = %e, "the registry task failed"),
        }
    }
}

/// Registry access decided by the controller's accounts and app roles.
struct PlatformAuth {
    controller: Controller,
    internal_password: String,
}

#[async_trait]
impl RegistryAuth for PlatformAuth {
    async fn check(&self, credentials: Option<&Credentials>, scope: Scope<'_>) -> Decision {
        // Basic only: there is no token service for the Bearer flow.
        let Some(Credentials::Basic { username, password }) = credentials else {
            return Decision::Unauthenticated;
        };
        if username == INTERNAL_USER {
            let matches = password.as_bytes().ct_eq(self.internal_password.as_bytes());
            return if bool::from(matches) {
                Decision::Allow
            } else {
                Decision::Unauthenticated
            };
        }
        let scope = match scope {
            Scope::Registry => ImageScope::Login,
            Scope::Catalog => ImageScope::Catalog,
            Scope::Repository { name, action } => {
                let app = name.split('/').next().unwrap_or(name);
                match action {
                    Action::Pull => ImageScope::Pull(app),
                    Action::Push | Action::Delete => ImageScope::Push(app),
                }
            }
        };
        match self.controller.image_access(username, password, scope).await {
            Ok(ImageVerdict::Allowed) => Decision::Allow,
            Ok(ImageVerdict::Denied) => Decision::Deny,
            Ok(ImageVerdict::BadCredentials) => Decision::Unauthenticated,
            Err(e) => {
                // Refusing is the safe answer when the database cannot say.
                tracing::warn!(error = %e, "registry access could not be checked");
                Decision::Deny
            }
        }
    }
}

/// `deis.registry.v1.RegistryAdminService` for operators, on the
/// controller's port; callers present the platform secret.
pub(crate) struct AdminService {
    registry: Registry,
    secret: PlatformSecret,
}

impl AdminService {
    pub(crate) fn new(registry: Registry, secret: PlatformSecret) -> AdminServiceServer<AdminService> {
        AdminServiceServer::new(AdminService { registry, secret })
    }

    fn require_platform<T>(&self, request: &tonic::Request<T>) -> Result<(), tonic::Status> {
        let presented = request
            .metadata()
            .get(deis_controller::PLATFORM_SECRET_METADATA)
            .and_then(|v| v.to_str().ok());
        match presented {
            Some(secret) if self.secret.matches(secret) => Ok(()),
            Some(_) => Err(tonic::Status::permission_denied(
                "The platform secret does not match.",
            )),
            None => Err(tonic::Status::unauthenticated(
                "This API is for platform operators only; present the platform secret.",
            )),
        }
    }
}

/// The one mapping of registry errors to gRPC statuses.
fn status_of(error: deis_registry::RegistryError) -> tonic::Status {
    use deis_registry::RegistryError as E;
    match error {
        E::NameUnknown | E::ManifestUnknown | E::BlobUnknown(_) | E::NotFound => {
            tonic::Status::not_found(error.to_string())
        }
        E::NameInvalid(_) | E::ManifestInvalid(_) | E::DigestInvalid(_) => {
            tonic::Status::invalid_argument(error.to_string())
        }
        other => tonic::Status::internal(other.to_string()),
    }
}

#[tonic::async_trait]
impl RegistryAdmin for AdminService {
    async fn list_repositories(
        &self,
        request: tonic::Request<ListRepositoriesRequest>,
    ) -> Result<tonic::Response<ListRepositoriesResponse>, tonic::Status> {
        self.require_platform(&request)?;
        let repositories = self.registry.list_repositories().await.map_err(status_of)?;
        Ok(tonic::Response::new(ListRepositoriesResponse { repositories }))
    }

    async fn list_tags(
        &self,
        request: tonic::Request<ListTagsRequest>,
    ) -> Result<tonic::Response<ListTagsResponse>, tonic::Status> {
        self.require_platform(&request)?;
        let tags = self
            .registry
            .list_tags(&request.get_ref().repository)
            .await
            .map_err(status_of)?;
        Ok(tonic::Response::new(ListTagsResponse { tags }))
    }

    async fn delete_tag(
        &self,
        request: tonic::Request<DeleteTagRequest>,
    ) -> Result<tonic::Response<DeleteTagResponse>, tonic::Status> {
        self.require_platform(&request)?;
        let DeleteTagRequest { repository, tag } = request.get_ref();
        if self
            .registry
            .resolve_tag(repository, tag)
            .await
            .map_err(status_of)?
            .is_none()
        {
            return Err(tonic::Status::not_found(format!(
                "{repository} has no tag {tag}."
            )));
        }
        self.registry
            .delete_tag(repository, tag)
            .await
            .map_err(status_of)?;
        Ok(tonic::Response::new(DeleteTagResponse {}))
    }

    async fn collect_garbage(
        &self,
        request: tonic::Request<CollectGarbageRequest>,
    ) -> Result<tonic::Response<CollectGarbageResponse>, tonic::Status> {
        self.require_platform(&request)?;
        let grace = match request.get_ref().grace_seconds {
            0 => GC_GRACE,
            seconds => Duration::from_secs(seconds),
        };
        let report = self.registry.collect_garbage(grace).await.map_err(status_of)?;
        let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        Ok(tonic::Response::new(CollectGarbageResponse {
            repositories: count(report.repositories),
            manifests: count(report.manifests),
            blobs_kept: count(report.blobs_kept),
            blobs_removed: count(report.blobs_removed),
            bytes_removed: report.bytes_removed,
            uploads_removed: count(report.uploads_removed),
        }))
    }
}

/// `deis-workflow registry ...`: the running platform's registry.
#[derive(clap::Subcommand, Clone)]
pub(crate) enum RegistryCommand {
    /// List every repository
    Repos {
        #[command(flatten)]
        platform: PlatformArgs,
    },
    /// List a repository's tags
    Tags {
        /// The repository (an app's name)
        repository: String,
        #[command(flatten)]
        platform: PlatformArgs,
    },
    /// Remove a tag
    DeleteTag {
        /// The repository (an app's name)
        repository: String,
        /// The tag
        tag: String,
        #[command(flatten)]
        platform: PlatformArgs,
    },
    /// Delete the blobs no image references, now
    Gc {
        /// Keep blobs unreferenced for less than this many seconds [default: 3600]
        #[arg(long, default_value_t = 0, hide_default_value = true)]
        grace_seconds: u64,
        #[command(flatten)]
        platform: PlatformArgs,
    },
}

impl RegistryCommand {
    /// Runs the command against the platform's registry; prints the answer.
    pub(crate) async fn run(self) -> Result<()> {
        let platform = match &self {
            RegistryCommand::Repos { platform }
            | RegistryCommand::Tags { platform, .. }
            | RegistryCommand::DeleteTag { platform, .. }
            | RegistryCommand::Gc { platform, .. } => platform,
        };
        let client = platform.connect().await?;
        let mut admin = RegistryAdminServiceClient::new(client.channel.clone());
        let failed = |status: tonic::Status| anyhow::anyhow!("{}", status.message());
        match self {
            RegistryCommand::Repos { .. } => {
                let answer = admin
                    .list_repositories(client.request(ListRepositoriesRequest {}))
                    .await
                    .map_err(failed)?;
                for repository in answer.into_inner().repositories {
                    println!("{repository}");
                }
            }
            RegistryCommand::Tags { repository, .. } => {
                let answer = admin
                    .list_tags(client.request(ListTagsRequest { repository }))
                    .await
                    .map_err(failed)?;
                for tag in answer.into_inner().tags {
                    println!("{tag}");
                }
            }
            RegistryCommand::DeleteTag { repository, tag, .. } => {
                admin
                    .delete_tag(client.request(DeleteTagRequest {
                        repository: repository.clone(),
                        tag: tag.clone(),
                    }))
                    .await
                    .map_err(failed)?;
                println!("Deleted {repository}:{tag}.");
            }
            RegistryCommand::Gc { grace_seconds, .. } => {
                let report = admin
                    .collect_garbage(client.request(CollectGarbageRequest { grace_seconds }))
                    .await
                    .map_err(failed)?
                    .into_inner();
                println!(
                    "Removed {} blobs ({} bytes) and {} abandoned uploads; kept {} blobs (read {} manifests in {} repositories).",
                    report.blobs_removed,
                    report.bytes_removed,
                    report.uploads_removed,
                    report.blobs_kept,
                    report.manifests,
                    report.repositories
                );
            }
        }
        Ok(())
    }
}

/// `deis pull`: copies images into the registry with skopeo, which speaks
/// every registry's auth and picks this machine's platform from a
/// multi-platform index.
struct SkopeoImporter {
    /// The registry's `host:port`.
    registry: String,
    /// The internal login's password.
    password: String,
    /// Where credential files live while a copy runs.
    scratch: std::path::PathBuf,
}

/// The registry host of an image reference (`docker.io` when it names none).
fn registry_of(reference: &str) -> &str {
    match reference.split_once('/') {
        Some((first, _)) if first.contains(['.', ':']) || first == "localhost" => first,
        _ => "docker.io",
    }
}

/// Plain HTTP only for registries on this machine.
fn is_loopback(host: &str) -> bool {
    let name = host.rsplit_once(':').map_or(host, |(name, _)| name);
    name == "localhost" || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[async_trait]
impl deis_controller::ImageImporter for SkopeoImporter {
    async fn import(
        &self,
        source: &str,
        credentials: Option<(String, String)>,
        app: &str,
        tag: &str,
    ) -> Result<(), String> {
        let Some(skopeo) = images::find_program("skopeo") else {
            return Err(
                "deis pull needs skopeo on the platform's machine to copy images: install it (apt-get install skopeo)."
                    .into(),
            );
        };
        tokio::fs::create_dir_all(&self.scratch)
            .await
            .map_err(|e| format!("cannot create {}: {e}", self.scratch.display()))?;
        let id = uuid::Uuid::new_v4().simple().to_string();
        let dest_auth = self.scratch.join(format!("dest-{id}.json"));
        let src_auth = self.scratch.join(format!("src-{id}.json"));
        let mut files = vec![dest_auth.clone()];
        let written = (|| {
            images::write_private_file(
                &dest_auth,
                &images::registry_auth_json(&self.registry, INTERNAL_USER, &self.password),
            )?;
            if let Some((user, password)) = &credentials {
                images::write_private_file(
                    &src_auth,
                    &images::registry_auth_json(registry_of(source), user, password),
                )?;
            }
            std::io::Result::Ok(())
        })();
        let mut command = tokio::process::Command::new(skopeo);
        command
            .args(["copy", "--quiet", "--retry-times", "2"])
            .arg(format!("--src-tls-verify={}", !is_loopback(registry_of(source))))
            .arg("--dest-tls-verify=false")
            .arg("--dest-authfile")
            .arg(&dest_auth);
        if credentials.is_some() {
            command.arg("--src-authfile").arg(&src_auth);
            files.push(src_auth.clone());
        } else {
            command.arg("--src-no-creds");
        }
        let output = match written {
            Ok(()) => command
                .arg(format!("docker://{source}"))
                .arg(format!("docker://{}/{app}:{tag}", self.registry))
                .stdin(std::process::Stdio::null())
                .kill_on_drop(true)
                .output()
                .await
                .map_err(|e| format!("cannot run skopeo: {e}")),
            Err(e) => Err(format!("cannot write registry credentials: {e}")),
        };
        for file in files {
            let _ = tokio::fs::remove_file(file).await;
        }
        let output = output?;
        if output.status.success() {
            Ok(())
        } else {
            let detail = String::from_utf8_lossy(&output.stderr);
            let detail = detail.trim().lines().last().unwrap_or("skopeo failed");
            Err(format!("Cannot pull the image {source}: {detail}"))
        }
    }
}

#[cfg(test)]
mod image_tests {
    use super::*;

    #[test]
    fn registries_of_references() {
        assert_eq!(registry_of("nginx:latest"), "docker.io");
        assert_eq!(registry_of("library/nginx"), "docker.io");
        assert_eq!(registry_of("127.0.0.1:5000/app:v1"), "127.0.0.1:5000");
        assert_eq!(registry_of("ghcr.io/o/app@sha256:ab"), "ghcr.io");
        assert_eq!(registry_of("localhost/app"), "localhost");
        assert!(is_loopback("127.0.0.1:5000"));
        assert!(is_loopback("localhost"));
        assert!(!is_loopback("ghcr.io"));
    }
}
