//! The container registry in `up`: the OCI Distribution API
//! (`deis-registry`) on the platform's object store, with the platform's
//! accounts. A user logs in as `docker login` does, with their username and
//! the API token `deis login` stored as the password, and may pull the
//! images of apps they can read and push those of apps they can change
//! (the repository's first path component is the app). Platform components
//! log in as `deis` with a password derived from the platform secret.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result};
use async_trait::async_trait;
use clap::Args;
use deis_auth::PlatformSecret;
use deis_controller::{Controller, ImageScope, ImageVerdict};
use deis_objects::Objects;
use deis_registry::{Action, Credentials, Decision, Registry, RegistryAuth, Scope};
use subtle::ConstantTimeEq;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The username platform components log in with.
pub(crate) const INTERNAL_USER: &str = "deis";

#[derive(Args, Clone)]
pub(crate) struct RegistryOpts {
    /// Address of the container registry (the OCI Distribution API, for docker, podman and skopeo).
    #[arg(long, env = "DEIS_REGISTRY_ADDR", default_value = "127.0.0.1:5000")]
    registry_addr: SocketAddr,
}

/// The password of [`INTERNAL_USER`].
pub(crate) fn internal_password(secret: &PlatformSecret) -> String {
    secret.derive("registry")
}

/// A registry serving until [`RunningRegistry::shutdown`].
pub(crate) struct RunningRegistry {
    pub(crate) addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
}

impl RegistryOpts {
    /// Binds and serves the registry.
    pub(crate) async fn start(
        &self,
        objects: Objects,
        controller: Controller,
        internal_password: String,
    ) -> Result<RunningRegistry> {
        let listener = tokio::net::TcpListener::bind(self.registry_addr)
            .await
            .with_context(|| {
                format!(
                    "cannot listen on {} for the registry; is another registry running? Use --registry-addr to pick another address",
                    self.registry_addr
                )
            })?;
        let addr = listener.local_addr()?;
        let auth = PlatformAuth {
            controller,
            internal_password,
        };
        let registry = Registry::new(objects, Arc::new(auth));
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            registry
                .serve(listener, async {
                    let _ = stopped.await;
                })
                .await
        });
        tracing::info!(%addr, "registry listening");
        Ok(RunningRegistry { addr, stop, task })
    }
}

impl RunningRegistry {
    /// Stops accepting, finishes requests in flight.
    pub(crate) async fn shutdown(self) {
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
