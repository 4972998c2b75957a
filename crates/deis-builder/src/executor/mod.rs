//! Build execution: turning a source tree into a slug, or a Dockerfile
//! into an image in the platform's registry.
//!
//! The pipeline hands a [`BuildJob`] to a [`BuildExecutor`]. The local
//! executor (this crate) runs buildpacks as child processes on this machine;
//! a Kubernetes executor (later) runs the same job as a Job. Executors do not
//! talk to object storage or the controller: the pipeline restores and saves
//! the cache directory and uploads the slug.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

mod local;

pub use local::LocalExecutor;

/// Everything one build needs.
#[derive(Clone, Debug)]
pub struct BuildJob {
    /// App id.
    pub app: String,
    /// The commit being built (40 hex characters).
    pub sha: String,
    /// The extracted source tree. The executor may modify it; the caller
    /// removes `work_dir` (which contains it) afterwards.
    pub source: PathBuf,
    /// A scratch directory for this build only (contains `source`).
    pub work_dir: PathBuf,
    /// The app's config values, handed to buildpacks as `ENV_DIR`.
    pub env: BTreeMap<String, String>,
    /// `BUILDPACK_URL` from the config: a git URL with an optional `#ref`
    /// (`file://` included). Overrides detection.
    pub buildpack_url: Option<String>,
    /// The build cache directory, or `None` when `DEIS_DISABLE_CACHE` is set.
    pub cache: Option<PathBuf>,
    /// How long the whole build may take.
    pub timeout: Duration,
    /// The largest slug accepted.
    pub max_slug_bytes: u64,
}

/// What a successful build produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuildOutput {
    /// The slug: a gzipped tar of the build directory (inside `work_dir`).
    pub slug: PathBuf,
    /// Its size in bytes.
    pub slug_bytes: u64,
    /// Command by process type: the repository's Procfile, else the
    /// buildpack's `default_process_types`.
    pub procfile: BTreeMap<String, String>,
    /// The name of the buildpack(s) used.
    pub buildpack: String,
}

/// Where build output goes, line by line, as it happens.
pub type BuildLog = tokio::sync::mpsc::Sender<String>;

/// Why a build failed. Messages are shown to the pusher as they are.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// No buildpack detected the app.
    #[error("Unable to select a buildpack")]
    NoBuildpack,
    /// A buildpack step failed (`compile` exited non-zero, ...).
    #[error("{0}")]
    Failed(String),
    /// The build ran longer than allowed.
    #[error("The build took longer than {0:?} and was stopped.")]
    Timeout(Duration),
    /// The slug is larger than allowed.
    #[error("{0}")]
    TooLarge(String),
    /// The builder itself failed (disk, process spawning, ...).
    #[error("build infrastructure error: {0}")]
    Io(#[from] std::io::Error),
}

/// Where the image of a Dockerfile build goes: the platform's registry.
#[derive(Clone)]
pub struct ImageTarget {
    /// `host:port/<app>:git-<sha8>`.
    pub reference: String,
    /// The builder's registry login.
    pub username: String,
    /// Its password (never logged).
    pub password: String,
    /// The registry speaks plain HTTP (it listens on loopback).
    pub insecure: bool,
}

impl std::fmt::Debug for ImageTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageTarget")
            .field("reference", &self.reference)
            .field("username", &self.username)
            .field("insecure", &self.insecure)
            .finish_non_exhaustive()
    }
}

/// What a successful Dockerfile build produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageOutput {
    /// The pushed manifest's digest (`sha256:...`).
    pub digest: String,
    /// The repository's Procfile, if it has one (empty otherwise: the
    /// image's own command runs as the `cmd` process type).
    pub procfile: BTreeMap<String, String>,
}

/// Runs builds.
#[async_trait::async_trait]
pub trait BuildExecutor: Send + Sync + 'static {
    /// Builds `job`, streaming output lines to `log`.
    async fn build(&self, job: BuildJob, log: BuildLog) -> Result<BuildOutput, BuildError>;

    /// Builds the `Dockerfile` at the root of `job.source` into an image and
    /// pushes it to `target`, streaming output lines to `log`.
    async fn build_image(
        &self,
        job: BuildJob,
        target: ImageTarget,
        log: BuildLog,
    ) -> Result<ImageOutput, BuildError> {
        let _ = (job, target, log);
        Err(BuildError::Failed(
            "This builder cannot build Dockerfiles; remove the Dockerfile to build with a buildpack.".into(),
        ))
    }
}
