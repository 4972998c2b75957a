//! Per-app log drains: every line of an app is also shipped to the syslog
//! or HTTP(S) endpoints configured on it, as Heroku's drains do.
//!
//! [`Drains`] keeps, per app, the drains the controller set
//! ([`Drains::set`]). The ingest path hands it every line
//! ([`Drains::offer`]); each drain has its own bounded buffer and its own
//! task that writes the buffer out:
//!
//! - `syslog://host:port` and `syslog+tls://host:port`: RFC 5424 messages,
//!   octet-counted (RFC 6587), over one connection kept open and reused,
//!   re-opened after an error. PRI is 190 (local7.info), HOSTNAME the app,
//!   APP-NAME the source (`app`, `router`, `deis`), PROCID the process
//!   (`web.1`). TLS verifies the server against the system roots plus
//!   [`DrainOptions::extra_roots`], with SNI set to the host.
//! - `https://...` and `http://...`: a POST per batch (up to
//!   [`DrainOptions::batch_lines`] lines, or what arrived within
//!   [`DrainOptions::batch_delay`]), `Content-Type: application/x-ndjson`,
//!   one JSON object per line: `time` (RFC 3339, microseconds, UTC), `app`,
//!   `source`, `process`, `release`, `message`. Any 2xx answer is success;
//!   anything else (3xx: redirects are not followed, 4xx, 5xx, a timeout) is
//!   a failure, and the same batch is retried whole. 4xx answers are retried
//!   too: they are usually a misconfigured endpoint that gets fixed, and
//!   the bounded buffer keeps a drain that never recovers harmless.
//!
//! Lines leave a drain's buffer only once written. When it is full the
//! newest line is dropped and counted (one per line). A failed attempt is
//! retried after a backoff doubling from [`DrainOptions::backoff_min`] to
//! [`DrainOptions::backoff_max`], reset by a success; a drain that comes
//! back receives its buffered lines in order. Delivery is at least once: a
//! write that fails half way is retried whole, so a receiver may see a few
//! lines twice. [`Drains::stats`] tells, per drain, the lines delivered,
//! dropped and buffered, and whether the last attempt succeeded (a drain is
//! healthy until an attempt fails) with the last error in one sentence.
//!
//! The controller checks URLs with [`parse_drain_url`] and enforces how many
//! drains an app may have; a drain whose URL is refused anyway shows the
//! error in its stats and counts every line as dropped.

mod http;
mod syslog;
mod target;

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use arc_swap::ArcSwap;
use deis_scheduler::{DrainSpec, DrainStats, LogLine};
use rustls::pki_types::CertificateDer;
use tokio::runtime::Handle;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep_until};

pub use target::{DrainTarget, DrainUrlError, parse_drain_url};

use crate::metrics::{DropReason, LogMetrics};

/// How long opening a connection (TCP and TLS handshake) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long writing a batch (syslog) or an HTTP request may take.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long [`Drains::shutdown`] lets drains flush.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// How drains buffer, batch and retry.
#[derive(Clone, Debug)]
pub struct DrainOptions {
    /// Lines each drain keeps while its endpoint is down or slow; past
    /// that, new lines are dropped (and counted). Default 10 000.
    pub buffer_lines: usize,
    /// The first wait after a failed attempt (at least 1 ms). Default
    /// 500 ms.
    pub backoff_min: Duration,
    /// The longest wait between attempts. Default 30 s.
    pub backoff_max: Duration,
    /// The most lines in one HTTP POST (and one syslog write). Default 500.
    pub batch_lines: usize,
    /// How long an HTTP drain waits for a batch to fill before sending what
    /// it has. Default 200 ms.
    pub batch_delay: Duration,
    /// Certificate authorities trusted in addition to the system's, for
    /// `syslog+tls` and `https` drains.
    pub extra_roots: Vec<CertificateDer<'static>>,
}

impl Default for DrainOptions {
    fn default() -> Self {
        DrainOptions {
            buffer_lines: 10_000,
            backoff_min: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
            batch_lines: 500,
            batch_delay: Duration::from_millis(200),
            extra_roots: Vec::new(),
        }
    }
}

/// Every app's drains. Cloning is cheap (the clones share the drains).
///
/// [`Drains::set`] starts tasks on the Tokio runtime it is called from (or,
/// outside one, the runtime [`Drains::new`] was called from).
#[derive(Clone)]
pub struct Drains {
    inner: Arc<Inner>,
}

type AppDrains = Arc<[Arc<Drain>]>;

struct Inner {
    options: DrainOptions,
    metrics: LogMetrics,
    /// Only apps with drains are here; read without locking by `offer`,
    /// replaced whole by `set` and `forget` (rare).
    apps: ArcSwap<HashMap<Arc<str>, AppDrains>>,
    /// Serialises `set`, `forget` and `shutdown`.
    writer: Mutex<()>,
    shut: AtomicBool,
    runtime: Option<Handle>,
    tls: OnceLock<Arc<rustls::ClientConfig>>,
    http: OnceLock<Result<reqwest::Client, String>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        for drains in self.apps.load().values() {
            for drain in drains.iter() {
                drain.abort();
            }
        }
    }
}

impl fmt::Debug for Drains {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Drains")
            .field("apps", &self.inner.apps.load().len())
            .finish_non_exhaustive()
    }
}

impl Drains {
    /// No drains yet.
    pub fn new(options: DrainOptions) -> Drains {
        Drains::with_metrics(options, LogMetrics::default())
    }

    /// No drains yet; dropped lines are also counted into `metrics`.
    pub(crate) fn with_metrics(options: DrainOptions, metrics: LogMetrics) -> Drains {
        Drains {
            inner: Arc::new(Inner {
                options,
                metrics,
                apps: ArcSwap::from_pointee(HashMap::new()),
                writer: Mutex::new(()),
                shut: AtomicBool::new(false),
                runtime: Handle::try_current().ok(),
                tls: OnceLock::new(),
                http: OnceLock::new(),
            }),
        }
    }

    /// Makes `drains` the app's drains: starts the new ones, stops the ones
    /// not listed any more, and keeps the ones whose id and URL are
    /// unchanged (with their buffers and counters). A drain whose URL
    /// changed is a new drain; of drains listed twice with the same id, the
    /// first counts. An empty list removes them all. Ignored after
    /// [`Drains::shutdown`].
    pub fn set(&self, app: &str, drains: &[DrainSpec]) {
        let _writer = lock(&self.inner.writer);
        if self.inner.shut.load(Ordering::SeqCst) {
            return;
        }
        let current = self.inner.apps.load_full();
        let old: &[Arc<Drain>] = current.get(app).map_or(&[], |drains| &drains[..]);
        let mut kept: Vec<Arc<Drain>> = Vec::with_capacity(drains.len());
        for spec in drains {
            if kept.iter().any(|drain| drain.id == spec.id) {
                continue;
            }
            match old
                .iter()
                .find(|drain| drain.id == spec.id && drain.url == spec.url)
            {
                Some(drain) => kept.push(Arc::clone(drain)),
                None => kept.push(self.start(app, spec)),
            }
        }
        let removed: Vec<Arc<Drain>> = old
            .iter()
            .filter(|drain| !kept.iter().any(|k| Arc::ptr_eq(k, drain)))
            .cloned()
            .collect();
        let mut next = HashMap::clone(&current);
        if kept.is_empty() {
            next.remove(app);
        } else {
            next.insert(Arc::from(app), kept.into());
        }
        self.inner.apps.store(Arc::new(next));
        for drain in removed {
            drain.abort();
        }
    }

    /// Hands a line to its app's drains. Never blocks nor waits: with no
    /// drains it costs a hash lookup; otherwise, per drain, a short lock to
    /// push the line (or count it dropped when the buffer is full).
    pub fn offer(&self, line: &Arc<LogLine>) {
        let apps = self.inner.apps.load();
        if apps.is_empty() {
            return;
        }
        if let Some(drains) = apps.get(line.app.as_str()) {
            for drain in drains.iter() {
                drain.state.offer(line);
            }
        }
    }

    /// How each of the app's drains is doing, in the order they were set.
    pub fn stats(&self, app: &str) -> Vec<DrainStats> {
        self.inner
            .apps
            .load()
            .get(app)
            .map(|drains| drains.iter().map(|drain| drain.stats()).collect())
            .unwrap_or_default()
    }

    /// Stops and drops all the app's drains (buffered lines are lost).
    pub fn forget(&self, app: &str) {
        self.set(app, &[]);
    }

    /// Stops every drain: each gets a short time (2 s at most in all) to
    /// write what it has buffered if its endpoint answers, then its task is
    /// stopped. Later calls to [`Drains::set`] start nothing.
    pub async fn shutdown(&self) {
        let drains: Vec<Arc<Drain>> = {
            let _writer = lock(&self.inner.writer);
            self.inner.shut.store(true, Ordering::SeqCst);
            let apps = self.inner.apps.swap(Arc::new(HashMap::new()));
            apps.values().flat_map(|drains| drains.iter().cloned()).collect()
        };
        for drain in &drains {
            drain.state.closing.send_replace(true);
        }
        let deadline = Instant::now() + SHUTDOWN_GRACE;
        for drain in &drains {
            let task = lock(&drain.task).take();
            if let Some(mut task) = task
                && tokio::time::timeout_at(deadline, &mut task).await.is_err()
            {
                task.abort();
            }
        }
    }

    /// A new drain, running unless its URL is refused.
    fn start(&self, app: &str, spec: &DrainSpec) -> Arc<Drain> {
        let options = &self.inner.options;
        let runtime = Handle::try_current().ok().or_else(|| self.inner.runtime.clone());
        let sink = parse_drain_url(&spec.url)
            .map_err(|error| error.to_string())
            .and_then(|target| self.sink(target));
        let started = match (sink, runtime) {
            (Ok(sink), Some(runtime)) => Ok((sink, runtime)),
            (Err(error), _) => Err(error),
            (Ok(_), None) => Err("the drain could not start: there is no Tokio runtime".into()),
        };
        match started {
            Ok((sink, runtime)) => {
                let state = Arc::new(DrainState::new(
                    app,
                    &spec.id,
                    options.buffer_lines,
                    options.batch_lines.max(1),
                    self.inner.metrics.clone(),
                ));
                let timing = Timing {
                    backoff_min: options.backoff_min.max(Duration::from_millis(1)),
                    backoff_max: options
                        .backoff_max
                        .max(options.backoff_min)
                        .max(Duration::from_millis(1)),
                    batch_lines: options.batch_lines.max(1),
                    batch_delay: options.batch_delay,
                    batched: matches!(sink, Sink::Http(_)),
                };
                let closing = state.closing.subscribe();
                let task = runtime.spawn(run(Arc::clone(&state), sink, timing, closing));
                Arc::new(Drain {
                    id: spec.id.clone(),
                    url: spec.url.clone(),
                    state,
                    task: Mutex::new(Some(task)),
                })
            }
            Err(error) => {
                tracing::warn!(app, drain = %spec.id, "drain not started: {error}");
                let state = Arc::new(DrainState::new(app, &spec.id, 0, 1, self.inner.metrics.clone()));
                *lock(&state.status) = Status {
                    healthy: false,
                    last_error: Some(error),
                };
                Arc::new(Drain {
                    id: spec.id.clone(),
                    url: spec.url.clone(),
                    state,
                    task: Mutex::new(None),
                })
            }
        }
    }

    fn sink(&self, target: DrainTarget) -> Result<Sink, String> {
        match target {
            DrainTarget::Syslog { host, port, tls } => {
                let tls = tls.then(|| self.tls_config());
                syslog::SyslogSink::new(host, port, tls).map(Sink::Syslog)
            }
            DrainTarget::Http { url } => {
                let client = self.http_client()?;
                Ok(Sink::Http(http::HttpSink::new(client, url)))
            }
        }
    }

    /// The TLS client configuration of every drain: ring, the system roots
    /// and the extra ones.
    fn tls_config(&self) -> Arc<rustls::ClientConfig> {
        Arc::clone(
            self.inner
                .tls
                .get_or_init(|| Arc::new(tls_config(&self.inner.options.extra_roots))),
        )
    }

    fn http_client(&self) -> Result<reqwest::Client, String> {
        self.inner
            .http
            .get_or_init(|| {
                let mut tls = (*self.tls_config()).clone();
                tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
                reqwest::Client::builder()
                    .tls_backend_preconfigured(tls)
                    .connect_timeout(CONNECT_TIMEOUT)
                    .timeout(WRITE_TIMEOUT)
                    .redirect(reqwest::redirect::Policy::none())
                    .user_agent(concat!("deis-logger/", env!("CARGO_PKG_VERSION")))
                    .build()
                    .map_err(|error| format!("the HTTP client could not be created: {error}"))
            })
            .clone()
    }
}

fn tls_config(extra_roots: &[CertificateDer<'static>]) -> rustls::ClientConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .expect("ring supports rustls's default protocol versions");
    match rustls_platform_verifier::Verifier::new_with_extra_roots(extra_roots.iter().cloned(), provider) {
        Ok(verifier) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth(),
        Err(error) => {
            // No system roots (a bare container): trust the extra ones only.
            tracing::warn!("TLS drains trust only the configured extra roots: {error}");
            let mut roots = rustls::RootCertStore::empty();
            roots.add_parsable_certificates(extra_roots.iter().cloned());
            builder.with_root_certificates(roots).with_no_client_auth()
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One drain of one app.
struct Drain {
    id: String,
    url: String,
    state: Arc<DrainState>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Drain {
    fn abort(&self) {
        if let Some(task) = lock(&self.task).take() {
            task.abort();
        }
    }

    fn stats(&self) -> DrainStats {
        let status = lock(&self.state.status);
        DrainStats {
            id: self.id.clone(),
            delivered: self.state.delivered.load(Ordering::Relaxed),
            dropped: self.state.dropped.load(Ordering::Relaxed),
            buffered: self.state.len() as u64,
            healthy: status.healthy,
            last_error: status.last_error.clone(),
        }
    }
}

/// What a drain's task and the ingest path share.
struct DrainState {
    app: String,
    id: String,
    /// Lines not yet written, oldest first; only the task removes them.
    buffer: Mutex<VecDeque<Arc<LogLine>>>,
    capacity: usize,
    batch_lines: usize,
    /// Rung when the buffer stops being empty or reaches a full batch.
    wake: Notify,
    /// Set by `shutdown`: write what is buffered, then stop.
    closing: watch::Sender<bool>,
    delivered: AtomicU64,
    dropped: AtomicU64,
    /// The logger's counters (dropped lines of all drains).
    metrics: LogMetrics,
    status: Mutex<Status>,
}

struct Status {
    healthy: bool,
    last_error: Option<String>,
}

impl DrainState {
    fn new(app: &str, id: &str, capacity: usize, batch_lines: usize, metrics: LogMetrics) -> DrainState {
        DrainState {
            app: app.to_owned(),
            id: id.to_owned(),
            buffer: Mutex::new(VecDeque::new()),
            capacity,
            batch_lines,
            wake: Notify::new(),
            closing: watch::Sender::new(false),
            delivered: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            metrics,
            status: Mutex::new(Status {
                healthy: true,
                last_error: None,
            }),
        }
    }

    fn offer(&self, line: &Arc<LogLine>) {
        let mut buffer = lock(&self.buffer);
        let len = buffer.len();
        if len >= self.capacity {
            drop(buffer);
            self.dropped.fetch_add(1, Ordering::Relaxed);
            self.metrics.dropped(DropReason::DrainBufferFull, 1);
            return;
        }
        buffer.push_back(Arc::clone(line));
        drop(buffer);
        if len == 0 || len + 1 == self.batch_lines {
            self.wake.notify_one();
        }
    }

    fn len(&self) -> usize {
        lock(&self.buffer).len()
    }

    /// The oldest `count` lines, left in the buffer.
    fn peek(&self, count: usize) -> Vec<Arc<LogLine>> {
        lock(&self.buffer).iter().take(count).cloned().collect()
    }

    /// The oldest `count` lines were written.
    fn written(&self, count: usize) {
        {
            let mut buffer = lock(&self.buffer);
            let count = count.min(buffer.len());
            buffer.drain(..count);
            if buffer.is_empty() && buffer.capacity() > 4096 {
                buffer.shrink_to(1024);
            }
        }
        self.delivered.fetch_add(count as u64, Ordering::Relaxed);
        let mut status = lock(&self.status);
        if !status.healthy {
            tracing::info!(app = %self.app, drain = %self.id, "drain recovered");
        }
        *status = Status {
            healthy: true,
            last_error: None,
        };
    }

    fn failed(&self, error: String) {
        let mut status = lock(&self.status);
        if status.healthy {
            tracing::warn!(app = %self.app, drain = %self.id, "drain failing: {error}");
        }
        *status = Status {
            healthy: false,
            last_error: Some(error),
        };
    }
}

enum Sink {
    Syslog(syslog::SyslogSink),
    Http(http::HttpSink),
}

impl Sink {
    async fn deliver(&mut self, lines: &[Arc<LogLine>]) -> Result<(), String> {
        match self {
            Sink::Syslog(sink) => sink.deliver(lines).await,
            Sink::Http(sink) => sink.deliver(lines).await,
        }
    }

    async fn close(&mut self) {
        if let Sink::Syslog(sink) = self {
            sink.close().await;
        }
    }
}

struct Timing {
    backoff_min: Duration,
    backoff_max: Duration,
    batch_lines: usize,
    batch_delay: Duration,
    /// Whether to wait `batch_delay` for a batch to fill (HTTP).
    batched: bool,
}

/// A drain's task: write batches, back off on failure, until stopped. A
/// failed batch is retried as it was (the same lines, no more), so an HTTP
/// receiver sees the same body again.
async fn run(state: Arc<DrainState>, mut sink: Sink, timing: Timing, mut closing: watch::Receiver<bool>) {
    let mut backoff = timing.backoff_min;
    let mut failed: Option<Vec<Arc<LogLine>>> = None;
    loop {
        let batch = match failed.take() {
            Some(batch) => batch,
            None => match next_batch(&state, &timing, &mut closing).await {
                Some(batch) => batch,
                None => break,
            },
        };
        match sink.deliver(&batch).await {
            Ok(()) => {
                state.written(batch.len());
                backoff = timing.backoff_min;
            }
            Err(error) => {
                state.failed(error);
                if *closing.borrow() {
                    break;
                }
                let deadline = Instant::now() + backoff;
                tokio::select! {
                    _ = sleep_until(deadline) => {}
                    _ = closing.wait_for(|closing| *closing) => break,
                }
                backoff = (backoff * 2).min(timing.backoff_max);
                failed = Some(batch);
            }
        }
    }
    sink.close().await;
}

/// Waits for lines and returns the oldest batch (still buffered); `None`
/// once closing with nothing left.
async fn next_batch(
    state: &DrainState,
    timing: &Timing,
    closing: &mut watch::Receiver<bool>,
) -> Option<Vec<Arc<LogLine>>> {
    loop {
        let len = state.len();
        let is_closing = *closing.borrow();
        if len == 0 {
            if is_closing {
                return None;
            }
            tokio::select! {
                _ = state.wake.notified() => {}
                _ = closing.wait_for(|closing| *closing) => {}
            }
            continue;
        }
        if timing.batched && len < timing.batch_lines && !is_closing {
            let deadline = Instant::now() + timing.batch_delay;
            loop {
                tokio::select! {
                    _ = sleep_until(deadline) => break,
                    _ = closing.wait_for(|closing| *closing) => break,
                    _ = state.wake.notified() => {
                        if state.len() >= timing.batch_lines {
                            break;
                        }
                    }
                }
            }
        }
        return Some(state.peek(timing.batch_lines));
    }
}
