//! AppsService and PsService: apps, one-off commands, logs and processes.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use deis_core::{Error, names, summary, validate};
use deis_proto::google::api::HttpBody;
use deis_proto::v2::{
    CreateAppRequest, CreateAppResponse, DeleteAppRequest, DeleteAppResponse, FollowLogsRequest,
    GetAppRequest, GetAppResponse, GetLogTextRequest, GetLogsRequest, GetLogsResponse, ListAppsRequest,
    ListAppsResponse, ListPodsRequest, ListPodsResponse, Pod, RestartPodsRequest, RestartPodsResponse,
    RunAttachedRequest, RunAttachedResponse, RunCommandRequest, RunCommandResponse, RunExit,
    ScalePodsRequest, ScalePodsResponse, TransferAppRequest, TransferAppResponse,
    apps_service_server::AppsService, ps_service_server::PsService, run_attached_request,
    run_attached_response,
};
use deis_scheduler::{
    ProcessInfo, ProcessSelector, ProcessState, RunInput, RunIo, RunOutput, RunSpec, Scheduler,
    SchedulerError, TtySize,
};
use deis_store::{App, StoreError, User};
use futures::Stream;
use tokio::sync::mpsc;
use tonic::{Request, Response, Status, Streaming};

use super::Api;
use crate::access::Access;
use crate::convert::{self, page_request, paged};
use crate::error::{respond, to_status};

/// Messages buffered each way between an attached run and its client.
const RUN_CHANNEL: usize = 64;
/// The most stdin one `RunAttached` message may carry.
const MAX_STDIN_BYTES: usize = 64 * 1024;
/// How long output may trail a finished run before `exit` is sent anyway
/// (a runtime should drop its output sender when the run ends).
const OUTPUT_GRACE: Duration = Duration::from_secs(2);
/// The terminal size when the client gives none.
const DEFAULT_TTY: TtySize = TtySize { cols: 80, rows: 24 };

/// The responses of an attached run.
type RunAttachedStream = Pin<Box<dyn Stream<Item = Result<RunAttachedResponse, Status>> + Send>>;

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
    /// The app a one-off command runs in, checked the same way for
    /// RunCommand and RunAttached: write access and a command.
    async fn run_target(&self, user: &User, app: &str, command: &str) -> deis_core::Result<App> {
        let app = self.app_for(user, app, Access::Write).await?;
        if command.trim().is_empty() {
            return Err(Error::invalid("command is a required field"));
        }
        Ok(app)
    }

    async fn create_named_app(&self, owner: &User, requested: &str) -> deis_core::Result<App> {
        let reserved = &self.inner.config.reserved_names;
        if !requested.is_empty() {
            validate::app_id(requested, reserved).map_err(|e| e.on_field("id"))?;
            return match self
                .inner
                .store
                .create_app(requested, owner, &summary::initial_release(&owner.username))
                .await
            {
                Err(StoreError::Duplicate(_)) => {
                    Err(Error::already_exists("Application with this id already exists.").on_field("id"))
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
        self.routing_changed();
        self.inner
            .event(&app.name, &summary::initial_release(&user.username));
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
        // Nobody listening is fine: then nothing else keeps per-app data.
        let _ = self.inner.destroyed.send(crate::AppDestroyed {
            app: app.name.clone(),
        });
        self.routing_changed();
        if let Err(err) = self.inner.logs.forget(&app.name).await {
            tracing::warn!(app = %app.name, error = %err, "the logger could not drop the app's logs");
        }
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
        self.inner.event(
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
        // Not while a release of the app rolls out.
        let _guard = self.lock_app(&app.uuid).await;
        let mut processes = self.inner.scheduler.restart(&app.name, &selector).await?;
        // The replaced processes are on their way out; the answer is the
        // processes that took their place (and the others).
        processes.retain(|p| p.state != ProcessState::Terminating);
        self.inner
            .event(&app.name, &format!("{} restarted processes", user.username));
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
                let app = self.run_target(&user, &req.app, &req.command).await?;
                let outcome = self.0.run_command(&user.username, &app, &req.command).await?;
                Ok(RunCommandResponse {
                    exit_code: outcome.exit_code,
                    output: outcome.output,
                })
            }
            .await,
        )
    }

    type RunAttachedStream = RunAttachedStream;

    async fn run_attached(
        &self,
        request: Request<Streaming<RunAttachedRequest>>,
    ) -> Result<Response<Self::RunAttachedStream>, Status> {
        let user = self.caller(&request).await.map_err(to_status)?;
        let mut incoming = request.into_inner();
        let start = match incoming.message().await? {
            Some(RunAttachedRequest {
                kind: Some(run_attached_request::Kind::Start(start)),
            }) => start,
            _ => {
                return Err(to_status(Error::invalid(
                    "The first RunAttached message must be `start`.",
                )));
            }
        };
        let app = self
            .run_target(&user, &start.app, &start.command)
            .await
            .map_err(to_status)?;
        let spec = self
            .0
            .run_spec(&user.username, &app, &start.command)
            .await
            .map_err(to_status)?;
        let tty = start
            .tty
            .then(|| tty_size(start.cols, start.rows).unwrap_or(DEFAULT_TTY));
        let (responses, mut outgoing) = mpsc::channel(RUN_CHANNEL);
        tokio::spawn(attached_run(
            self.inner.scheduler.clone(),
            spec,
            tty,
            incoming,
            responses,
        ));
        let stream = futures::stream::poll_fn(move |cx| outgoing.poll_recv(cx));
        Ok(Response::new(Box::pin(stream)))
    }

    async fn get_logs(&self, request: Request<GetLogsRequest>) -> Result<Response<GetLogsResponse>, Status> {
        respond(self.do_get_logs(request).await)
    }

    async fn get_log_text(&self, request: Request<GetLogTextRequest>) -> Result<Response<HttpBody>, Status> {
        self.do_get_log_text(request).await.map_err(to_status)
    }

    type FollowLogsStream = super::logs::FollowLogsStream;

    async fn follow_logs(
        &self,
        request: Request<FollowLogsRequest>,
    ) -> Result<Response<Self::FollowLogsStream>, Status> {
        self.do_follow_logs(request)
            .await
            .map(Response::new)
            .map_err(to_status)
    }
}

/// A terminal size from the wire; `None` when a side is zero.
fn tty_size(cols: u32, rows: u32) -> Option<TtySize> {
    let clamp = |n: u32| u16::try_from(n).unwrap_or(u16::MAX);
    (cols > 0 && rows > 0).then(|| TtySize {
        cols: clamp(cols),
        rows: clamp(rows),
    })
}

fn output_response(output: RunOutput) -> RunAttachedResponse {
    use run_attached_response::Kind;
    RunAttachedResponse {
        kind: Some(match output {
            RunOutput::Stdout(bytes) => Kind::Stdout(bytes),
            RunOutput::Stderr(bytes) => Kind::Stderr(bytes),
        }),
    }
}

/// How the client's side of an attached run ended.
enum InputEnd {
    /// The client closed its stream (after `eof`, or meaning it).
    Closed,
    /// The client's stream broke: it went away.
    Gone,
    /// The client broke the protocol.
    Invalid(Status),
}

/// Forwards the client's messages after `start` to the run's input.
async fn pump_input(
    mut incoming: Streaming<RunAttachedRequest>,
    input: mpsc::Sender<RunInput>,
    tty: bool,
) -> InputEnd {
    use run_attached_request::Kind;
    let invalid = |message: &str| InputEnd::Invalid(to_status(Error::invalid(message)));
    let mut eof = false;
    loop {
        let message = match incoming.message().await {
            Ok(Some(message)) => message,
            Ok(None) => {
                // Closing the stream ends the input too.
                if !eof {
                    let _ = input.send(RunInput::Eof).await;
                }
                return InputEnd::Closed;
            }
            Err(_) => return InputEnd::Gone,
        };
        let forward = match message.kind {
            Some(Kind::Stdin(bytes)) if bytes.len() > MAX_STDIN_BYTES => {
                return invalid("A stdin message may carry at most 64 KiB.");
            }
            Some(Kind::Stdin(_)) if eof => return invalid("stdin after eof"),
            Some(Kind::Stdin(bytes)) => RunInput::Stdin(bytes),
            Some(Kind::Resize(size)) => match tty_size(size.cols, size.rows) {
                Some(TtySize { cols, rows }) if tty => RunInput::Resize { cols, rows },
                // Without a terminal, or without a size, there is nothing to resize.
                _ => continue,
            },
            Some(Kind::Eof(_)) if eof => continue,
            Some(Kind::Eof(_)) => {
                eof = true;
                RunInput::Eof
            }
            Some(Kind::Start(_)) => return invalid("`start` may only be the first RunAttached message."),
            None => return invalid("An empty RunAttached message."),
        };
        // A runtime that stopped reading input (the command closed stdin)
        // has dropped its receiver; the input is moot then.
        let _ = input.send(forward).await;
    }
}

/// Runs an attached command and wires its `RunIo` to the client's streams:
/// output becomes responses as it comes, client messages become input, and
/// `exit` (or the scheduler's error) ends the responses. When the client
/// goes away, the output receiver and the input sender are dropped, and the
/// run is awaited so the runtime can stop the process its own way.
async fn attached_run(
    scheduler: Arc<dyn Scheduler>,
    spec: RunSpec,
    tty: Option<TtySize>,
    incoming: Streaming<RunAttachedRequest>,
    responses: mpsc::Sender<Result<RunAttachedResponse, Status>>,
) {
    let (output, mut output_rx) = mpsc::channel(RUN_CHANNEL);
    let (input, input_rx) = mpsc::channel(RUN_CHANNEL);
    let io = RunIo {
        output,
        input: Some(input_rx),
        tty,
    };
    let mut run = scheduler.run_attached(&spec, io);
    let mut pump = Box::pin(pump_input(incoming, input, tty.is_some()));
    let mut pumping = true;
    let mut output_open = true;
    let mut exit: Option<Result<i32, SchedulerError>> = None;
    let mut gone = false;
    while exit.is_none() || output_open {
        tokio::select! {
            result = &mut run, if exit.is_none() => exit = Some(result),
            chunk = output_rx.recv(), if output_open => match chunk {
                Some(chunk) => {
                    if responses.send(Ok(output_response(chunk))).await.is_err() {
                        gone = true;
                        break;
                    }
                }
                None => output_open = false,
            },
            end = &mut pump, if pumping => {
                pumping = false;
                match end {
                    InputEnd::Closed => {}
                    InputEnd::Gone => {
                        gone = true;
                        break;
                    }
                    InputEnd::Invalid(status) => {
                        let _ = responses.send(Err(status)).await;
                        gone = true;
                        break;
                    }
                }
            }
            () = responses.closed() => {
                gone = true;
                break;
            }
            () = tokio::time::sleep(OUTPUT_GRACE), if exit.is_some() => output_open = false,
        }
    }
    let app = &spec.release.app;
    if gone {
        // Our ends of the RunIo go first: the runtime sees its output
        // receiver dropped and its input closed without `eof`.
        drop(output_rx);
        drop(pump);
        drop(responses);
        if exit.is_none() {
            tracing::info!(app = %app, command = %spec.command, "the client left an attached run; stopping it");
            let result = run.await;
            tracing::debug!(app = %app, ?result, "abandoned run ended");
        }
        return;
    }
    let last = match exit {
        Some(Ok(exit_code)) => Ok(RunAttachedResponse {
            kind: Some(run_attached_response::Kind::Exit(RunExit { exit_code })),
        }),
        Some(Err(err)) => {
            tracing::warn!(app = %app, error = %err, "attached run failed");
            Err(to_status(err.into()))
        }
        None => return,
    };
    let _ = responses.send(last).await;
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
