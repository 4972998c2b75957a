//! What happens to a push: the commit becomes a source tarball in object
//! storage, a buildpack build turns it into a slug, and the controller makes
//! it a release. Everything is streamed to the pusher as it happens.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::process::Command;

use crate::controller::ControllerClient;
use crate::executor::{BuildExecutor, BuildJob, ImageTarget, slug};
use crate::hook::{HookHandler, HookRequest, Output, PushContext, RefUpdate};
use crate::metrics::BuildMetrics;
use deis_objects::{self as objects, Objects};

/// Limits and places of builds.
#[derive(Clone, Debug)]
pub struct BuildSettings {
    /// Scratch space for builds (one directory per build, removed after).
    pub work_root: PathBuf,
    /// How long a build may take.
    pub timeout: Duration,
    /// The largest source tree (uncompressed tar) accepted.
    pub max_source_bytes: u64,
    /// The largest slug accepted.
    pub max_slug_bytes: u64,
    /// Where Dockerfile builds push their images.
    pub registry: Option<ImageRegistry>,
}

/// The platform's image registry, as the builder pushes to it.
#[derive(Clone)]
pub struct ImageRegistry {
    /// `host:port`.
    pub host: String,
    /// The builder's login.
    pub username: String,
    /// Its password.
    pub password: String,
    /// Plain HTTP (a registry on loopback).
    pub insecure: bool,
}

impl std::fmt::Debug for ImageRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageRegistry")
            .field("host", &self.host)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// The image of a Dockerfile build, as Deis names it: `<app>:git-<sha8>`.
fn dockerfile_image(app: &str, sha: &str) -> String {
    format!("{app}:git-{}", sha.get(..8).unwrap_or(sha))
}

/// Runs the builds of pushes.
pub(crate) struct Pipeline {
    pub(crate) controller: ControllerClient,
    pub(crate) objects: Objects,
    pub(crate) executor: Arc<dyn BuildExecutor>,
    pub(crate) settings: BuildSettings,
    pub(crate) metrics: BuildMetrics,
}

/// Removes a build's scratch directory however the build ends.
struct WorkDir(PathBuf);

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A failed step: the message shown to the pusher.
struct Failure(String);

impl<E: std::fmt::Display> From<E> for Failure {
    fn from(err: E) -> Self {
        Failure(err.to_string())
    }
}

async fn say(output: &Output, text: impl Into<String>) {
    let _ = output.send(text.into()).await;
}

/// Only pushes to these branches deploy.
fn deploys(name: &str) -> bool {
    matches!(name, "refs/heads/main" | "refs/heads/master")
}

const ZERO: &str = "0000000000000000000000000000000000000000";

#[async_trait::async_trait]
impl HookHandler for Pipeline {
    async fn handle(&self, context: PushContext, request: HookRequest, output: Output) -> i32 {
        let deploying: Vec<&RefUpdate> = request
            .refs
            .iter()
            .filter(|r| deploys(&r.name) && r.new != ZERO)
            .collect();
        for skipped in request.refs.iter().filter(|r| !deploys(&r.name)) {
            say(
                &output,
                format!(
                    "-----> Pushed {}: only main or master deploy, so nothing was deployed.",
                    skipped.name
                ),
            )
            .await;
        }
        let Some(update) = deploying.last() else {
            return 0;
        };
        let started = std::time::Instant::now();
        let built = self.build(&context, &request, &update.new, &output).await;
        self.metrics.built(built.is_ok(), started.elapsed());
        match built {
            Ok(()) => 0,
            Err(Failure(message)) => {
                for line in message.lines() {
                    say(&output, format!(" !     {line}")).await;
                }
                say(&output, format!(" !     Push rejected to {}.", context.app)).await;
                1
            }
        }
    }
}

impl Pipeline {
    async fn build(
        &self,
        context: &PushContext,
        request: &HookRequest,
        sha: &str,
        output: &Output,
    ) -> Result<(), Failure> {
        let app = &context.app;
        let short = sha.get(..8).unwrap_or(sha);
        say(output, format!("-----> Building {app} at {short}...")).await;

        let work = WorkDir(
            self.settings
                .work_root
                .join(uuid::Uuid::new_v4().simple().to_string()),
        );
        tokio::fs::create_dir_all(&work.0).await?;
        let tarball = work.0.join("source.tar");
        self.archive(context, request, sha, &tarball).await?;
        let source = work.0.join("source");
        slug::unpack(&tarball, &source).await?;
        self.objects
            .put_file(&objects::source_key(app, sha), &tarball)
            .await?;

        let config = self.controller.build_config(&context.username, app).await?;
        let job = self.job(app, sha, source, &work.0, config);
        if job.source.join("Dockerfile").is_file() {
            return self.build_dockerfile(context, job, output).await;
        }
        let built = self
            .executor
            .build_slug(&self.objects, job, output.clone())
            .await?;
        self.launch(
            context,
            &objects::slug_key(app, sha),
            sha,
            &built.procfile,
            false,
            output,
        )
        .await
    }

    fn job(
        &self,
        app: &str,
        sha: &str,
        source: PathBuf,
        work_dir: &Path,
        config: BTreeMap<String, String>,
    ) -> BuildJob {
        BuildJob {
            app: app.to_owned(),
            sha: sha.to_owned(),
            source,
            work_dir: work_dir.to_owned(),
            buildpack_url: config.get("BUILDPACK_URL").cloned(),
            env: config,
            cache: None,
            timeout: self.settings.timeout,
            max_slug_bytes: self.settings.max_slug_bytes,
        }
    }

    /// Builds the repository's Dockerfile into `<app>:git-<sha8>` in the
    /// platform's registry and releases it.
    async fn build_dockerfile(
        &self,
        context: &PushContext,
        job: BuildJob,
        output: &Output,
    ) -> Result<(), Failure> {
        let Some(registry) = &self.settings.registry else {
            return Err(Failure(
                "This repository has a Dockerfile, and Dockerfile builds need the platform's image registry, \
                 which this builder was not given (--registry-url); remove the Dockerfile to build with a buildpack."
                    .into(),
            ));
        };
        let image = dockerfile_image(&job.app, &job.sha);
        let target = ImageTarget {
            reference: format!("{}/{image}", registry.host),
            username: registry.username.clone(),
            password: registry.password.clone(),
            insecure: registry.insecure,
        };
        let sha = job.sha.clone();
        let built = self.executor.build_image(job, target, output.clone()).await?;
        say(output, format!("       Pushed {image}@{}", built.digest)).await;
        self.launch(context, &image, &sha, &built.procfile, true, output)
            .await
    }

    /// Records the build and deploys it.
    async fn launch(
        &self,
        context: &PushContext,
        image: &str,
        sha: &str,
        procfile: &BTreeMap<String, String>,
        dockerfile: bool,
        output: &Output,
    ) -> Result<(), Failure> {
        let app = &context.app;
        say(output, "-----> Build complete.").await;
        say(output, "-----> Launching...").await;
        let (version, url) = self
            .controller
            .publish_build(&context.username, app, image, sha, procfile, dockerfile)
            .await?;
        say(output, format!("       Done, {app}:v{version} deployed")).await;
        say(output, format!("       {url}")).await;
        Ok(())
    }

    /// Writes the pushed commit's tree as a tar, reading the quarantined
    /// objects of the push in progress, within the source size limit.
    async fn archive(
        &self,
        context: &PushContext,
        request: &HookRequest,
        sha: &str,
        tarball: &Path,
    ) -> Result<(), Failure> {
        if !crate::hook::is_object_id(sha) {
            return Err(Failure(format!("{sha} is not a commit id")));
        }
        let mut command = Command::new("git");
        command
            .arg("--git-dir")
            .arg(&context.repo)
            .args(["archive", "--format=tar"])
            .arg(sha);
        command
            .env_remove("GIT_DIR")
            .env_remove("GIT_OBJECT_DIRECTORY")
            .env_remove("GIT_ALTERNATE_OBJECT_DIRECTORIES");
        // The pushed objects are still quarantined inside the repository; only
        // directories under it are accepted, so a hook cannot point the
        // builder at other data.
        if let Some(dir) = request
            .object_directory
            .as_deref()
            .filter(|d| inside(&context.repo, d))
        {
            command.env("GIT_OBJECT_DIRECTORY", dir);
            let alternates: Vec<&str> = request
                .alternate_object_directories
                .as_deref()
                .unwrap_or_default()
                .split(':')
                .filter(|d| inside(&context.repo, d))
                .collect();
            command.env("GIT_ALTERNATE_OBJECT_DIRECTORIES", alternates.join(":"));
        }
        let file = std::fs::File::create(tarball)?;
        // Streamed straight into the file: the archive is never held in memory.
        let child = command
            .stdout(file)
            .stderr(std::process::Stdio::piped())
            .spawn()?;
        let out = child.wait_with_output().await?;
        if !out.status.success() {
            return Err(Failure(format!(
                "git archive failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        let size = tokio::fs::metadata(tarball).await?.len();
        if size > self.settings.max_source_bytes {
            return Err(Failure(format!(
                "The source of this commit is {} MB; the limit is {} MB.",
                size / (1024 * 1024),
                self.settings.max_source_bytes / (1024 * 1024)
            )));
        }
        Ok(())
    }
}

/// Whether `dir` is (lexically) inside `root`.
fn inside(root: &Path, dir: &str) -> bool {
    let path = Path::new(dir);
    path.is_absolute()
        && path.starts_with(root)
        && !path
            .components()
            .any(|c| matches!(c, std::path::Component::ParentDir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_main_and_master_deploy() {
        assert!(deploys("refs/heads/main"));
        assert!(deploys("refs/heads/master"));
        assert!(!deploys("refs/heads/feature"));
        assert!(!deploys("refs/tags/v1"));
    }

    #[test]
    fn quarantine_must_be_inside_the_repository() {
        let repo = Path::new("/data/repos/app.git");
        assert!(inside(repo, "/data/repos/app.git/objects/tmp_objdir-incoming-x"));
        assert!(!inside(repo, "/etc"));
        assert!(!inside(repo, "/data/repos/app.git/../other.git/objects"));
        assert!(!inside(repo, "relative/path"));
    }
}
