//! The logger's gRPC service (`deis.logger.v1.LoggerService`) for other
//! platform components, authenticated by the logger token.

use std::pin::Pin;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use deis_proto::logger::{
    Drain, DrainStats as WireDrainStats, FollowRequest, FollowResponse, ForgetAppRequest, ForgetAppResponse,
    GetDrainStatsRequest, GetDrainStatsResponse, LogEntry, LogFilter, LogSource as WireSource, PushRequest,
    PushResponse, SetDrainsRequest, SetDrainsResponse, TailRequest, TailResponse, follow_response,
    logger_service_server::{LoggerService, LoggerServiceServer},
};
use deis_scheduler::{
    DrainSpec, DrainStats, FollowEvent, LogError, LogLine, LogQuery, LogService, LogSource,
};
use futures::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

use crate::Logger;

/// The longest line text kept (longer ones are cut).
pub const MAX_TEXT_BYTES: usize = 64 * 1024;
/// The largest message accepted (a batch of lines).
const MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;

/// The service over a logger.
pub struct LoggerApi {
    logger: Arc<Logger>,
    token: String,
}

impl LoggerApi {
    /// Serves `logger` to callers presenting `token`.
    pub fn new(logger: Arc<Logger>, token: String) -> LoggerApi {
        LoggerApi { logger, token }
    }

    /// The tonic service.
    pub fn into_service(self) -> LoggerServiceServer<LoggerApi> {
        LoggerServiceServer::new(self)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES)
    }

    fn authorize<T>(&self, request: &Request<T>) -> Result<(), Status> {
        let presented = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("token "))
            .unwrap_or_default();
        if deis_auth::constant_time_eq(presented.as_bytes(), self.token.as_bytes()) {
            Ok(())
        } else {
            Err(Status::unauthenticated(
                "the logger token is missing or wrong; components derive it from the platform secret",
            ))
        }
    }
}

pub(crate) fn source_from_wire(source: i32) -> LogSource {
    match WireSource::try_from(source) {
        Ok(WireSource::Router) => LogSource::Router,
        Ok(WireSource::Deis) => LogSource::Platform,
        _ => LogSource::App,
    }
}

pub(crate) fn source_to_wire(source: LogSource) -> WireSource {
    match source {
        LogSource::App => WireSource::App,
        LogSource::Router => WireSource::Router,
        LogSource::Platform => WireSource::Deis,
    }
}

pub(crate) fn entry_to_wire(line: &LogLine) -> LogEntry {
    LogEntry {
        time: Some(prost_types::Timestamp {
            seconds: line.time.timestamp(),
            nanos: i32::try_from(line.time.timestamp_subsec_nanos()).unwrap_or(0),
        }),
        app: line.app.clone(),
        source: source_to_wire(line.source).into(),
        process: line.process.clone(),
        release: line.release.clone(),
        text: line.text.clone(),
    }
}

/// A line from the wire; `None` without an app. Text beyond
/// [`MAX_TEXT_BYTES`] is cut at a character boundary.
pub(crate) fn entry_from_wire(entry: LogEntry) -> Option<LogLine> {
    if entry.app.is_empty() {
        return None;
    }
    let time = entry
        .time
        .and_then(|t| DateTime::<Utc>::from_timestamp(t.seconds, u32::try_from(t.nanos).unwrap_or(0)))
        .unwrap_or_else(Utc::now);
    let mut text = entry.text;
    if text.len() > MAX_TEXT_BYTES {
        let mut cut = MAX_TEXT_BYTES;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    Some(LogLine {
        time,
        app: entry.app,
        source: source_from_wire(entry.source),
        process: entry.process,
        release: entry.release,
        text,
    })
}

pub(crate) fn filter_to_wire(query: &LogQuery) -> LogFilter {
    LogFilter {
        lines: u32::try_from(query.lines).unwrap_or(u32::MAX),
        process: query.process.clone().unwrap_or_default(),
        source: query
            .source
            .map_or(WireSource::Unspecified, source_to_wire)
            .into(),
    }
}

fn filter_from_wire(filter: Option<LogFilter>) -> LogQuery {
    let filter = filter.unwrap_or_default();
    LogQuery {
        lines: usize::try_from(filter.lines).unwrap_or(usize::MAX),
        process: (!filter.process.is_empty()).then_some(filter.process),
        source: match WireSource::try_from(filter.source) {
            Ok(WireSource::Unspecified) | Err(_) => None,
            Ok(_) => Some(source_from_wire(filter.source)),
        },
    }
}

pub(crate) fn stats_to_wire(stats: DrainStats) -> WireDrainStats {
    WireDrainStats {
        id: stats.id,
        delivered: stats.delivered,
        dropped: stats.dropped,
        buffered: stats.buffered,
        healthy: stats.healthy,
        last_error: stats.last_error.unwrap_or_default(),
    }
}

pub(crate) fn stats_from_wire(stats: WireDrainStats) -> DrainStats {
    DrainStats {
        id: stats.id,
        delivered: stats.delivered,
        dropped: stats.dropped,
        buffered: stats.buffered,
        healthy: stats.healthy,
        last_error: (!stats.last_error.is_empty()).then_some(stats.last_error),
    }
}

fn to_status(err: LogError) -> Status {
    match err {
        LogError::Invalid(m) => Status::invalid_argument(m),
        LogError::Unavailable(m) => Status::unavailable(m),
    }
}

type FollowStream = Pin<Box<dyn Stream<Item = Result<FollowResponse, Status>> + Send>>;

#[tonic::async_trait]
impl LoggerService for LoggerApi {
    async fn push(&self, request: Request<Streaming<PushRequest>>) -> Result<Response<PushResponse>, Status> {
        self.authorize(&request)?;
        let mut batches = request.into_inner();
        let mut accepted = 0u64;
        while let Some(batch) = batches.message().await? {
            for entry in batch.entries {
                if let Some(line) = entry_from_wire(entry) {
                    self.logger.ingest(Arc::new(line));
                    accepted += 1;
                }
            }
        }
        Ok(Response::new(PushResponse { accepted }))
    }

    async fn tail(&self, request: Request<TailRequest>) -> Result<Response<TailResponse>, Status> {
        self.authorize(&request)?;
        let req = request.into_inner();
        let lines = self
            .logger
            .tail(&req.app, &filter_from_wire(req.filter))
            .await
            .map_err(to_status)?;
        Ok(Response::new(TailResponse {
            entries: lines.iter().map(|l| entry_to_wire(l)).collect(),
        }))
    }

    type FollowStream = FollowStream;

    async fn follow(&self, request: Request<FollowRequest>) -> Result<Response<FollowStream>, Status> {
        self.authorize(&request)?;
        let req = request.into_inner();
        let follow = self
            .logger
            .follow(&req.app, &filter_from_wire(req.filter))
            .await
            .map_err(to_status)?;
        Ok(Response::new(Box::pin(follow.map(|event| {
            Ok(FollowResponse {
                event: Some(match event {
                    FollowEvent::Line(line) => follow_response::Event::Entry(entry_to_wire(&line)),
                    FollowEvent::Missed(n) => follow_response::Event::Missed(n),
                }),
            })
        }))))
    }

    async fn set_drains(
        &self,
        request: Request<SetDrainsRequest>,
    ) -> Result<Response<SetDrainsResponse>, Status> {
        self.authorize(&request)?;
        let req = request.into_inner();
        let specs: Vec<DrainSpec> = req
            .drains
            .into_iter()
            .map(|d: Drain| DrainSpec { id: d.id, url: d.url })
            .collect();
        self.logger
            .set_drains(&req.app, &specs)
            .await
            .map_err(to_status)?;
        Ok(Response::new(SetDrainsResponse {}))
    }

    async fn get_drain_stats(
        &self,
        request: Request<GetDrainStatsRequest>,
    ) -> Result<Response<GetDrainStatsResponse>, Status> {
        self.authorize(&request)?;
        let stats = self
            .logger
            .drain_stats(&request.get_ref().app)
            .await
            .map_err(to_status)?;
        Ok(Response::new(GetDrainStatsResponse {
            stats: stats.into_iter().map(stats_to_wire).collect(),
        }))
    }

    async fn forget_app(
        &self,
        request: Request<ForgetAppRequest>,
    ) -> Result<Response<ForgetAppResponse>, Status> {
        self.authorize(&request)?;
        self.logger
            .forget(&request.get_ref().app)
            .await
            .map_err(to_status)?;
        Ok(Response::new(ForgetAppResponse {}))
    }
}
