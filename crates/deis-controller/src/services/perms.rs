//! PermsService: collaborators.

use deis_core::Error;
use deis_proto::v2::{
    GrantAppPermRequest, GrantAppPermResponse, ListAppPermsRequest, ListAppPermsResponse,
    RevokeAppPermRequest, RevokeAppPermResponse, perms_service_server::PermsService,
};
use deis_store::StoreError;
use tonic::{Request, Response, Status};

use super::Api;
use crate::access::{Access, Role};
use crate::error::respond;

#[tonic::async_trait]
impl PermsService for Api {
    async fn list_app_perms(
        &self,
        request: Request<ListAppPermsRequest>,
    ) -> Result<Response<ListAppPermsResponse>, Status> {
        respond(
            async {
                let user = self.caller(&request).await?;
                let app = self.app_for(&user, &request.get_ref().app, Access::Read).await?;
                Ok(ListAppPermsResponse {
                    users: self.inner.store.list_collaborators(&app).await?,
                })
            }
            .await,
        )
    }

    async fn grant_app_perm(
        &self,
        request: Request<GrantAppPermRequest>,
    ) -> Result<Response<GrantAppPermResponse>, Status> {
        respond(
            async {
                let user = self.caller(&request).await?;
                let req = request.into_inner();
                let app = self.app_for(&user, &req.app, Access::Own).await?;
                let target = self.find_user(&req.username).await?;
                if target.uuid == app.owner_uuid {
                    return Err(Error::invalid(format!(
                        "{} already owns {}.",
                        target.username, app.name
                    )));
                }
                match self.inner.store.add_collaborator(&app, &target).await {
                    Err(StoreError::Duplicate(_)) => {
                        return Err(Error::already_exists(format!(
                            "{} is already a collaborator on {}.",
                            target.username, app.name
                        )));
                    }
                    other => other?,
                }
                self.inner.event(
                    &app.name,
                    &format!("{} added {} as a collaborator", user.username, target.username),
                );
                Ok(GrantAppPermResponse {})
            }
            .await,
        )
    }

    async fn revoke_app_perm(
        &self,
        request: Request<RevokeAppPermRequest>,
    ) -> Result<Response<RevokeAppPermResponse>, Status> {
        respond(
            async {
                let user = self.caller(&request).await?;
                let req = request.into_inner();
                let app = self.find_app(&req.app).await?;
                let role = self.role(&user, &app).await?;
                // Collaborators may remove themselves, and only themselves.
                let allowed = match role {
                    Role::Admin | Role::Owner => true,
                    Role::Collaborator => req.username == user.username,
                    Role::Stranger => false,
                };
                if !allowed {
                    return Err(Error::permission_denied(
                        "You do not have permission to perform this action.",
                    ));
                }
                let target = self.find_user(&req.username).await?;
                if !self.inner.store.remove_collaborator(&app, &target).await? {
                    return Err(Error::not_found(format!(
                        "{} is not a collaborator on {}.",
                        target.username, app.name
                    )));
                }
                self.inner.event(
                    &app.name,
                    &format!("{} removed {} as a collaborator", user.username, target.username),
                );
                Ok(RevokeAppPermResponse {})
            }
            .await,
        )
    }
}
