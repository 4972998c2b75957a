//! Platform events per app ("alice deployed v7"), kept in a bounded ring so
//! `deis logs` has something to show before a logger component is attached.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use chrono::{SecondsFormat, Utc};

/// Lines kept per app.
const LINES_PER_APP: usize = 1000;

/// Bounded per-app event lines in Deis's controller-line format.
#[derive(Default)]
pub struct EventLog {
    apps: Mutex<HashMap<String, VecDeque<String>>>,
}

impl EventLog {
    /// Records an event for an app.
    pub fn log(&self, app: &str, message: &str) {
        let time = Utc::now().to_rfc3339_opts(SecondsFormat::Secs, false);
        let line = format!("{time} deis[controller]: INFO {message}");
        tracing::info!(app, message, "app event");
        let mut apps = self.apps.lock().unwrap_or_else(|p| p.into_inner());
        let ring = apps.entry(app.to_owned()).or_default();
        if ring.len() == LINES_PER_APP {
            ring.pop_front();
        }
        ring.push_back(line);
    }

    /// The last `n` lines of an app.
    pub fn tail(&self, app: &str, n: usize) -> Vec<String> {
        let apps = self.apps.lock().unwrap_or_else(|p| p.into_inner());
        apps.get(app).map_or_else(Vec::new, |ring| {
            ring.iter().skip(ring.len().saturating_sub(n)).cloned().collect()
        })
    }

    /// Drops an app's lines.
    pub fn forget(&self, app: &str) {
        self.apps.lock().unwrap_or_else(|p| p.into_inner()).remove(app);
    }
}
