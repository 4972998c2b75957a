//! App logs (`deis logs`, `deis logs -f`) and drains: the controller
//! authorizes the caller for the app, then asks the logger.

use std::pin::Pin;

use deis_core::Error;
use deis_proto::google::api::HttpBody;
use deis_proto::v2::{
    AddDrainRequest, AddDrainResponse, Drain, FollowLogsRequest, FollowLogsResponse, GetLogTextRequest,
    GetLogsRequest, GetLogsResponse, ListDrainsRequest, ListDrainsResponse, LogLine as LogEntry,
    RemoveDrainRequest, RemoveDrainResponse, drains_service_server::DrainsService, follow_logs_response,
};
use deis_scheduler::{DrainSpec, FollowEvent, LogLine, LogQuery, LogSource};
use deis_store::{App, StoreError, User};
use futures::{Stream, StreamExt};
use tonic::metadata::MetadataValue;
use tonic::{Request, Response, Status};

use super::Api;
use crate::access::Access;
use crate::convert;
use crate::error::{HTTP_STATUS_METADATA, respond};

/// Default and largest number of log lines.
const DEFAULT_LOG_LINES: i32 = 100;
const MAX_LOG_LINES: i32 = 10_000;
/// Heroku's limit.
const MAX_DRAINS_PER_APP: u64 = 5;

pub(super) type FollowLogsStream = Pin<Box<dyn Stream<Item = Result<FollowLogsResponse, Status>> + Send>>;

/// A logs query from the wire: Deis falls back to 100 lines for a missing
/// or invalid count.
fn query(log_lines: i32, process: &str, source: &str) -> deis_core::Result<LogQuery> {
    let lines = if log_lines <= 0 {
        DEFAULT_LOG_LINES
    } else {
        log_lines.min(MAX_LOG_LINES)
    };
    let source = match source {
        "" => None,
        s => Some(s.parse::<LogSource>().map_err(Error::invalid)?),
    };
    Ok(LogQuery {
        lines: usize::try_from(lines).unwrap_or(0),
        process: (!process.is_empty()).then(|| process.to_owned()),
        source,
    })
}

fn entry(line: &LogLine) -> LogEntry {
    LogEntry {
        time: Some(convert::timestamp(line.time)),
        app: line.app.clone(),
        source: line.source.as_str().to_owned(),
        process: line.process.clone(),
        release: line.release.clone(),
        text: line.text.clone(),
    }
}

impl Api {
    pub(super) async fn do_get_logs(
        &self,
        request: Request<GetLogsRequest>,
    ) -> deis_core::Result<GetLogsResponse> {
        let user = self.caller(&request).await?;
        let req = request.into_inner();
        let lines = self
            .tail(&user, &req.app, req.log_lines, &req.process, &req.source)
            .await?;
        Ok(GetLogsResponse {
            lines: lines.iter().map(|l| l.format()).collect(),
            entries: lines.iter().map(|l| entry(l)).collect(),
        })
    }

    /// The same lines as text, one per line; none is 204 over REST, as in
    /// Deis.
    pub(super) async fn do_get_log_text(
        &self,
        request: Request<GetLogTextRequest>,
    ) -> deis_core::Result<Response<HttpBody>> {
        let user = self.caller(&request).await?;
        let req = request.into_inner();
        let lines = self
            .tail(&user, &req.app, req.log_lines, &req.process, &req.source)
            .await?;
        let mut text = String::new();
        for line in &lines {
            text.push_str(&line.format());
            text.push('\n');
        }
        let mut response = Response::new(HttpBody {
            content_type: "text/plain; charset=utf-8".to_owned(),
            data: text.into_bytes(),
            extensions: Vec::new(),
        });
        if lines.is_empty() {
            response
                .metadata_mut()
                .insert(HTTP_STATUS_METADATA, MetadataValue::from_static("204"));
        }
        Ok(response)
    }

    async fn tail(
        &self,
        user: &User,
        app: &str,
        log_lines: i32,
        process: &str,
        source: &str,
    ) -> deis_core::Result<Vec<std::sync::Arc<LogLine>>> {
        let app = self.app_for(user, app, Access::Read).await?;
        let query = query(log_lines, process, source)?;
        Ok(self.inner.logs.tail(&app.name, &query).await?)
    }

    pub(super) async fn do_follow_logs(
        &self,
        request: Request<FollowLogsRequest>,
    ) -> deis_core::Result<FollowLogsStream> {
        let user = self.caller(&request).await?;
        let req = request.into_inner();
        let app = self.app_for(&user, &req.app, Access::Read).await?;
        let query = query(req.log_lines, &req.process, &req.source)?;
        let follow = self.inner.logs.follow(&app.name, &query).await?;
        Ok(Box::pin(follow.map(|event| {
            Ok(FollowLogsResponse {
                event: Some(match event {
                    FollowEvent::Line(line) => follow_logs_response::Event::Line(entry(&line)),
                    FollowEvent::Missed(n) => follow_logs_response::Event::Missed(n),
                }),
            })
        })))
    }

    /// Tells the logger an app's drains as stored. A logger that cannot be
    /// reached gets them when it next syncs; the change itself stands.
    async fn sync_drains(&self, app: &App) -> deis_core::Result<()> {
        let specs: Vec<DrainSpec> = self
            .inner
            .store
            .list_drains(app)
            .await?
            .into_iter()
            .map(|d| DrainSpec {
                id: d.uuid,
                url: d.url,
            })
            .collect();
        if let Err(err) = self.inner.logs.set_drains(&app.name, &specs).await {
            tracing::warn!(app = %app.name, error = %err, "could not update the logger's drains");
        }
        Ok(())
    }

    async fn drains_with_stats(&self, app: &App) -> deis_core::Result<Vec<Drain>> {
        let drains = self.inner.store.list_drains(app).await?;
        // Counters are the logger's; a logger that is down leaves them empty.
        let stats = self.inner.logs.drain_stats(&app.name).await.unwrap_or_default();
        Ok(drains
            .into_iter()
            .map(|d| {
                let stat = stats.iter().find(|s| s.id == d.uuid).cloned().unwrap_or_default();
                drain(d, stat)
            })
            .collect())
    }

    async fn do_add_drain(&self, request: Request<AddDrainRequest>) -> deis_core::Result<AddDrainResponse> {
        let user = self.caller(&request).await?;
        let req = request.into_inner();
        let app = self.app_for(&user, &req.app, Access::Write).await?;
        let url = req.url.trim();
        self.inner.logs.check_drain_url(url)?;
        let added = match self
            .inner
            .store
            .add_drain(&app, &user.username, url, MAX_DRAINS_PER_APP)
            .await
        {
            Err(StoreError::Duplicate(_)) => {
                return Err(Error::already_exists(format!(
                    "{} already drains to that URL.",
                    app.name
                )));
            }
            other => other?,
        };
        self.sync_drains(&app).await?;
        self.inner
            .event(&app.name, &format!("{} added a log drain", user.username));
        Ok(AddDrainResponse {
            drain: Some(drain(added, Default::default())),
        })
    }

    async fn do_remove_drain(
        &self,
        request: Request<RemoveDrainRequest>,
    ) -> deis_core::Result<RemoveDrainResponse> {
        let user = self.caller(&request).await?;
        let req = request.into_inner();
        let app = self.app_for(&user, &req.app, Access::Write).await?;
        if !self.inner.store.remove_drain(&app, req.drain.trim()).await? {
            return Err(Error::not_found(format!(
                "{} has no drain {}; `deis drains:list` shows its drains.",
                app.name, req.drain
            )));
        }
        self.sync_drains(&app).await?;
        self.inner
            .event(&app.name, &format!("{} removed a log drain", user.username));
        Ok(RemoveDrainResponse {})
    }

    async fn do_list_drains(
        &self,
        request: Request<ListDrainsRequest>,
    ) -> deis_core::Result<ListDrainsResponse> {
        let user: User = self.caller(&request).await?;
        let app = self.app_for(&user, &request.get_ref().app, Access::Read).await?;
        Ok(ListDrainsResponse {
            results: self.drains_with_stats(&app).await?,
        })
    }
}

fn drain(d: deis_store::Drain, stats: deis_scheduler::DrainStats) -> Drain {
    Drain {
        id: d.uuid,
        app: d.app,
        url: d.url,
        owner: d.owner,
        created: Some(convert::timestamp(d.created)),
        delivered: stats.delivered,
        dropped: stats.dropped,
        buffered: stats.buffered,
        healthy: stats.healthy,
        last_error: stats.last_error.unwrap_or_default(),
    }
}

#[tonic::async_trait]
impl DrainsService for Api {
    async fn list_drains(
        &self,
        request: Request<ListDrainsRequest>,
    ) -> Result<Response<ListDrainsResponse>, Status> {
        respond(self.do_list_drains(request).await)
    }

    async fn add_drain(
        &self,
        request: Request<AddDrainRequest>,
    ) -> Result<Response<AddDrainResponse>, Status> {
        respond(self.do_add_drain(request).await)
    }

    async fn remove_drain(
        &self,
        request: Request<RemoveDrainRequest>,
    ) -> Result<Response<RemoveDrainResponse>, Status> {
        respond(self.do_remove_drain(request).await)
    }
}

/// Configures the logger with every app's drains (at start: a logger keeps
/// no state of its own).
pub(crate) async fn sync_all_drains(controller: &crate::Controller) -> deis_core::Result<()> {
    let mut by_app: std::collections::BTreeMap<String, Vec<DrainSpec>> = Default::default();
    for d in controller.inner.store.all_drains().await? {
        by_app.entry(d.app).or_default().push(DrainSpec {
            id: d.uuid,
            url: d.url,
        });
    }
    for (app, specs) in by_app {
        controller.inner.logs.set_drains(&app, &specs).await?;
    }
    Ok(())
}
