//! AppsService and PsService: apps, one-off commands, logs and processes.

use std::collections::BTreeMap;

use deis_core::{Error, names, summary, validate};
use deis_proto::v2::{
    CreateAppRequest, CreateAppResponse, DeleteAppRequest, DeleteAppResponse, GetAppRequest, GetAppResponse,
    GetLogsRequest, GetLogsResponse, ListAppsRequest, ListAppsResponse, ListPodsRequest, ListPodsResponse,
    Pod, RestartPodsRequest, RestartPodsResponse, RunCommandRequest, RunCommandResponse, ScalePodsRequest,
    ScalePodsResponse, TransferAppRequest, TransferAppResponse, apps_service_server::AppsService,
    ps_service_server::PsService,
};
use deis_scheduler::{ProcessInfo, ProcessSelector};
use deis_store::{App, StoreError, User};
use tonic::{Request, Response, Status};

use super::Api;
use crate::access::Access;
use crate::convert::{self, page_request, paged};
use crate::error::respond;

/// Default and largest number of log lines.
const DEFAULT_LOG_LINES: i32 = 100;
const MAX_LOG_LINES: i32 = 10_000;

fn pod(p: &ProcessInfo) -> Pod {
    Pod {
        name: p.name.clone(),
        state: p.state.as_str().into(),
        r#type: p.ptype.clone(),
        release: format!("v{}", p.release),
        started: p.started.map(convert::timestamp),
    }
}

/// Deis sorts processes newest first.
fn pods(mut processes: Vec<ProcessInfo>) -> Vec<Pod> {
    processes.sort_by(|a, b| b.started.cmp(&a.started).then_with(|| a.name.cmp(&b.name)));
    processes.iter().map(pod).collect()
}

impl Api {
    async fn create_named_app(&self, owner: &User, requested: &str) -> deis_core::Result<App> {
        let reserved = &self.inner.config.reserved_names;
        if !requested.is_empty() {
            validate::app_id(requested, reserved)?;
            return match self
                .inner
                .store
                .create_app(requested, owner, &summary::initial_release(&owner.username))
                .await
            {
                Err(StoreError::Duplicate(_)) => {
                    Err(Error::already_exists("Application with this id already exists."))
                }
                other => Ok(other?),
            };
        }
        // A generated name may collide with an existing app; try a few.
        for _ in 0..20 {
            let name = names::generate_app_name();
            if validate::app_id(&name, reserved).is_err() {
                continue;
            }
            match self
                .inner
                .store
                .create_app(&name, owner, &summary::initial_release(&owner.username))
                .await
            {
                Err(StoreError::Duplicate(_)) => continue,
                other => return Ok(other?),
            }
        }
        Err(Error::unavailable(
            "Could not find a free app name; pass one explicitly.",
        ))
    }

    async fn do_create_app(
        &self,
        request: Request<CreateAppRequest>,
    ) -> deis_core::Result<CreateAppResponse> {
        let user = self.caller(&request).await?;
        let app = self.create_named_app(&user, &request.get_ref().id).await?;
        self.inner
            .events
            .log(&app.name, &summary::initial_release(&user.username));
        Ok(CreateAppResponse {
            app: Some(convert::app(&app, self.app_url(&app.name))),
        })
    }

    async fn do_delete_app(
        &self,
        request: Request<DeleteAppRequest>,
    ) -> deis_core::Result<DeleteAppResponse> {
        let user = self.caller(&request).await?;
        let app = self.app_for(&user, &request.get_ref().id, Access::Own).await?;
        let _guard = self.lock_app(&app.uuid).await;
        // Processes go first: if the runtime cannot stop them the app stays
        // recorded, so nothing keeps running unaccounted for.
        self.inner.scheduler.destroy(&app.name).await?;
        self.inner.store.delete_app(&app).await?;
        self.inner.events.forget(&app.name);
        self.forget_app_lock(&app.uuid);
        tracing::info!(app = %app.name, by = %user.username, "destroyed app");
        Ok(DeleteAppResponse {})
    }

    async fn do_transfer(
        &self,
        request: Request<TransferAppRequest>,
    ) -> deis_core::Result<TransferAppResponse> {
        let user = self.caller(&request).await?;
        let req = request.into_inner();
        let app = self.app_for(&user, &req.id, Access::Own).await?;
        if req.owner.is_empty() {
            return Err(Error::invalid("owner is a required field"));
        }
        let new_owner = self.find_user(&req.owner).await?;
        self.inner.store.transfer_app(&app, &new_owner).await?;
        self.inner.events.log(
            &app.name,
            &format!("{} transferred the app to {}", user.username, new_owner.username),
        );
        Ok(TransferAppResponse {})
    }

    async fn do_scale(&self, request: Request<ScalePodsRequest>) -> deis_core::Result<ScalePodsResponse> {
        let user = self.caller(&request).await?;
        let req = request.into_inner();
        let app = self.app_for(&user, &req.app, Access::Write).await?;
        if req.structure.is_empty() {
            return Err(Error::invalid(
                "Invalid scaling format: give at least one type=count",
            ));
        }
        let counts = req
            .structure
            .iter()
            .map(|(ptype, n)| Ok((ptype.clone(), validate::scale_count(ptype, i64::from(*n))?)))
            .collect::<deis_core::Result<BTreeMap<_, _>>>()?;
        self.scale(&user.username, &app, &counts).await?;
        Ok(ScalePodsResponse {})
    }

    async fn do_restart(
        &self,
        request: Request<RestartPodsRequest>,
    ) -> deis_core::Result<RestartPodsResponse> {
        let user = self.caller(&request).await?;
        let req = request.into_inner();
        let app = self.app_for(&user, &req.app, Access::Write).await?;
        let selector = if !req.name.is_empty() {
            // Accept the short form `web-1` as well as `myapp-web-1`.
            let prefix = format!("{}-", app.name);
            if req.name.starts_with(&prefix) {
                ProcessSelector::Name(req.name)
            } else {
                ProcessSelector::Name(format!("{prefix}{}", req.name))
            }
        } else if !req.r#type.is_empty() {
            validate::process_type(&req.r#type)?;
            ProcessSelector::Type(req.r#type)
        } else {
            ProcessSelector::All
        };
        let processes = self.inner.scheduler.restart(&app.name, &selector).await?;
        self.inner
            .events
            .log(&app.name, &format!("{} restarted processes", user.username));
        Ok(RestartPodsResponse {
            results: pods(processes),
        })
    }
}

#[tonic::async_trait]
impl AppsService for Api {
    async fn create_app(
        &self,
        request: Request<CreateAppRequest>,
    ) -> Result<Response<CreateAppResponse>, Status> {
        respond(self.do_create_app(request).await)
    }

    async fn list_apps(
        &self,
        request: Request<ListAppsRequest>,
    ) -> Result<Response<ListAppsResponse>, Status> {
        respond(
            async {
                let user = self.caller(&request).await?;
                let req = request.into_inner();
                let paging = page_request(req.limit, req.offset)?;
                let page = self
                    .inner
                    .store
                    .list_apps(&user, user.is_superuser, paging)
                    .await?;
                Ok(paged("/v2/apps", paging, &page, |a| {
                    convert::app(a, self.app_url(&a.name))
                }))
            }
            .await,
        )
    }

    async fn get_app(&self, request: Request<GetAppRequest>) -> Result<Response<GetAppResponse>, Status> {
        respond(
            async {
                let user = self.caller(&request).await?;
                let app = self.app_for(&user, &request.get_ref().id, Access::Read).await?;
                Ok(GetAppResponse {
                    app: Some(convert::app(&app, self.app_url(&app.name))),
                })
            }
            .await,
        )
    }

    async fn transfer_app(
        &self,
        request: Request<TransferAppRequest>,
    ) -> Result<Response<TransferAppResponse>, Status> {
        respond(self.do_transfer(request).await)
    }

    async fn delete_app(
        &self,
        request: Request<DeleteAppRequest>,
    ) -> Result<Response<DeleteAppResponse>, Status> {
        respond(self.do_delete_app(request).await)
    }

    async fn run_command(
        &self,
        request: Request<RunCommandRequest>,
    ) -> Result<Response<RunCommandResponse>, Status> {
        respond(
            async {
                let user = self.caller(&request).await?;
                let req = request.into_inner();
                let app = self.app_for(&user, &req.app, Access::Write).await?;
                if req.command.trim().is_empty() {
                    return Err(Error::invalid("command is a required field"));
                }
                let outcome = self.0.run_command(&user.username, &app, &req.command).await?;
                Ok(RunCommandResponse {
                    exit_code: outcome.exit_code,
                    output: outcome.output,
                })
            }
            .await,
        )
    }

    async fn get_logs(&self, request: Request<GetLogsRequest>) -> Result<Response<GetLogsResponse>, Status> {
        respond(
            async {
                let user = self.caller(&request).await?;
                let req = request.into_inner();
                let app = self.app_for(&user, &req.app, Access::Read).await?;
                // Deis falls back to 100 for a missing or invalid count.
                let lines = if req.log_lines <= 0 {
                    DEFAULT_LOG_LINES
                } else {
                    req.log_lines.min(MAX_LOG_LINES)
                };
                Ok(GetLogsResponse {
                    lines: self.inner.events.tail(&app.name, lines as usize),
                })
            }
            .await,
        )
    }
}

#[tonic::async_trait]
impl PsService for Api {
    async fn list_pods(
        &self,
        request: Request<ListPodsRequest>,
    ) -> Result<Response<ListPodsResponse>, Status> {
        respond(
            async {
                let user = self.caller(&request).await?;
                let req = request.into_inner();
                let app = self.app_for(&user, &req.app, Access::Read).await?;
                let processes: Vec<ProcessInfo> = self
                    .inner
                    .scheduler
                    .list(&app.name)
                    .await?
                    .into_iter()
                    .filter(|p| req.r#type.is_empty() || p.ptype == req.r#type)
                    .filter(|p| req.name.is_empty() || p.name == req.name)
                    .collect();
                let results = pods(processes);
                Ok(ListPodsResponse {
                    count: i32::try_from(results.len()).unwrap_or(i32::MAX),
                    results,
                })
            }
            .await,
        )
    }

    async fn scale_pods(
        &self,
        request: Request<ScalePodsRequest>,
    ) -> Result<Response<ScalePodsResponse>, Status> {
        respond(self.do_scale(request).await)
    }

    async fn restart_pods(
        &self,
        request: Request<RestartPodsRequest>,
    ) -> Result<Response<RestartPodsResponse>, Status> {
        respond(self.do_restart(request).await)
    }
}
