//! The controller's internal API, as the builder uses it: resolve an SSH key
//! to a user, check the user may push to an app, read the app's config, and
//! publish a finished build as a release.

use std::collections::BTreeMap;
use std::time::Duration;

use deis_proto::internal::{
    Access, AuthorizeAppRequest, GetBuildConfigRequest, LookupKeyRequest, PublishBuildRequest,
    internal_service_client::InternalServiceClient,
};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

/// Adds the platform secret to every call.
#[derive(Clone)]
struct Secret(tonic::metadata::MetadataValue<tonic::metadata::Ascii>);

impl Interceptor for Secret {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
        request
            .metadata_mut()
            .insert("x-deis-platform-secret", self.0.clone());
        Ok(request)
    }
}

/// Why the controller refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    /// The user or key is unknown, or the app does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The user may not push to (or fetch from) the app.
    #[error("{0}")]
    Denied(String),
    /// The controller refused the build (deploy failed, bad Procfile...).
    #[error("{0}")]
    Rejected(String),
    /// The controller could not be reached.
    #[error("the controller is not reachable: {0}")]
    Unavailable(String),
}

impl From<Status> for ControllerError {
    fn from(status: Status) -> Self {
        let message = status.message().to_owned();
        match status.code() {
            Code::NotFound => ControllerError::NotFound(message),
            Code::PermissionDenied | Code::Unauthenticated => ControllerError::Denied(message),
            Code::Unavailable | Code::DeadlineExceeded | Code::Unknown => {
                ControllerError::Unavailable(message)
            }
            _ => ControllerError::Rejected(message),
        }
    }
}

/// A client of the controller's internal API.
#[derive(Clone)]
pub struct ControllerClient {
    inner: InternalServiceClient<InterceptedService<Channel, Secret>>,
}

impl std::fmt::Debug for ControllerClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ControllerClient")
    }
}

impl ControllerClient {
    /// A client of the controller at `url`; connects lazily, so the builder
    /// can start before the controller.
    pub fn new(url: &str, platform_secret: &str) -> Result<ControllerClient, ControllerError> {
        let endpoint = Endpoint::from_shared(url.to_owned())
            .map_err(|e| ControllerError::Unavailable(format!("bad controller URL {url}: {e}")))?
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true);
        let secret = platform_secret
            .parse()
            .map_err(|_| ControllerError::Unavailable("the platform secret is not valid ASCII".into()))?;
        let channel = endpoint.connect_lazy();
        Ok(ControllerClient {
            inner: InternalServiceClient::with_interceptor(channel, Secret(secret)),
        })
    }

    /// The user who owns the key with this fingerprint.
    pub async fn lookup_key(&self, fingerprint: &str) -> Result<String, ControllerError> {
        let request = LookupKeyRequest {
            fingerprint: fingerprint.to_owned(),
        };
        Ok(self
            .inner
            .clone()
            .lookup_key(request)
            .await?
            .into_inner()
            .username)
    }

    /// Checks that `username` may push to (`write`) or fetch from an app.
    pub async fn authorize(&self, username: &str, app: &str, write: bool) -> Result<(), ControllerError> {
        let access = if write { Access::Write } else { Access::Read };
        let request = AuthorizeAppRequest {
            username: username.to_owned(),
            app: app.to_owned(),
            access: access as i32,
        };
        self.inner.clone().authorize_app(request).await?;
        Ok(())
    }

    /// The app's config values for a build.
    pub async fn build_config(
        &self,
        username: &str,
        app: &str,
    ) -> Result<BTreeMap<String, String>, ControllerError> {
        let request = GetBuildConfigRequest {
            username: username.to_owned(),
            app: app.to_owned(),
        };
        let config = self
            .inner
            .clone()
            .get_build_config(request)
            .await?
            .into_inner()
            .config;
        Ok(config.map(|c| c.values.into_iter().collect()).unwrap_or_default())
    }

    /// Records a build and deploys it; returns the new release's version and
    /// the app's URL.
    pub async fn publish_build(
        &self,
        username: &str,
        app: &str,
        image: &str,
        sha: &str,
        procfile: &BTreeMap<String, String>,
        dockerfile: bool,
    ) -> Result<(i32, String), ControllerError> {
        let request = PublishBuildRequest {
            username: username.to_owned(),
            app: app.to_owned(),
            image: image.to_owned(),
            sha: sha.to_owned(),
            procfile: procfile.clone().into_iter().collect(),
            // Deis's flag for Dockerfile builds.
            dockerfile: if dockerfile { "true".into() } else { String::new() },
        };
        let published = self.inner.clone().publish_build(request).await?.into_inner();
        Ok((published.version, published.url))
    }
}
