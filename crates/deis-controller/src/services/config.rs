//! ConfigService, BuildsService and ReleasesService: the release history.

use deis_core::{ConfigChanges, Error, Resource};
use deis_proto::v2::{
    CreateBuildRequest, CreateBuildResponse, GetBuildRequest, GetBuildResponse, GetConfigRequest,
    GetConfigResponse, GetReleaseRequest, GetReleaseResponse, ListBuildsRequest, ListBuildsResponse,
    ListReleasesRequest, ListReleasesResponse, RollbackReleaseRequest, RollbackReleaseResponse,
    SetConfigRequest, SetConfigResponse, builds_service_server::BuildsService,
    config_service_server::ConfigService, releases_service_server::ReleasesService,
};
use deis_store::NewBuild;
use tonic::{Request, Response, Status};

use super::Api;
use crate::access::Access;
use crate::convert::{self, page_request, paged, setting_changes};
use crate::error::respond;

/// Parses "v3" or "3".
fn parse_version(text: &str) -> deis_core::Result<i32> {
    let digits = text.strip_prefix('v').unwrap_or(text);
    digits
        .parse::<i32>()
        .ok()
        .filter(|v| *v > 0)
        .ok_or_else(|| Error::invalid(format!("{text} is not a release version; use vN, e.g. v3.")))
}

fn changes_of(req: &SetConfigRequest) -> deis_core::Result<ConfigChanges> {
    Ok(ConfigChanges {
        values: setting_changes("values", &req.values)?,
        memory: setting_changes("memory", &req.memory)?,
        cpu: setting_changes("cpu", &req.cpu)?,
        tags: setting_changes("tags", &req.tags)?,
        registry: setting_changes("registry", &req.registry)?,
        healthcheck: req
            .healthcheck
            .as_ref()
            .map(|s| serde_json::Value::Object(convert::struct_to_json(s))),
        termination_grace_period: setting_changes("termination_grace_period", &req.termination_grace_period)?,
    })
}

#[tonic::async_trait]
impl ConfigService for Api {
    async fn get_config(
        &self,
        request: Request<GetConfigRequest>,
    ) -> Result<Response<GetConfigResponse>, Status> {
        respond(
            async {
                let user = self.caller(&request).await?;
                let app = self.app_for(&user, &request.get_ref().app, Access::Read).await?;
                let state = self.inner.store.current_state(&app).await?;
                Ok(GetConfigResponse {
                    config: Some(convert::config(&state.config)),
                })
            }
            .await,
        )
    }

    async fn set_config(
        &self,
        request: Request<SetConfigRequest>,
    ) -> Result<Response<SetConfigResponse>, Status> {
        respond(
            async {
                let user = self.caller(&request).await?;
                let req = request.into_inner();
                let app = self.app_for(&user, &req.app, Access::Write).await?;
                let changes = changes_of(&req)?;
                if changes.is_empty() {
                    return Err(Error::conflict(deis_core::summary::changed_nothing(
                        &user.username,
                    )));
                }
                let (config, release) = self.change_config(&user.username, &app, &changes).await?;
                Ok(SetConfigResponse {
                    config: Some(convert::config(&config)),
                    release_version: release.version,
                })
            }
            .await,
        )
    }
}

#[tonic::async_trait]
impl BuildsService for Api {
    async fn list_builds(
        &self,
        request: Request<ListBuildsRequest>,
    ) -> Result<Response<ListBuildsResponse>, Status> {
        respond(
            async {
                let user = self.caller(&request).await?;
                let req = request.into_inner();
                let app = self.app_for(&user, &req.app, Access::Read).await?;
                let paging = page_request(req.limit, req.offset)?;
                let page = self.inner.store.list_builds(&app, paging).await?;
                Ok(paged(
                    &format!("/v2/apps/{}/builds", app.name),
                    paging,
                    &page,
                    convert::build,
                ))
            }
            .await,
        )
    }

    async fn get_build(
        &self,
        request: Request<GetBuildRequest>,
    ) -> Result<Response<GetBuildResponse>, Status> {
        respond(
            async {
                let user = self.caller(&request).await?;
                let req = request.into_inner();
                let app = self.app_for(&user, &req.app, Access::Read).await?;
                let build = self
                    .inner
                    .store
                    .find_build(&app, &req.uuid)
                    .await?
                    .ok_or_else(|| Error::no_such(Resource::Build, &req.uuid))?;
                Ok(GetBuildResponse {
                    build: Some(convert::build(&build)),
                })
            }
            .await,
        )
    }

    async fn create_build(
        &self,
        request: Request<CreateBuildRequest>,
    ) -> Result<Response<CreateBuildResponse>, Status> {
        respond(
            async {
                let user = self.caller(&request).await?;
                let req = request.into_inner();
                let app = self.app_for(&user, &req.app, Access::Write).await?;
                if req.image.trim().is_empty() {
                    return Err(Error::invalid("image is a required field").on_field("image"));
                }
                if req.image.len() > 1024 || req.image.chars().any(|c| c.is_control() || c.is_whitespace()) {
                    return Err(Error::invalid(
                        "image must be an image reference such as registry.example.com/app:v1.",
                    ));
                }
                let image = if req.sha.is_empty() {
                    self.0.import_image(&app, &req.image).await?
                } else {
                    req.image
                };
                let new = NewBuild {
                    image,
                    sha: req.sha,
                    procfile: req.procfile.into_iter().collect(),
                    dockerfile: req.dockerfile,
                };
                let (build, release) = self.publish_build(&user.username, &app, new).await?;
                Ok(CreateBuildResponse {
                    build: Some(convert::build(&build)),
                    release_version: release.version,
                })
            }
            .await,
        )
    }
}

#[tonic::async_trait]
impl ReleasesService for Api {
    async fn list_releases(
        &self,
        request: Request<ListReleasesRequest>,
    ) -> Result<Response<ListReleasesResponse>, Status> {
        respond(
            async {
                let user = self.caller(&request).await?;
                let req = request.into_inner();
                let app = self.app_for(&user, &req.app, Access::Read).await?;
                let paging = page_request(req.limit, req.offset)?;
                let page = self.inner.store.list_releases(&app, paging).await?;
                Ok(paged(
                    &format!("/v2/apps/{}/releases", app.name),
                    paging,
                    &page,
                    convert::release,
                ))
            }
            .await,
        )
    }

    async fn get_release(
        &self,
        request: Request<GetReleaseRequest>,
    ) -> Result<Response<GetReleaseResponse>, Status> {
        respond(
            async {
                let user = self.caller(&request).await?;
                let req = request.into_inner();
                let app = self.app_for(&user, &req.app, Access::Read).await?;
                let version = parse_version(&req.version)?;
                let release = self
                    .inner
                    .store
                    .find_release(&app, version)
                    .await?
                    .ok_or_else(|| Error::no_such(Resource::Release, format_args!("v{version}")))?;
                Ok(GetReleaseResponse {
                    release: Some(convert::release(&release)),
                })
            }
            .await,
        )
    }

    async fn rollback_release(
        &self,
        request: Request<RollbackReleaseRequest>,
    ) -> Result<Response<RollbackReleaseResponse>, Status> {
        respond(
            async {
                let user = self.caller(&request).await?;
                let req = request.into_inner();
                let app = self.app_for(&user, &req.app, Access::Write).await?;
                let version = self.rollback(&user.username, &app, req.version).await?;
                Ok(RollbackReleaseResponse { version })
            }
            .await,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_with_or_without_v() {
        assert_eq!(parse_version("v3").unwrap(), 3);
        assert_eq!(parse_version("12").unwrap(), 12);
        assert!(parse_version("v0").is_err());
        assert!(parse_version("latest").is_err());
    }
}
