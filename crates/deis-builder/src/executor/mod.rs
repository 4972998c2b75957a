//! Build execution: turning a source tree into a slug, or a Dockerfile
//! into an image in the platform's registry.
//!
//! The pipeline hands a [`BuildJob`] to a [`BuildExecutor`]. The local
//! executor (this crate) runs buildpacks as child processes on this machine;
//! the Kubernetes executor (`deis-kubernetes`) runs the same job as a Job
//! whose pod runs `deis-workflow build-slug`, which is the local executor
//! again. Either way a buildpack build goes through [`slug::build_and_store`]:
//! the source comes from, and the slug, its process types and the app's build
//! cache go to, object storage. Executors never talk to the controller.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use deis_objects::Objects;

mod isolated;
mod local;
pub mod slug;

pub use isolated::IsolatedExecutor;
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
    /// The build cache directory, or `None` for none. Callers of
    /// [`BuildExecutor::build_slug`] pass `None`: the build restores the
    /// app's cache itself (unless `DEIS_DISABLE_CACHE` is set).
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
    /// Object storage failed (reading the source or cache, storing the slug).
    #[error("{0}")]
    Storage(#[from] deis_objects::ObjectsError),
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

/// What a stored buildpack build produced: the slug is at
/// [`deis_objects::slug_key`], its process types at
/// [`deis_objects::procfile_key`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredSlug {
    /// Command by process type.
    pub procfile: BTreeMap<String, String>,
}

/// Runs builds.
#[async_trait::async_trait]
pub trait BuildExecutor: Send + Sync + 'static {
    /// Builds the slug of `job` from the source tarball already stored at
    /// [`deis_objects::source_key`] (also unpacked at `job.source` on this
    /// machine), stores it in `objects`, and streams output lines to `log`.
    /// `job.cache` is ignored: the build restores and saves the app's
    /// cache in object storage itself, unless `DEIS_DISABLE_CACHE` is set.
    async fn build_slug(
        &self,
        objects: &Objects,
        job: BuildJob,
        log: BuildLog,
    ) -> Result<StoredSlug, BuildError>;

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

/// The process types of the repository's `Procfile` in `source` (none when
/// it has no Procfile).
pub async fn read_procfile(source: &Path) -> Result<BTreeMap<String, String>, BuildError> {
    match tokio::fs::read(source.join("Procfile")).await {
        Ok(text) => parse_procfile(&String::from_utf8_lossy(&text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(e) => Err(e.into()),
    }
}

/// Parses Procfile text (`type: command` lines), as stored beside a slug.
pub fn parse_procfile(text: &str) -> Result<BTreeMap<String, String>, BuildError> {
    local::parse_procfile(text).map_err(BuildError::Failed)
}

/// When set in the app's config, every config value is a build argument of
/// a Dockerfile build (`ARG` lines are appended to the Dockerfile), as in Deis.
pub const BUILD_ARGS_SETTING: &str = "DEIS_DOCKER_BUILD_ARGS_ENABLED";

/// What the pusher is told when the config becomes build arguments.
pub const BUILD_ARGS_NOTICE: &str =
    "-----> Passing the app's config as build arguments (DEIS_DOCKER_BUILD_ARGS_ENABLED)";

/// A variable name buildah and the Dockerfile `ARG` instruction accept.
fn valid_arg_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// When `env` has [`BUILD_ARGS_SETTING`], appends an `ARG` for every usable
/// config name to the `Dockerfile` in `source` and returns those names (as
/// Deis does: declared at the end, so buildah does not complain about
/// arguments the Dockerfile never uses); otherwise returns none.
pub async fn declare_build_args(
    source: &Path,
    env: &BTreeMap<String, String>,
) -> Result<Vec<String>, BuildError> {
    if !env.contains_key(BUILD_ARGS_SETTING) {
        return Ok(Vec::new());
    }
    let names: Vec<String> = env.keys().filter(|k| valid_arg_name(k)).cloned().collect();
    let dockerfile = source.join("Dockerfile");
    let mut text = tokio::fs::read_to_string(&dockerfile).await?;
    text.push('\n');
    for name in &names {
        text.push_str(&format!("ARG {name}\n"));
    }
    tokio::fs::write(&dockerfile, text).await?;
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_arg_names() {
        assert!(valid_arg_name("GREETING"));
        assert!(valid_arg_name("_x1"));
        assert!(!valid_arg_name("1X"));
        assert!(!valid_arg_name("A-B"));
        assert!(!valid_arg_name(""));
    }
}
