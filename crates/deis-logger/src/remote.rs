//! The logger seen from another process (a split deployment): the runtime
//! and the router push lines to it, the controller reads and configures it,
//! all over `deis.logger.v1`.

use std::sync::Arc;
use std::time::Duration;

use deis_proto::logger::{
    Drain, FollowRequest, ForgetAppRequest, GetDrainStatsRequest, PushRequest, SetDrainsRequest, TailRequest,
    follow_response, logger_service_client::LoggerServiceClient,
};
use deis_scheduler::{
    DrainSpec, DrainStats, FollowEvent, LogError, LogFollow, LogLine, LogQuery, LogService, LogSink,
};
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::metadata::MetadataValue;
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request, Status};

use crate::metrics::{DropReason, LogMetrics};
use crate::service::{entry_from_wire, entry_to_wire, filter_to_wire, stats_from_wire};

/// Lines waiting to be pushed; beyond this, lines are dropped and counted
/// (a sink never blocks the processes it reads).
const QUEUE_LINES: usize = 50_000;
/// Lines per pushed batch.
const BATCH_LINES: usize = 1000;
/// How long a partial batch may wait.
const BATCH_DELAY: Duration = Duration::from_millis(20);

#[derive(Clone)]
struct Token(MetadataValue<tonic::metadata::Ascii>);

impl Interceptor for Token {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        request.metadata_mut().insert("authorization", self.0.clone());
        Ok(request)
    }
}

type Client = LoggerServiceClient<InterceptedService<Channel, Token>>;

/// A logger in another process.
pub struct RemoteLogger {
    client: Client,
    queue: mpsc::Sender<LogLine>,
    metrics: LogMetrics,
}

impl RemoteLogger {
    /// A client of the logger at `url` (`http://host:port`), presenting
    /// `token`. Connects lazily and reconnects on its own.
    pub fn new(url: &str, token: &str) -> Result<RemoteLogger, LogError> {
        RemoteLogger::with_metrics(url, token, LogMetrics::default())
    }

    /// [`RemoteLogger::new`], counting lines it drops into `metrics`.
    pub fn with_metrics(url: &str, token: &str, metrics: LogMetrics) -> Result<RemoteLogger, LogError> {
        let endpoint = Endpoint::from_shared(url.to_owned())
            .map_err(|e| LogError::Invalid(format!("the logger URL {url} is not valid: {e}")))?
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true);
        let token = MetadataValue::try_from(format!("token {token}"))
            .map_err(|_| LogError::Invalid("the logger token is not valid header text".into()))?;
        let client = LoggerServiceClient::with_interceptor(endpoint.connect_lazy(), Token(token));
        let (queue, lines) = mpsc::channel(QUEUE_LINES);
        tokio::spawn(push_lines(client.clone(), lines, metrics.clone()));
        Ok(RemoteLogger {
            client,
            queue,
            metrics,
        })
    }

    /// Lines dropped because the logger was unreachable or slow.
    pub fn dropped(&self) -> u64 {
        self.metrics.dropped_lines(DropReason::RemotePush)
    }
}

/// Pushes queued lines in batches over one client stream, opening a new
/// stream when one fails (the batch in flight then counts as dropped).
async fn push_lines(client: Client, mut lines: mpsc::Receiver<LogLine>, metrics: LogMetrics) {
    let mut backoff = Duration::from_millis(200);
    loop {
        let (batches, stream) = mpsc::channel::<PushRequest>(4);
        let mut call_client = client.clone();
        let call = tokio::spawn(async move { call_client.push(ReceiverStream::new(stream)).await });
        loop {
            let Some(first) = lines.recv().await else {
                drop(batches);
                let _ = call.await;
                return;
            };
            let mut entries = vec![entry_to_wire(&first)];
            let deadline = tokio::time::Instant::now() + BATCH_DELAY;
            while entries.len() < BATCH_LINES {
                match tokio::time::timeout_at(deadline, lines.recv()).await {
                    Ok(Some(line)) => entries.push(entry_to_wire(&line)),
                    Ok(None) | Err(_) => break,
                }
            }
            let count = entries.len() as u64;
            if batches.send(PushRequest { entries }).await.is_err() {
                metrics.dropped(DropReason::RemotePush, count);
                break;
            }
            backoff = Duration::from_millis(200);
        }
        if let Ok(Err(status)) = call.await {
            tracing::warn!(error = %status.message(), "pushing log lines to the logger failed; retrying");
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}

fn log_error(status: Status) -> LogError {
    match status.code() {
        Code::InvalidArgument => LogError::Invalid(status.message().to_owned()),
        _ => LogError::Unavailable(status.message().to_owned()),
    }
}

impl LogSink for RemoteLogger {
    fn send(&self, line: LogLine) {
        if self.queue.try_send(line).is_err() {
            self.metrics.dropped(DropReason::RemotePush, 1);
        }
    }
}

#[async_trait::async_trait]
impl LogService for RemoteLogger {
    fn check_drain_url(&self, url: &str) -> Result<(), LogError> {
        crate::check_drain_url(url)
    }

    async fn tail(&self, app: &str, query: &LogQuery) -> Result<Vec<Arc<LogLine>>, LogError> {
        let response = self
            .client
            .clone()
            .tail(TailRequest {
                app: app.to_owned(),
                filter: Some(filter_to_wire(query)),
            })
            .await
            .map_err(log_error)?;
        Ok(response
            .into_inner()
            .entries
            .into_iter()
            .filter_map(entry_from_wire)
            .map(Arc::new)
            .collect())
    }

    async fn follow(&self, app: &str, query: &LogQuery) -> Result<LogFollow, LogError> {
        let stream = self
            .client
            .clone()
            .follow(FollowRequest {
                app: app.to_owned(),
                filter: Some(filter_to_wire(query)),
            })
            .await
            .map_err(log_error)?
            .into_inner();
        Ok(Box::pin(stream.filter_map(|message| async move {
            match message.ok()?.event? {
                follow_response::Event::Entry(entry) => {
                    entry_from_wire(entry).map(|l| FollowEvent::Line(Arc::new(l)))
                }
                follow_response::Event::Missed(n) => Some(FollowEvent::Missed(n)),
            }
        })))
    }

    async fn set_drains(&self, app: &str, drains: &[DrainSpec]) -> Result<(), LogError> {
        self.client
            .clone()
            .set_drains(SetDrainsRequest {
                app: app.to_owned(),
                drains: drains
                    .iter()
                    .map(|d| Drain {
                        id: d.id.clone(),
                        url: d.url.clone(),
                    })
                    .collect(),
            })
            .await
            .map_err(log_error)?;
        Ok(())
    }

    async fn drain_stats(&self, app: &str) -> Result<Vec<DrainStats>, LogError> {
        let response = self
            .client
            .clone()
            .get_drain_stats(GetDrainStatsRequest { app: app.to_owned() })
            .await
            .map_err(log_error)?;
        Ok(response
            .into_inner()
            .stats
            .into_iter()
            .map(stats_from_wire)
            .collect())
    }

    async fn forget(&self, app: &str) -> Result<(), LogError> {
        self.client
            .clone()
            .forget_app(ForgetAppRequest { app: app.to_owned() })
            .await
            .map_err(log_error)?;
        Ok(())
    }
}
