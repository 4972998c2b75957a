//! The `Scheduler` trait: how the controller makes processes run.
//!
//! Architecture invariant: the controller never talks to a runtime directly.
//! It describes the desired state of one app (a release and its formation)
//! and a scheduler implementation — local supervised processes, or
//! Kubernetes — makes it so. Implementations must be idempotent: the
//! controller re-applies the desired state of every app when it starts.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use deis_core::ConfigData;

pub mod attach;
pub mod logs;
mod no_runtime;
mod recording;
pub mod routing;

pub use attach::{RunInput, RunIo, RunOutput, TtySize};
pub use logs::{
    DrainSpec, DrainStats, FollowEvent, LogError, LogFollow, LogLine, LogQuery, LogService, LogSink,
    LogSource, NoLogs,
};
pub use no_runtime::NoRuntime;
pub use recording::{RecordedCall, RecordingScheduler};
pub use routing::{AppEndpoints, Endpoint, EndpointsWatch};

/// How a build was produced, which decides how its processes start.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum BuildKind {
    /// A slug built by a buildpack from a git push.
    Buildpack,
    /// An image built from a Dockerfile in a git push.
    Dockerfile,
    /// An existing image (`deis pull`).
    Image,
}

impl BuildKind {
    /// Deis's rule: a Dockerfile build if flagged so, a buildpack build if it
    /// has a commit, otherwise an image.
    pub fn classify(sha: &str, dockerfile: &str) -> BuildKind {
        if !dockerfile.is_empty() {
            BuildKind::Dockerfile
        } else if !sha.is_empty() {
            BuildKind::Buildpack
        } else {
            BuildKind::Image
        }
    }
}

/// The build a release runs.
#[derive(Clone, Debug, PartialEq)]
pub struct BuildSpec {
    /// The build's uuid.
    pub uuid: String,
    /// How it was built.
    pub kind: BuildKind,
    /// Image reference, or the slug's object-store key.
    pub image: String,
    /// Source commit, empty for images.
    pub sha: String,
    /// Command by process type.
    pub procfile: BTreeMap<String, String>,
}

/// One release of an app, with everything a runtime needs to start it.
#[derive(Clone, Debug, PartialEq)]
pub struct ReleaseSpec {
    /// App id.
    pub app: String,
    /// Release number (the N of vN).
    pub version: i32,
    /// The release summary.
    pub summary: String,
    /// When the release was created.
    pub created: DateTime<Utc>,
    /// The build.
    pub build: BuildSpec,
    /// Limits, tags, registry credentials and health checks.
    pub config: ConfigData,
    /// The process environment: platform defaults (`DEIS_APP`,
    /// `WORKFLOW_RELEASE`, ...) overlaid by the user's config, which wins.
    /// `PORT` is present only when the user set it; otherwise the runtime
    /// chooses one.
    pub env: BTreeMap<String, String>,
}

/// The desired state of an app: a release at a formation.
#[derive(Clone, Debug, PartialEq)]
pub struct DeploySpec {
    /// What to run.
    pub release: ReleaseSpec,
    /// How many processes of each type.
    pub structure: BTreeMap<String, i32>,
    /// The process type the router sends traffic to (`web`, else `cmd`), if
    /// the app is routable.
    pub routable_type: Option<String>,
    /// How long the new release may take to become ready.
    pub deploy_timeout: Duration,
    /// Autoscaling per process type (`deis autoscale:set`); runtimes that
    /// can autoscale (Kubernetes: an HPA) act on it, others ignore it.
    pub autoscale: BTreeMap<String, deis_core::validate::Autoscale>,
}

/// A one-off command in an app's release.
#[derive(Clone, Debug, PartialEq)]
pub struct RunSpec {
    /// The release whose environment and build the command uses.
    pub release: ReleaseSpec,
    /// The command, run with `bash -c`.
    pub command: String,
    /// How long it may run.
    pub timeout: Duration,
}

/// The result of a one-off command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunOutcome {
    /// The command's exit status (128 + signal when killed).
    pub exit_code: i32,
    /// Its combined stdout and stderr.
    pub output: String,
}

/// Which processes a restart applies to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProcessSelector {
    /// Every process of the app.
    All,
    /// The processes of one type.
    Type(String),
    /// One process by name.
    Name(String),
}

/// The life-cycle state of a process, as `deis ps` shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ProcessState {
    /// Started, not yet ready.
    Starting,
    /// Running and ready.
    Up,
    /// Exited and waiting to be restarted (a crash loop shows as this).
    Crashed,
    /// Being stopped.
    Terminating,
    /// Stopped.
    Down,
}

impl ProcessState {
    /// The name Deis uses.
    pub fn as_str(self) -> &'static str {
        match self {
            ProcessState::Starting => "starting",
            ProcessState::Up => "up",
            ProcessState::Crashed => "crashed",
            ProcessState::Terminating => "terminating",
            ProcessState::Down => "down",
        }
    }
}

/// One process of an app.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessInfo {
    /// `<app>-<type>-<n>`.
    pub name: String,
    /// Process type.
    pub ptype: String,
    /// Current state.
    pub state: ProcessState,
    /// The release it runs.
    pub release: i32,
    /// When it was started.
    pub started: Option<DateTime<Utc>>,
}

/// Why a scheduler call failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SchedulerError {
    /// The release could not be rolled out (it never became ready, its image
    /// is missing, ...). The previous release keeps serving.
    #[error("{0}")]
    DeployFailed(String),
    /// The runtime cannot be reached or cannot act right now.
    #[error("{0}")]
    Unavailable(String),
    /// No process matches the selector.
    #[error("{0}")]
    NotFound(String),
    /// No node carries the requested tags.
    #[error("{0}")]
    NoMatchingNodes(String),
}

impl From<SchedulerError> for deis_core::Error {
    fn from(err: SchedulerError) -> Self {
        match err {
            SchedulerError::DeployFailed(m) | SchedulerError::NoMatchingNodes(m) => {
                deis_core::Error::invalid(m)
            }
            SchedulerError::Unavailable(m) => deis_core::Error::unavailable(m),
            SchedulerError::NotFound(m) => deis_core::Error::not_found(m),
        }
    }
}

/// What every runtime implements. All methods are idempotent for the same
/// input, so the controller can re-apply state after a restart.
#[async_trait::async_trait]
pub trait Scheduler: Send + Sync + 'static {
    /// Rolls out `spec.release` at `spec.structure` without downtime, and
    /// returns once it serves (or failed, leaving the previous release up).
    async fn deploy(&self, spec: &DeploySpec) -> Result<(), SchedulerError>;

    /// Changes the number of processes of the current release.
    async fn scale(&self, spec: &DeploySpec) -> Result<(), SchedulerError>;

    /// Of `specs` (every app's desired state, when the platform starts),
    /// the indexes of those that may not run as specified and so need a
    /// `deploy`. The others are known to run as specified, and count as
    /// deployed from then on. By default: all of them.
    async fn out_of_date(&self, specs: &[DeploySpec]) -> Result<Vec<usize>, SchedulerError> {
        Ok((0..specs.len()).collect())
    }

    /// Restarts matching processes and returns the processes afterwards.
    async fn restart(
        &self,
        app: &str,
        selector: &ProcessSelector,
    ) -> Result<Vec<ProcessInfo>, SchedulerError>;

    /// Runs a one-off command attached to a client: output streams to
    /// `io.output` while it runs; with `io.tty`, under a pseudo-terminal fed
    /// by `io.input`. Returns the exit status (128 + signal when killed).
    async fn run_attached(&self, spec: &RunSpec, io: RunIo) -> Result<i32, SchedulerError>;

    /// Runs a one-off command to completion and collects its output.
    async fn run(&self, spec: &RunSpec) -> Result<RunOutcome, SchedulerError> {
        let (output, mut received) = tokio::sync::mpsc::channel(64);
        let collect = tokio::spawn(async move {
            let mut bytes = Vec::new();
            while let Some(chunk) = received.recv().await {
                match chunk {
                    RunOutput::Stdout(b) | RunOutput::Stderr(b) => bytes.extend_from_slice(&b),
                }
            }
            bytes
        });
        let exit_code = self
            .run_attached(
                spec,
                RunIo {
                    output,
                    input: None,
                    tty: None,
                },
            )
            .await?;
        let bytes = collect.await.unwrap_or_default();
        Ok(RunOutcome {
            exit_code,
            output: String::from_utf8_lossy(&bytes).into_owned(),
        })
    }

    /// Lists an app's processes.
    async fn list(&self, app: &str) -> Result<Vec<ProcessInfo>, SchedulerError>;

    /// Stops every process of an app and frees what it used.
    async fn destroy(&self, app: &str) -> Result<(), SchedulerError>;

    /// Checks that at least one node carries all `tags`.
    async fn check_tags(&self, tags: &BTreeMap<String, String>) -> Result<(), SchedulerError>;

    /// The ready endpoints of every app, as they change.
    fn endpoints(&self) -> EndpointsWatch;

    /// What this runtime can enforce.
    fn capabilities(&self) -> Capabilities;

    /// Stops what this runtime runs locally, when the platform shuts down.
    async fn shutdown(&self) {}

    /// How many processes are in each state right now, across all apps, if
    /// the runtime can tell at once without waiting (metrics read it when
    /// scraped). `None`: it cannot.
    fn process_counts(&self) -> Option<ProcessCounts> {
        None
    }
}

/// Processes by state across all apps (stopped ones are not counted).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProcessCounts {
    /// Started, not yet ready.
    pub starting: u64,
    /// Running and ready.
    pub up: u64,
    /// Waiting to be restarted.
    pub crashed: u64,
    /// Being stopped.
    pub terminating: u64,
}

impl ProcessCounts {
    /// Counts one process in `state` (`Down` is not counted).
    pub fn add(&mut self, state: ProcessState) {
        match state {
            ProcessState::Starting => self.starting += 1,
            ProcessState::Up => self.up += 1,
            ProcessState::Crashed => self.crashed += 1,
            ProcessState::Terminating => self.terminating += 1,
            ProcessState::Down => {}
        }
    }
}

/// How a resource limit is enforced by a runtime.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Enforcement {
    /// Enforced by the kernel's control groups (or Kubernetes).
    Enforced,
    /// Approximated (e.g. an address-space rlimit for memory).
    Approximated,
    /// Recorded but not enforced on this machine.
    NotEnforced,
}

impl Enforcement {
    /// A short word for clients.
    pub fn as_str(self) -> &'static str {
        match self {
            Enforcement::Enforced => "enforced",
            Enforcement::Approximated => "approximated",
            Enforcement::NotEnforced => "not-enforced",
        }
    }
}

/// What a runtime can enforce, so users are told honestly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capabilities {
    /// `limits:set --memory`.
    pub memory_limits: Enforcement,
    /// `limits:set --cpu`.
    pub cpu_limits: Enforcement,
    /// `autoscale:set`.
    pub autoscaling: Enforcement,
}

/// A watch of endpoints that never change (runtimes without routing).
pub fn no_endpoints() -> EndpointsWatch {
    // One sender for the whole process, kept alive so receivers never see
    // the channel close.
    static NONE: std::sync::LazyLock<tokio::sync::watch::Sender<std::sync::Arc<AppEndpoints>>> =
        std::sync::LazyLock::new(|| tokio::sync::watch::channel(std::sync::Arc::new(AppEndpoints::new())).0);
    NONE.subscribe()
}

/// Sorted `k=v` list, as Deis prints tags in errors.
pub fn format_tags(tags: &BTreeMap<String, String>) -> String {
    tags.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}
