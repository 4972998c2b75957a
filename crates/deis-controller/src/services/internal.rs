//! InternalService: the controller's API for the builder and the runtime.
//! Only the platform secret opens it; user tokens are not looked at here.

use deis_core::Error;
use deis_proto::internal::{
    Access as WireAccess, AuthorizeAppRequest, AuthorizeAppResponse, ComponentState as WireState,
    ComponentStatus, GetBuildConfigRequest, GetBuildConfigResponse, GetPlatformStatusRequest,
    GetPlatformStatusResponse, LookupKeyRequest, LookupKeyResponse, PublishBuildRequest,
    PublishBuildResponse, internal_service_server::InternalService,
};
use deis_store::{App, NewBuild, User};
use tonic::{Request, Response, Status};

use super::Api;
use crate::access::Access;
use crate::convert;
use crate::error::respond;

/// Metadata key carrying the platform secret.
pub const PLATFORM_SECRET_METADATA: &str = "x-deis-platform-secret";

impl Api {
    fn require_platform<T>(&self, request: &Request<T>) -> deis_core::Result<()> {
        let presented = request
            .metadata()
            .get(PLATFORM_SECRET_METADATA)
            .and_then(|v| v.to_str().ok());
        match presented {
            Some(secret) if self.inner.secret.matches(secret) => Ok(()),
            Some(_) => Err(Error::permission_denied("The platform secret does not match.")),
            None => Err(Error::unauthenticated(
                "This API is for platform components only.",
            )),
        }
    }

    /// The active user and the app, after checking the user's access.
    async fn user_and_app(
        &self,
        username: &str,
        app: &str,
        access: Access,
    ) -> deis_core::Result<(User, App)> {
        let user = self.find_user(username).await?;
        if !user.is_active {
            return Err(Error::permission_denied(format!(
                "{username} is not an active user."
            )));
        }
        let app = self.app_for(&user, app, access).await?;
        Ok((user, app))
    }
}

fn component_status(report: crate::ComponentReport) -> ComponentStatus {
    ComponentStatus {
        name: report.name,
        version: report.version,
        address: report.address,
        state: match report.state {
            crate::ComponentState::Ok => WireState::Ok,
            crate::ComponentState::Degraded => WireState::Degraded,
            crate::ComponentState::Down => WireState::Down,
        }
        .into(),
        warnings: report.warnings,
    }
}

#[tonic::async_trait]
impl InternalService for Api {
    async fn get_platform_status(
        &self,
        request: Request<GetPlatformStatusRequest>,
    ) -> Result<Response<GetPlatformStatusResponse>, Status> {
        respond(
            async {
                self.require_platform(&request)?;
                Ok(GetPlatformStatusResponse {
                    platform_version: env!("CARGO_PKG_VERSION").to_owned(),
                    components: self
                        .platform_status()
                        .await
                        .into_iter()
                        .map(component_status)
                        .collect(),
                })
            }
            .await,
        )
    }

    async fn lookup_key(
        &self,
        request: Request<LookupKeyRequest>,
    ) -> Result<Response<LookupKeyResponse>, Status> {
        respond(
            async {
                self.require_platform(&request)?;
                let fingerprint = &request.get_ref().fingerprint;
                let (key, user) = self
                    .inner
                    .store
                    .find_key_by_fingerprint(fingerprint)
                    .await?
                    .filter(|(_, user)| user.is_active)
                    .ok_or_else(|| Error::not_found("No user has this SSH key."))?;
                Ok(LookupKeyResponse {
                    username: user.username,
                    key_id: key.name,
                })
            }
            .await,
        )
    }

    async fn authorize_app(
        &self,
        request: Request<AuthorizeAppRequest>,
    ) -> Result<Response<AuthorizeAppResponse>, Status> {
        respond(
            async {
                self.require_platform(&request)?;
                let req = request.into_inner();
                let access = match WireAccess::try_from(req.access) {
                    Ok(WireAccess::Read) => Access::Read,
                    Ok(WireAccess::Write) => Access::Write,
                    _ => return Err(Error::invalid("access must be READ or WRITE")),
                };
                let (_, app) = self.user_and_app(&req.username, &req.app, access).await?;
                Ok(AuthorizeAppResponse { app_uuid: app.uuid })
            }
            .await,
        )
    }

    async fn get_build_config(
        &self,
        request: Request<GetBuildConfigRequest>,
    ) -> Result<Response<GetBuildConfigResponse>, Status> {
        respond(
            async {
                self.require_platform(&request)?;
                let req = request.into_inner();
                let (_, app) = self.user_and_app(&req.username, &req.app, Access::Write).await?;
                let state = self.inner.store.current_state(&app).await?;
                Ok(GetBuildConfigResponse {
                    config: Some(convert::config(&state.config)),
                })
            }
            .await,
        )
    }

    async fn publish_build(
        &self,
        request: Request<PublishBuildRequest>,
    ) -> Result<Response<PublishBuildResponse>, Status> {
        respond(
            async {
                self.require_platform(&request)?;
                let req = request.into_inner();
                let (user, app) = self.user_and_app(&req.username, &req.app, Access::Write).await?;
                let new = NewBuild {
                    image: req.image,
                    sha: req.sha,
                    procfile: req.procfile.into_iter().collect(),
                    dockerfile: req.dockerfile,
                };
                let (_, release) = self.0.publish_build(&user.username, &app, new).await?;
                Ok(PublishBuildResponse {
                    version: release.version,
                    url: self.app_url(&app.name),
                })
            }
            .await,
        )
    }
}
