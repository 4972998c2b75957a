//! HTTP(S) drains: batches of newline-delimited JSON, one POST per batch.

use std::error::Error as _;
use std::sync::Arc;

use deis_scheduler::LogLine;
use url::Url;

use super::target::url_host_port;

/// Appends one line as a JSON object and a newline: `time` (RFC 3339 with
/// microseconds, UTC), `app`, `source` (`app`, `router` or `deis`),
/// `process`, `release` and `message`.
pub(super) fn ndjson(out: &mut Vec<u8>, line: &LogLine) {
    let time = line.time.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let fields = [
        ("time", time.as_str()),
        ("app", line.app.as_str()),
        ("source", line.source.as_str()),
        ("process", line.process.as_str()),
        ("release", line.release.as_str()),
        ("message", line.text.as_str()),
    ];
    out.push(b'{');
    for (index, (name, value)) in fields.into_iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        out.push(b'"');
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b"\":");
        // Serialising a string into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, value);
    }
    out.extend_from_slice(b"}\n");
}

/// An HTTP endpoint.
pub(super) struct HttpSink {
    client: reqwest::Client,
    url: Url,
    endpoint: String,
}

impl HttpSink {
    pub(super) fn new(client: reqwest::Client, url: Url) -> HttpSink {
        let endpoint = url_host_port(&url);
        HttpSink {
            client,
            url,
            endpoint,
        }
    }

    /// POSTs the lines as one batch; any 2xx answer means delivered.
    pub(super) async fn deliver(&mut self, lines: &[Arc<LogLine>]) -> Result<(), String> {
        let mut body = Vec::with_capacity(lines.len() * 160);
        for line in lines {
            ndjson(&mut body, line);
        }
        let response = self
            .client
            .post(self.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/x-ndjson")
            .body(body)
            .send()
            .await
            .map_err(|error| self.describe(&error))?;
        let status = response.status();
        // Read a small answer so that the connection can be reused; a big
        // one is left (the connection is then closed).
        let mut response = response;
        let mut read = 0;
        while read < 64 * 1024 {
            match response.chunk().await {
                Ok(Some(chunk)) => read += chunk.len(),
                _ => break,
            }
        }
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("{} answered HTTP {status}", self.endpoint))
        }
    }

    /// One sentence for a failed request, without the URL (it may hold
    /// credentials).
    fn describe(&self, error: &reqwest::Error) -> String {
        let endpoint = &self.endpoint;
        if error.is_timeout() {
            return format!("the request to {endpoint} timed out");
        }
        let mut cause: Option<&(dyn std::error::Error + 'static)> = error.source();
        let mut innermost = None;
        while let Some(current) = cause {
            if let Some(io) = current.downcast_ref::<std::io::Error>()
                && io.kind() == std::io::ErrorKind::ConnectionRefused
            {
                return format!("connection refused by {endpoint}");
            }
            innermost = Some(current);
            cause = current.source();
        }
        match innermost {
            Some(cause) => format!("the request to {endpoint} failed: {cause}"),
            None => format!("the request to {endpoint} failed: {error}"),
        }
    }
}
