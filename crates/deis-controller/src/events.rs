//! App logs kept in the controller: platform events ("alice deployed v7")
//! and, from the runtime, every line of the app's processes, in a bounded
//! ring per app. The logger component replaces this with its own service;
//! until then `deis logs` reads from here.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use chrono::Utc;
use deis_scheduler::{LogLine, LogSink, LogSource};

/// Lines kept per app.
const LINES_PER_APP: usize = 1000;

/// Bounded per-app log lines.
#[derive(Default)]
pub struct EventLog {
    apps: Mutex<HashMap<String, VecDeque<LogLine>>>,
}

impl EventLog {
    /// Records a platform event for an app.
    pub fn log(&self, app: &str, message: &str) {
        tracing::info!(app, message, "app event");
        self.send(LogLine {
            time: Utc::now(),
            app: app.to_owned(),
            source: LogSource::Platform,
            process: "deis".into(),
            release: String::new(),
            text: message.to_owned(),
        });
    }

    /// The last `n` lines of an app, formatted as Deis prints them.
    pub fn tail(&self, app: &str, n: usize) -> Vec<String> {
        let apps = self.apps.lock().unwrap_or_else(|p| p.into_inner());
        apps.get(app).map_or_else(Vec::new, |ring| {
            ring.iter()
                .skip(ring.len().saturating_sub(n))
                .map(LogLine::format)
                .collect()
        })
    }

    /// Drops an app's lines.
    pub fn forget(&self, app: &str) {
        self.apps.lock().unwrap_or_else(|p| p.into_inner()).remove(app);
    }
}

impl LogSink for EventLog {
    fn send(&self, line: LogLine) {
        let mut apps = self.apps.lock().unwrap_or_else(|p| p.into_inner());
        let ring = apps.entry(line.app.clone()).or_default();
        if ring.len() == LINES_PER_APP {
            ring.pop_front();
        }
        ring.push_back(line);
    }
}
