//! Buildpack builds as users of their own (`--app-users`).
//!
//! A build runs code the pusher controls (buildpacks, `pip install`,
//! `npm install`, `build.rs`), so with app users each build runs as a fresh
//! uid that is never handed out again. Everything the build does — unpack
//! the source, run the buildpacks, write `.release` and the Procfile, pack
//! and compress the slug — happens in one `deis-workflow build-slug`
//! process of that uid (the very command a Kubernetes build Job runs), on a
//! private file object store holding only this app's source and build cache.
//! The builder itself never opens a path the build could have replaced with
//! a symbolic link: when the build is over and every process of its uid is
//! killed, the results are read back *as that uid* (`setpriv ... cat`) and
//! stored in the platform's object store. Dockerfile builds are buildah's
//! (chroot isolation) and are left to the local executor.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use deis_isolation::{OsUser, OsUsers};
use deis_objects::{self as objects, Objects};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};
use tokio::process::Command;

use super::{
    BuildError, BuildExecutor, BuildJob, BuildLog, ImageOutput, ImageTarget, LocalExecutor, StoredSlug,
};

/// Longest output line handed to the build log (longer ones are split).
const MAX_LINE: u64 = 16 * 1024;
/// Longest failure message read back from a build.
const MAX_FAILURE: u64 = 64 * 1024;
/// Longest Procfile read back from a build.
const MAX_PROCFILE: u64 = 1024 * 1024;
/// How many times the slug size limit a build cache may be.
const CACHE_PER_SLUG: u64 = 4;
/// How long past its own deadline a build may take to stop by itself.
const STOP_SLACK: Duration = Duration::from_secs(30);

/// Runs each buildpack build as a user of its own.
pub struct IsolatedExecutor {
    /// `deis-workflow`, where every user can run it.
    program: PathBuf,
    users: OsUsers,
    /// Dockerfile builds, and which variables build steps get.
    local: LocalExecutor,
}

impl IsolatedExecutor {
    /// Builds with `program build-slug` as uids from `users`; `local` builds
    /// Dockerfiles and names the variables build steps get.
    pub fn new(program: PathBuf, users: OsUsers, local: LocalExecutor) -> IsolatedExecutor {
        IsolatedExecutor {
            program,
            users,
            local,
        }
    }

    /// The environment of the build process: only what build steps get
    /// anyway (never the builder's own secrets), HOME and TMPDIR private.
    fn environment(&self, job: &BuildJob, private: &Path) -> Result<Vec<(String, String)>, BuildError> {
        let config = serde_json::to_string(&job.env).map_err(|e| {
            BuildError::Failed(format!("the app's config cannot be passed to the build: {e}"))
        })?;
        let mut env: Vec<(String, String)> = self
            .local
            .passed_env()
            .iter()
            .chain(["PATH".to_owned()].iter())
            .filter_map(|name| Some((name.clone(), std::env::var(name).ok()?)))
            .collect();
        env.extend([
            ("HOME".to_owned(), private.join("work").display().to_string()),
            ("TMPDIR".to_owned(), private.join("tmp").display().to_string()),
            ("DEIS_BUILD_CONFIG".to_owned(), config),
        ]);
        Ok(env)
    }

    /// Copies `key` from the platform's store into the private one, if it
    /// is there.
    async fn copy_in(
        objects: &Objects,
        private: &Objects,
        key: &str,
        through: &Path,
    ) -> Result<(), BuildError> {
        if objects.get_to_file(key, through).await? {
            private.put_file(key, through).await?;
            let _ = tokio::fs::remove_file(through).await;
        }
        Ok(())
    }

    /// Runs the build process to its end (or the deadline), its output
    /// lines going to `log`.
    async fn run(
        &self,
        user: OsUser,
        job: &BuildJob,
        private: &Path,
        store: &Path,
        log: &BuildLog,
    ) -> Result<std::process::ExitStatus, BuildError> {
        let mut command = Command::from(user.command(&self.program));
        command
            .arg("build-slug")
            .args(["--app", &job.app, "--sha", &job.sha])
            .arg("--object-store")
            .arg(format!("file://{}", store.display()))
            .arg("--work-dir")
            .arg(private.join("work"))
            .arg("--termination-log")
            .arg(private.join("failure"))
            .arg("--build-timeout")
            .arg(job.timeout.as_secs().max(1).to_string())
            .arg("--build-max-mb")
            .arg((job.max_slug_bytes / (1024 * 1024)).max(1).to_string())
            .env_clear()
            .envs(self.environment(job, private)?)
            .current_dir(private)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let mut child = command.spawn().map_err(|e| {
            BuildError::Failed(format!("the build could not be started as its own user: {e}"))
        })?;
        let stdout = child.stdout.take().map(|out| forward(out, log.clone()));
        let stderr = child.stderr.take().map(|err| forward(err, log.clone()));
        let deadline = job.timeout.saturating_add(STOP_SLACK);
        let status = tokio::time::timeout(deadline, child.wait()).await;
        // Whatever the build left running dies before anything is read.
        let _ = Command::from(user.kill_everything()).status().await;
        for forwarding in [stdout, stderr].into_iter().flatten() {
            let _ = forwarding.await;
        }
        match status {
            Ok(status) => Ok(status?),
            Err(_elapsed) => Err(BuildError::Timeout(job.timeout)),
        }
    }
}

/// Kills every process of a build's user when dropped, however the build
/// ended (a push cancelled midway included).
struct Reaper(OsUser);

impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill_everything().status();
    }
}

/// Sends each line of `from` to `log` (lines longer than [`MAX_LINE`] in
/// parts).
fn forward(from: impl AsyncRead + Unpin + Send + 'static, log: BuildLog) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut reader = BufReader::new(from);
        let mut line = Vec::new();
        loop {
            line.clear();
            match (&mut reader).take(MAX_LINE).read_until(b'\n', &mut line).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {
                    let text = String::from_utf8_lossy(&line);
                    let _ = log.send(text.trim_end_matches(['\n', '\r']).to_owned()).await;
                }
            }
        }
    })
}

/// Reads `path` as `user` (so a symbolic link the build planted leads only
/// where that user could read anyway) into the file `into`, or into memory
/// when `into` is `None`. `Ok(None)` when the user cannot read it; an
/// error when it holds more than `limit` bytes (`what` says what it is).
async fn read_as(
    user: OsUser,
    path: &Path,
    into: Option<&Path>,
    limit: u64,
    what: &str,
) -> Result<Option<Vec<u8>>, BuildError> {
    let mut cat = Command::from(user.command("cat"));
    cat.arg("--")
        .arg(path)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    let mut child = cat.spawn()?;
    let Some(stdout) = child.stdout.take() else {
        return Ok(None);
    };
    let mut limited = stdout.take(limit.saturating_add(1));
    let (bytes, read) = match into {
        Some(file) => {
            let mut file = tokio::fs::File::create(file).await?;
            let read = tokio::io::copy(&mut limited, &mut file).await?;
            (Vec::new(), read)
        }
        None => {
            let mut bytes = Vec::new();
            limited.read_to_end(&mut bytes).await?;
            let read = bytes.len() as u64;
            (bytes, read)
        }
    };
    if read > limit {
        return Err(BuildError::TooLarge(format!(
            "The build's {what} is larger than {} MB.",
            limit / (1024 * 1024)
        )));
    }
    drop(limited);
    Ok(child.wait().await?.success().then_some(bytes))
}

#[async_trait::async_trait]
impl BuildExecutor for IsolatedExecutor {
    async fn build_slug(
        &self,
        objects: &Objects,
        job: BuildJob,
        log: BuildLog,
    ) -> Result<StoredSlug, BuildError> {
        let name = format!("build-{}", uuid::Uuid::new_v4().simple());
        let user = self.users.user(&name)?;
        let reaper = Reaper(user);
        let result = self.build_as(user, objects, &job, &log).await;
        drop(reaper);
        if let Err(e) = self.users.forget(&name) {
            tracing::warn!(error = %e, "cannot forget a finished build's user");
        }
        result
    }

    async fn build_image(
        &self,
        job: BuildJob,
        target: ImageTarget,
        log: BuildLog,
    ) -> Result<ImageOutput, BuildError> {
        self.local.build_image(job, target, log).await
    }
}

impl IsolatedExecutor {
    async fn build_as(
        &self,
        user: OsUser,
        objects: &Objects,
        job: &BuildJob,
        log: &BuildLog,
    ) -> Result<StoredSlug, BuildError> {
        // The work directory stays the builder's, searchable and not
        // writable, so the build cannot swap its private directory for a
        // link; what else is in it (the pushed source) is private, since
        // other builds can see its path in `ps`.
        let work_dir = job.work_dir.clone();
        tokio::task::spawn_blocking(move || deis_isolation::lock_down(&work_dir, &[]))
            .await
            .map_err(std::io::Error::other)??;
        let private = job.work_dir.join("isolated");
        let store = private.join("objects");
        for dir in [&store, &private.join("work"), &private.join("tmp")] {
            tokio::fs::create_dir_all(dir).await?;
        }
        let private_objects = Objects::local(&store)?;
        let transfers = job.work_dir.join("transfer");
        tokio::fs::DirBuilder::new()
            .mode(0o700)
            .create(&transfers)
            .await?;
        let through = transfers.join("object");
        Self::copy_in(
            objects,
            &private_objects,
            &objects::source_key(&job.app, &job.sha),
            &through,
        )
        .await?;
        let cache_key = objects::cache_key(&job.app);
        Self::copy_in(objects, &private_objects, &cache_key, &through).await?;
        let given = private.clone();
        tokio::task::spawn_blocking(move || user.give(&given))
            .await
            .map_err(std::io::Error::other)??;

        let status = self.run(user, job, &private, &store, log).await?;
        if !status.success() {
            let said = read_as(
                user,
                &private.join("failure"),
                None,
                MAX_FAILURE,
                "failure message",
            )
            .await
            .ok()
            .flatten()
            .map(|bytes| String::from_utf8_lossy(&bytes).trim().to_owned())
            .filter(|message| !message.is_empty());
            return Err(BuildError::Failed(
                said.unwrap_or_else(|| format!("The build failed ({status}).")),
            ));
        }

        // The build stored its results in the private store (as files under
        // their keys): read back as its user, then stored for the platform.
        let in_store = |key: &str| store.join(key);
        let procfile_key = objects::procfile_key(&job.app, &job.sha);
        let procfile_text = read_as(user, &in_store(&procfile_key), None, MAX_PROCFILE, "Procfile")
            .await?
            .ok_or_else(|| BuildError::Failed("The build stored no Procfile.".into()))?;
        let procfile = super::parse_procfile(&String::from_utf8_lossy(&procfile_text))?;
        let slug_key = objects::slug_key(&job.app, &job.sha);
        if read_as(
            user,
            &in_store(&slug_key),
            Some(&through),
            job.max_slug_bytes,
            "slug",
        )
        .await?
        .is_none()
        {
            return Err(BuildError::Failed("The build stored no slug.".into()));
        }
        objects.put_file(&slug_key, &through).await?;
        objects.put_bytes(&procfile_key, procfile_text).await?;
        // The cache as the build left it (restored, changed or deleted).
        let cache_limit = job.max_slug_bytes.saturating_mul(CACHE_PER_SLUG);
        if read_as(
            user,
            &in_store(&cache_key),
            Some(&through),
            cache_limit,
            "build cache",
        )
        .await?
        .is_some()
        {
            objects.put_file(&cache_key, &through).await?;
        } else if job.env.contains_key("DEIS_DISABLE_CACHE") {
            objects.delete(&cache_key).await?;
        }
        let _ = tokio::fs::remove_file(&through).await;
        Ok(StoredSlug { procfile })
    }
}
