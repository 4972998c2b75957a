//! Platform events ("alice deployed v7") go to the app's logs as `deis`
//! lines, beside its processes' output and the router's access lines.

use chrono::Utc;
use deis_scheduler::{LogLine, LogSource};

use crate::Inner;

impl Inner {
    /// Records a platform event for an app.
    pub(crate) fn event(&self, app: &str, message: &str) {
        tracing::info!(app, message, "app event");
        self.logs.send(LogLine {
            time: Utc::now(),
            app: app.to_owned(),
            source: LogSource::Platform,
            process: "deis".into(),
            release: String::new(),
            text: message.to_owned(),
        });
    }
}
