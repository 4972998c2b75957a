//! Where process output goes: the runtime hands every line of every
//! process to a [`LogSink`] (the logger component implements it; until one
//! is attached the controller keeps a bounded in-memory ring).

use chrono::{DateTime, Utc};

/// Who produced a line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogSource {
    /// An app's process.
    App,
    /// The router (access log lines).
    Router,
    /// The platform (releases, scaling, restarts...).
    Platform,
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
