//! Where process output goes, and how the controller reads it back: the
//! runtime and the router hand every line to a [`LogSink`]; the logger
//! component implements [`LogService`] (in process, or over gRPC in a split
//! deployment), which the controller uses for `deis logs` and drains.

use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::Stream;

/// Who produced a line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LogSource {
    /// An app's process.
    App,
    /// The router (access log lines).
    Router,
    /// The platform (releases, scaling, restarts...).
    Platform,
}

impl LogSource {
    /// The name users filter by: `app`, `router` or `deis`.
    pub fn as_str(self) -> &'static str {
        match self {
            LogSource::App => "app",
            LogSource::Router => "router",
            LogSource::Platform => "deis",
        }
    }
}

impl FromStr for LogSource {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "app" => Ok(LogSource::App),
            "router" => Ok(LogSource::Router),
            "deis" => Ok(LogSource::Platform),
            other => Err(format!("unknown log source {other:?}; use app, router or deis")),
        }
    }
}

/// One log line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogLine {
    /// When it was produced.
    pub time: DateTime<Utc>,
    /// The app.
    pub app: String,
    /// Who produced it.
    pub source: LogSource,
    /// The process (`web.1`), `router`, or `deis` for platform events.
    pub process: String,
    /// The release (`v3`), when known.
    pub release: String,
    /// The line, without its newline.
    pub text: String,
}

impl LogLine {
    /// Deis's format: `2026-11-27T12:00:00+00:00 myapp[web.1]: text`.
    pub fn format(&self) -> String {
        format!(
            "{} {}[{}]: {}",
            self.time.to_rfc3339_opts(chrono::SecondsFormat::Secs, false),
            self.app,
            self.process,
            self.text
        )
    }
}

/// Receives log lines. Must not block: a sink that cannot keep up drops
/// lines (and counts them) rather than slowing the processes down.
pub trait LogSink: Send + Sync + 'static {
    /// Takes one line.
    fn send(&self, line: LogLine);
}

/// Discards everything (tests that do not look at logs).
#[derive(Clone, Copy, Debug, Default)]
pub struct NoLogs;

impl LogSink for NoLogs {
    fn send(&self, _: LogLine) {}
}

/// Which lines `deis logs` wants.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogQuery {
    /// At most this many (the newest).
    pub lines: usize,
    /// Only this process type (`web`) or process (`web.1`).
    pub process: Option<String>,
    /// Only lines from this source.
    pub source: Option<LogSource>,
}

impl LogQuery {
    /// Whether a line passes the filters.
    pub fn matches(&self, line: &LogLine) -> bool {
        if self.source.is_some_and(|source| source != line.source) {
            return false;
        }
        match self.process.as_deref() {
            None => true,
            Some(wanted) => {
                line.process == wanted
                    || line
                        .process
                        .strip_prefix(wanted)
                        .is_some_and(|rest| rest.starts_with('.'))
            }
        }
    }
}

/// What a follower of an app's logs receives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FollowEvent {
    /// A line.
    Line(Arc<LogLine>),
    /// The follower read too slowly and this many lines went past it.
    Missed(u64),
}

/// A live stream of an app's lines: the replayed tail first, then new ones.
pub type LogFollow = Pin<Box<dyn Stream<Item = FollowEvent> + Send>>;

/// A log drain configured on an app.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DrainSpec {
    /// Its id (stable across restarts; the controller assigns it).
    pub id: String,
    /// Where lines go: `syslog://`, `syslog+tls://`, `https://` (or
    /// `http://`).
    pub url: String,
}

/// How a drain is doing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DrainStats {
    /// The drain's id.
    pub id: String,
    /// Lines delivered.
    pub delivered: u64,
    /// Lines dropped because the drain's buffer was full while it was down
    /// or slow.
    pub dropped: u64,
    /// Lines waiting to be delivered.
    pub buffered: u64,
    /// Whether the last delivery attempt succeeded.
    pub healthy: bool,
    /// The last delivery error, if the drain is failing.
    pub last_error: Option<String>,
}

/// Why the logger could not answer.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The logger cannot be reached (split deployment).
    #[error("the logger is unavailable: {0}")]
    Unavailable(String),
    /// The request was refused (a bad drain URL, for example).
    #[error("{0}")]
    Invalid(String),
}

impl From<LogError> for deis_core::Error {
    fn from(err: LogError) -> Self {
        match err {
            LogError::Unavailable(m) => deis_core::Error::unavailable(format!(
                "The logger is not answering ({m}); try again in a moment."
            )),
            LogError::Invalid(m) => deis_core::Error::invalid(m),
        }
    }
}

/// The logger as the controller uses it.
#[async_trait::async_trait]
pub trait LogService: LogSink {
    /// Refuses a drain URL the logger could not deliver to, saying what is
    /// accepted.
    fn check_drain_url(&self, url: &str) -> Result<(), LogError>;
    /// The newest lines of an app that pass the query, oldest first.
    async fn tail(&self, app: &str, query: &LogQuery) -> Result<Vec<Arc<LogLine>>, LogError>;
    /// The newest `query.lines` lines, then every new one, as they come.
    async fn follow(&self, app: &str, query: &LogQuery) -> Result<LogFollow, LogError>;
    /// Replaces an app's drains (unchanged ones keep their buffers and
    /// counters).
    async fn set_drains(&self, app: &str, drains: &[DrainSpec]) -> Result<(), LogError>;
    /// How each of an app's drains is doing.
    async fn drain_stats(&self, app: &str) -> Result<Vec<DrainStats>, LogError>;
    /// Drops an app's lines and drains (the app was destroyed).
    async fn forget(&self, app: &str) -> Result<(), LogError>;
}
