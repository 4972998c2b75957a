//! The local build executor: runs buildpacks as child processes on this
//! machine, the way Deis's slugbuilder does in its pod.
//!
//! Heroku buildpack API: `bin/detect BUILD_DIR`, `bin/compile BUILD_DIR
//! CACHE_DIR ENV_DIR`, `bin/release BUILD_DIR`. Steps run in the source tree
//! with a clean environment; the app's config reaches them through `ENV_DIR`
//! only. Every step is its own process group, killed whole when the build
//! times out. The slug is a `tar.gz` of the build directory made with the
//! system's GNU `tar`.

mod builtin;
mod dockerfile;
mod fetch;
mod gzip;
mod process;
mod procfile;

use std::path::{Path, PathBuf};

use async_trait::async_trait;

use deis_objects::Objects;

use super::{
    BuildError, BuildExecutor, BuildJob, BuildLog, BuildOutput, ImageOutput, ImageTarget, StoredSlug,
};
use fetch::BuildpackRef;
use process::{Cmd, Output, Session};
use procfile::ProcessTypes;
pub(super) use procfile::parse_procfile;

/// `STACK` as buildpacks see it.
const STACK: &str = "deis-local";

/// `PATH` for build steps when the builder itself has none.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Variables copied from the builder's own environment into every build
/// step: locale, proxies and CA bundles (so package registries can be
/// reached), where the system toolchains live, and registry settings.
const DEFAULT_PASSTHROUGH_ENV: &[&str] = &[
    "LANG",
    "LC_ALL",
    "TZ",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "NODE_EXTRA_CA_CERTS",
    "GIT_SSL_CAINFO",
    "PIP_CERT",
    "PIP_INDEX_URL",
    "PIP_EXTRA_INDEX_URL",
    "PIP_FIND_LINKS",
    "PIP_TRUSTED_HOST",
    "PIP_DEFAULT_TIMEOUT",
    "npm_config_registry",
    "NPM_CONFIG_REGISTRY",
    "GOPROXY",
    "GOSUMDB",
    "GONOSUMDB",
    "GOPRIVATE",
    "GOROOT",
    "PYENV_ROOT",
    "PYENV_VERSION",
    "RUSTUP_HOME",
    "RUSTUP_TOOLCHAIN",
    "RUSTUP_AUTO_INSTALL",
];

/// Variables the executor sets itself; never taken from the builder.
const RESERVED_ENV: &[&str] = &[
    "PATH",
    "HOME",
    "STACK",
    "SOURCE_VERSION",
    "DEIS_APP",
    "REQUEST_ID",
    "BUILDPACK_URL",
];

/// Runs Heroku-style buildpacks as local child processes.
///
/// `buildpacks_dir` holds the buildpacks tried by detection, one directory
/// each (`<dir>/<name>/bin/{detect,compile,release}`): the built-in ones in
/// [`LocalExecutor::BUILTIN_BUILDPACKS`] order (see
/// [`LocalExecutor::install_builtin_buildpacks`]), then any other directory
/// there, by name.
#[derive(Clone, Debug)]
pub struct LocalExecutor {
    buildpacks_dir: PathBuf,
    passthrough_env: Vec<String>,
    /// buildah's image storage, for Dockerfile builds.
    image_storage: Option<PathBuf>,
}

/// A buildpack chosen for a build.
#[derive(Debug)]
struct Selected {
    dir: PathBuf,
    name: String,
}

/// The scratch directories of one build, all inside `work_dir`.
#[derive(Debug)]
struct Dirs {
    env: PathBuf,
    cache: PathBuf,
    cache_is_throwaway: bool,
    buildpacks: PathBuf,
    slugignore: PathBuf,
    slug: PathBuf,
}

impl LocalExecutor {
    /// The built-in buildpacks, in detection order.
    pub const BUILTIN_BUILDPACKS: &'static [&'static str] = builtin::ORDER;

    /// An executor detecting with the buildpacks in `buildpacks_dir`.
    pub fn new(buildpacks_dir: PathBuf) -> Self {
        Self {
            buildpacks_dir,
            passthrough_env: DEFAULT_PASSTHROUGH_ENV
                .iter()
                .map(|name| (*name).to_owned())
                .collect(),
            image_storage: None,
        }
    }

    /// Builds Dockerfiles with buildah, keeping its storage in `dir`.
    #[must_use]
    pub fn with_image_storage(mut self, dir: PathBuf) -> Self {
        self.image_storage = Some(dir);
        self
    }

    /// Installs the built-in buildpacks into `buildpacks_dir` and returns an
    /// executor using them.
    pub fn with_builtin_buildpacks(buildpacks_dir: PathBuf) -> std::io::Result<Self> {
        Self::install_builtin_buildpacks(&buildpacks_dir)?;
        Ok(Self::new(buildpacks_dir))
    }

    /// Writes the built-in buildpacks (embedded in this binary) to
    /// `dir/<name>/bin/{detect,compile,release}`, mode 0755, replacing what
    /// is there. Idempotent.
    pub fn install_builtin_buildpacks(dir: &Path) -> std::io::Result<()> {
        builtin::install(dir)
    }

    /// Also copies the builder's `name` variable (when set) into the
    /// environment of build steps. `PATH`, `HOME` and the variables the
    /// executor sets itself cannot be overridden this way.
    #[must_use]
    pub fn pass_env(mut self, name: impl Into<String>) -> Self {
        let name = name.into();
        if !self.passthrough_env.contains(&name) {
            self.passthrough_env.push(name);
        }
        self
    }

    /// The variables of the builder's own environment that build steps
    /// get (besides `PATH`).
    pub fn passed_env(&self) -> &[String] {
        &self.passthrough_env
    }

    /// Where the detected buildpacks live.
    pub fn buildpacks_dir(&self) -> &Path {
        &self.buildpacks_dir
    }

    /// The environment of every build step.
    fn step_env(&self, job: &BuildJob) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = Vec::new();
        for name in &self.passthrough_env {
            if RESERVED_ENV.contains(&name.as_str()) {
                continue;
            }
            if let Ok(value) = std::env::var(name) {
                env.push((name.clone(), value));
            }
        }
        // HOME changes, so rustup's proxies (cargo, rustc) must be told where
        // the toolchains are.
        if std::env::var_os("RUSTUP_HOME").is_none()
            && let Some(home) = std::env::var_os("HOME")
        {
            let rustup = Path::new(&home).join(".rustup");
            if rustup.is_dir() {
                env.push(("RUSTUP_HOME".to_owned(), rustup.to_string_lossy().into_owned()));
            }
        }
        let path = std::env::var("PATH")
            .ok()
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| DEFAULT_PATH.to_owned());
        env.push(("PATH".to_owned(), path));
        env.push(("HOME".to_owned(), job.source.to_string_lossy().into_owned()));
        env.push(("STACK".to_owned(), STACK.to_owned()));
        env.push(("SOURCE_VERSION".to_owned(), job.sha.clone()));
        env.push(("DEIS_APP".to_owned(), job.app.clone()));
        env.push(("REQUEST_ID".to_owned(), uuid::Uuid::new_v4().simple().to_string()));
        if let Some(url) = buildpack_url(job) {
            env.push(("BUILDPACK_URL".to_owned(), url.to_owned()));
        }
        env
    }

    /// Creates the scratch directories: `ENV_DIR` with one file per config
    /// var, and the throwaway cache when the job has none.
    async fn prepare(&self, job: &BuildJob, session: &mut Session) -> Result<Dirs, BuildError> {
        let build_dir = &job.source;
        if !tokio::fs::metadata(build_dir).await?.is_dir() {
            return Err(BuildError::Io(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("the source {} is not a directory", build_dir.display()),
            )));
        }
        tokio::fs::create_dir_all(&job.work_dir).await?;
        let env = scratch_path(&job.work_dir, "env", build_dir);
        fresh_dir(&env).await?;
        for (key, value) in &job.env {
            if !valid_env_file_name(key) {
                session
                    .say(format!(
                        " !     Config var {key:?} cannot be handed to buildpacks (ENV_DIR); skipped"
                    ))
                    .await?;
                continue;
            }
            tokio::fs::write(env.join(key), value).await?;
        }
        let (cache, cache_is_throwaway) = match &job.cache {
            Some(cache) => {
                tokio::fs::create_dir_all(cache).await?;
                (cache.clone(), false)
            }
            None => {
                let cache = scratch_path(&job.work_dir, "cache", build_dir);
                fresh_dir(&cache).await?;
                (cache, true)
            }
        };
        let buildpacks = scratch_path(&job.work_dir, "buildpacks", build_dir);
        if tokio::fs::try_exists(&buildpacks).await? {
            tokio::fs::remove_dir_all(&buildpacks).await?;
        }
        Ok(Dirs {
            env,
            cache,
            cache_is_throwaway,
            buildpacks,
            slugignore: job.work_dir.join("slugignore"),
            slug: job.work_dir.join("slug.tgz"),
        })
    }

    /// Removes the scratch directories (best effort; the caller removes
    /// `work_dir` anyway). The slug stays.
    async fn cleanup(dirs: &Dirs) {
        let _ = tokio::fs::remove_dir_all(&dirs.env).await;
        let _ = tokio::fs::remove_dir_all(&dirs.buildpacks).await;
        let _ = tokio::fs::remove_file(&dirs.slugignore).await;
        if dirs.cache_is_throwaway {
            let _ = tokio::fs::remove_dir_all(&dirs.cache).await;
        }
    }

    async fn run_build(
        &self,
        job: &BuildJob,
        session: &mut Session,
        dirs: &Dirs,
    ) -> Result<BuildOutput, BuildError> {
        let build_dir = job.source.as_path();
        let buildpacks = self.select(job, session, dirs).await?;
        let names = buildpacks
            .iter()
            .map(|bp| bp.name.as_str())
            .collect::<Vec<_>>()
            .join(", ");

        run_hook(session, build_dir, "pre-compile").await?;

        let mut exports: Vec<PathBuf> = Vec::new();
        let mut defaults = ProcessTypes::new();
        let mut last_release = String::new();
        for bp in &buildpacks {
            session.say(format!("-----> {} app detected", bp.name)).await?;
            let compile = Cmd::new("compile", bp.dir.join("bin").join("compile"), build_dir.into())
                .arg(build_dir)
                .arg(&dirs.cache)
                .arg(&dirs.env);
            session
                .run(with_exports(&exports, compile))
                .await?
                .check("compile")?;
            let export = bp.dir.join("export");
            if tokio::fs::metadata(&export).await.is_ok_and(|m| m.is_file()) {
                exports.push(export);
            }
            let release_script = bp.dir.join("bin").join("release");
            let release = if release_script.is_file() {
                let release = Cmd::new("release", release_script, build_dir.into())
                    .arg(build_dir)
                    .stdout(Output::Capture);
                session
                    .run(with_exports(&exports, release))
                    .await?
                    .check("release")?
                    .stdout
            } else {
                "---\n".to_owned()
            };
            defaults.extend(procfile::parse_default_process_types(&release).map_err(BuildError::Failed)?);
            last_release = release;
        }
        let release = if buildpacks.len() > 1 {
            procfile::replace_default_process_types(&last_release, &defaults)
        } else {
            last_release
        };
        tokio::fs::write(build_dir.join(".release"), release).await?;

        run_hook(session, build_dir, "post-compile").await?;

        session.say("-----> Discovering process types").await?;
        let procfile_path = build_dir.join("Procfile");
        let procfile = if tokio::fs::metadata(&procfile_path)
            .await
            .is_ok_and(|m| m.is_file())
        {
            let text = tokio::fs::read(&procfile_path).await?;
            let types =
                procfile::parse_procfile(&String::from_utf8_lossy(&text)).map_err(BuildError::Failed)?;
            session
                .say(format!("       Procfile declares types -> {}", type_list(&types)))
                .await?;
            types
        } else {
            // Deis writes the Procfile from the defaults when the app has
            // none, so that the slug carries one.
            tokio::fs::write(&procfile_path, procfile::render_procfile(&defaults)).await?;
            defaults.clone()
        };
        if !defaults.is_empty() {
            session
                .say(format!(
                    "       Default process types for {names} -> {}",
                    type_list(&defaults)
                ))
                .await?;
        }

        session.say("-----> Compressing...").await?;
        let slug_bytes = self.pack(session, build_dir, dirs).await?;
        session
            .say(format!("-----> Compiled slug size is {}", human_size(slug_bytes)))
            .await?;
        if slug_bytes > job.max_slug_bytes {
            return Err(BuildError::TooLarge(format!(
                "Compiled slug size is {} MB; the limit is {} MB.",
                megabytes(slug_bytes),
                megabytes(job.max_slug_bytes)
            )));
        }
        Ok(BuildOutput {
            slug: dirs.slug.clone(),
            slug_bytes,
            procfile,
            buildpack: names,
        })
    }

    /// Chooses the buildpack(s): `BUILDPACK_URL`, else the app's
    /// `.buildpacks`, else the first installed buildpack that detects it.
    async fn select(
        &self,
        job: &BuildJob,
        session: &mut Session,
        dirs: &Dirs,
    ) -> Result<Vec<Selected>, BuildError> {
        let build_dir = job.source.as_path();
        if let Some(url) = buildpack_url(job) {
            session.say("-----> Fetching custom buildpack").await?;
            let dir = fetch::fetch(session, url, &dirs.buildpacks.join("custom"), build_dir).await?;
            // Like slugbuilder: a custom buildpack is used even when its
            // detect fails; detect only names it.
            let name = match detect(session, &dir, build_dir).await? {
                Some(name) => name,
                None => BuildpackRef::parse(url).display_name(),
            };
            return Ok(vec![Selected { dir, name }]);
        }

        let list = build_dir.join(".buildpacks");
        if tokio::fs::metadata(&list).await.is_ok_and(|m| m.is_file()) {
            let text = tokio::fs::read(&list).await?;
            let text = String::from_utf8_lossy(&text);
            let specs: Vec<&str> = text
                .lines()
                .map(str::trim)
                .filter(|line| !line.is_empty() && !line.starts_with('#'))
                .collect();
            if !specs.is_empty() {
                session
                    .say(format!(
                        "-----> Using {} buildpacks listed in .buildpacks",
                        specs.len()
                    ))
                    .await?;
                let mut selected = Vec::new();
                for (i, spec) in specs.iter().enumerate() {
                    let dir = match self.builtin_by_name(spec) {
                        Some(dir) => dir,
                        None => {
                            session.say(format!("-----> Fetching buildpack {spec}")).await?;
                            let dest = dirs.buildpacks.join(format!("{i}"));
                            fetch::fetch(session, spec, &dest, build_dir).await?
                        }
                    };
                    let name = match detect(session, &dir, build_dir).await? {
                        Some(name) => name,
                        None => {
                            session
                                .say(format!(
                                    "       {spec} does not detect this app; running it anyway, as .buildpacks lists it"
                                ))
                                .await?;
                            BuildpackRef::parse(spec).display_name()
                        }
                    };
                    selected.push(Selected { dir, name });
                }
                return Ok(selected);
            }
        }

        for dir in self.detection_order().await? {
            if let Some(name) = detect(session, &dir, build_dir).await? {
                return Ok(vec![Selected { dir, name }]);
            }
        }
        Err(BuildError::NoBuildpack)
    }

    /// A `.buildpacks` line naming an installed buildpack (`python`).
    fn builtin_by_name(&self, spec: &str) -> Option<PathBuf> {
        let plain = !spec.is_empty()
            && spec
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        let dir = self.buildpacks_dir.join(spec);
        (plain && dir.join("bin").join("compile").is_file()).then_some(dir)
    }

    /// The installed buildpacks: built-ins in their order, then the others
    /// by name.
    async fn detection_order(&self) -> Result<Vec<PathBuf>, BuildError> {
        let mut dirs: Vec<PathBuf> = Self::BUILTIN_BUILDPACKS
            .iter()
            .map(|name| self.buildpacks_dir.join(name))
            .filter(|dir| dir.join("bin").join("detect").is_file())
            .collect();
        let mut others = Vec::new();
        match tokio::fs::read_dir(&self.buildpacks_dir).await {
            Ok(mut entries) => {
                while let Some(entry) = entries.next_entry().await? {
                    let name = entry.file_name();
                    let Some(name) = name.to_str() else { continue };
                    if Self::BUILTIN_BUILDPACKS.contains(&name) || name.starts_with('.') {
                        continue;
                    }
                    let dir = entry.path();
                    if dir.join("bin").join("detect").is_file() {
                        others.push(dir);
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        others.sort();
        dirs.extend(others);
        Ok(dirs)
    }

    /// Tars the build directory into the slug and returns its size.
    async fn pack(&self, session: &mut Session, build_dir: &Path, dirs: &Dirs) -> Result<u64, BuildError> {
        // tar writes a plain archive; compression runs in process on every
        // core (see `gzip`), which GNU gzip cannot.
        let plain = dirs.slug.with_extension("tar");
        let mut tar = Cmd::new("tar", "tar", build_dir.into())
            .arg("-cf")
            .arg(&plain)
            .arg("--exclude=.git");
        let slugignore = build_dir.join(".slugignore");
        if tokio::fs::metadata(&slugignore).await.is_ok_and(|m| m.is_file()) {
            let text = tokio::fs::read(&slugignore).await?;
            let patterns = slugignore_patterns(&String::from_utf8_lossy(&text));
            tokio::fs::write(&dirs.slugignore, patterns).await?;
            tar = tar.arg("-X").arg(&dirs.slugignore);
        }
        let tar = tar.arg("-C").arg(build_dir).arg(".");
        session.run(tar).await?.check("tar")?;
        let (from, to) = (plain.clone(), dirs.slug.clone());
        let compressing = tokio::task::spawn_blocking(move || gzip::compress_file(&from, &to));
        let size = match tokio::time::timeout(session.remaining(), compressing).await {
            Ok(Ok(size)) => size?,
            Ok(Err(join)) => return Err(BuildError::Io(std::io::Error::other(join))),
            Err(_elapsed) => return Err(session.timeout_error()),
        };
        let _ = tokio::fs::remove_file(&plain).await;
        Ok(size)
    }
}

impl LocalExecutor {
    /// Builds the source tree at `job.source` into a slug inside
    /// `job.work_dir`, with the cache at `job.cache`, streaming output lines
    /// to `log`. Touches nothing outside `job.work_dir` and `job.cache`.
    pub async fn build(&self, job: BuildJob, log: BuildLog) -> Result<BuildOutput, BuildError> {
        let mut session = Session::new(log, job.timeout, self.step_env(&job));
        let dirs = self.prepare(&job, &mut session).await?;
        let result = self.run_build(&job, &mut session, &dirs).await;
        Self::cleanup(&dirs).await;
        if let Err(e) = &result {
            tracing::debug!(app = %job.app, sha = %job.sha, error = %e, "build failed");
        }
        result
    }
}

#[async_trait]
impl BuildExecutor for LocalExecutor {
    async fn build_slug(
        &self,
        objects: &Objects,
        job: BuildJob,
        log: BuildLog,
    ) -> Result<StoredSlug, BuildError> {
        super::slug::build_and_store(self, objects, job, log).await
    }

    async fn build_image(
        &self,
        job: BuildJob,
        target: ImageTarget,
        log: BuildLog,
    ) -> Result<ImageOutput, BuildError> {
        let Some(storage) = &self.image_storage else {
            return Err(BuildError::Failed(
                "This builder is not set up for Dockerfile builds; remove the Dockerfile to build with a buildpack."
                    .into(),
            ));
        };
        let Some(buildah) = deis_images::find_program("buildah") else {
            return Err(BuildError::Failed(
                "This app has a Dockerfile, and Dockerfile builds need buildah on the builder's machine: \
                 install it (apt-get install buildah) or remove the Dockerfile to build with a buildpack."
                    .into(),
            ));
        };
        let mut env = self.step_env(&job);
        // buildah keeps per-user settings under HOME; not in the source tree.
        env.retain(|(k, _)| k != "HOME");
        env.push(("HOME".to_owned(), job.work_dir.to_string_lossy().into_owned()));
        let mut session = Session::new(log, job.timeout, env);
        dockerfile::build(&buildah, storage, &job, &target, &mut session).await
    }
}

/// `BUILDPACK_URL`, when set and not blank.
fn buildpack_url(job: &BuildJob) -> Option<&str> {
    job.buildpack_url
        .as_deref()
        .map(str::trim)
        .filter(|url| !url.is_empty())
}

/// Runs `bin/<name>` from the app, if it has one (`pre-compile`,
/// `post-compile`).
async fn run_hook(session: &mut Session, build_dir: &Path, name: &str) -> Result<(), BuildError> {
    let path = build_dir.join("bin").join(name);
    if !tokio::fs::metadata(&path).await.is_ok_and(|m| m.is_file()) {
        return Ok(());
    }
    session.say(format!("-----> Running {name} hook")).await?;
    make_executable(&path).await?;
    session
        .run(Cmd::new(name, path, build_dir.into()))
        .await?
        .check(name)?;
    Ok(())
}

/// Runs the buildpack's `bin/detect`: its first stdout line (or the
/// directory name) when it exits 0, `None` when it fails or is missing.
async fn detect(
    session: &mut Session,
    buildpack: &Path,
    build_dir: &Path,
) -> Result<Option<String>, BuildError> {
    let bin = buildpack.join("bin");
    for script in ["detect", "compile", "release"] {
        let path = bin.join(script);
        if tokio::fs::metadata(&path).await.is_ok_and(|m| m.is_file()) {
            make_executable(&path).await?;
        }
    }
    let script = bin.join("detect");
    if !script.is_file() {
        return Ok(None);
    }
    let finished = session
        .run(
            Cmd::new("detect", script, build_dir.into())
                .arg(build_dir)
                .stdout(Output::Capture)
                .stderr(Output::Discard),
        )
        .await?;
    if !finished.status.success() {
        return Ok(None);
    }
    let name = finished
        .stdout
        .lines()
        .map(str::trim)
        .find(|line| !line.is_empty())
        .map(str::to_owned)
        .or_else(|| {
            buildpack
                .file_name()
                .map(|name| name.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "Custom".to_owned());
    Ok(Some(name))
}

/// Adds the execute bits to a script that lacks them (a buildpack or hook
/// committed without them).
async fn make_executable(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = tokio::fs::metadata(path).await?.permissions().mode();
    if mode & 0o111 != 0o111 {
        tokio::fs::set_permissions(path, std::fs::Permissions::from_mode(mode | 0o755)).await?;
    }
    Ok(())
}

/// Runs `cmd` after sourcing the `export` files earlier buildpacks left (the
/// multi-buildpack convention for handing environment to later ones).
fn with_exports(exports: &[PathBuf], mut cmd: Cmd) -> Cmd {
    if exports.is_empty() {
        return cmd;
    }
    let mut script = String::new();
    for export in exports {
        script.push_str(". ");
        script.push_str(&shell_quote(&export.to_string_lossy()));
        script.push_str(" && ");
    }
    script.push_str("exec \"$@\"");
    let mut args = vec!["-c".into(), script.into(), "buildpack".into(), cmd.program];
    args.append(&mut cmd.args);
    cmd.program = "/bin/sh".into();
    cmd.args = args;
    cmd
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// `work_dir/<name>`, unless the build dir is (inside) it.
fn scratch_path(work_dir: &Path, name: &str, build_dir: &Path) -> PathBuf {
    let path = work_dir.join(name);
    if build_dir.starts_with(&path) {
        work_dir.join(format!("{name}-{}", uuid::Uuid::new_v4().simple()))
    } else {
        path
    }
}

/// An empty directory at `path`.
async fn fresh_dir(path: &Path) -> std::io::Result<()> {
    if tokio::fs::try_exists(path).await? {
        tokio::fs::remove_dir_all(path).await?;
    }
    tokio::fs::create_dir_all(path).await
}

/// A config var name usable as a file name in `ENV_DIR`.
fn valid_env_file_name(key: &str) -> bool {
    !key.is_empty() && key != "." && key != ".." && !key.contains(['/', '\0'])
}

/// `.slugignore` as GNU tar exclude patterns: comments and blank lines
/// dropped, a leading `/` anchored at the slug root, trailing `/` removed.
fn slugignore_patterns(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.trim_end_matches('/');
        if line.is_empty() {
            continue;
        }
        if line.starts_with('/') {
            out.push('.');
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

fn type_list(types: &ProcessTypes) -> String {
    if types.is_empty() {
        "(none)".to_owned()
    } else {
        types.keys().map(String::as_str).collect::<Vec<_>>().join(", ")
    }
}

/// `12.3 MB`, `4.0 KB`, `512 B`.
#[allow(clippy::cast_precision_loss)]
fn human_size(bytes: u64) -> String {
    const KB: f64 = 1024.0;
    let b = bytes as f64;
    if b >= KB * KB {
        format!("{:.1} MB", b / (KB * KB))
    } else if b >= KB {
        format!("{:.1} KB", b / KB)
    } else {
        format!("{bytes} B")
    }
}

/// Megabytes with one decimal (three for tiny sizes), trailing zeros trimmed.
#[allow(clippy::cast_precision_loss)]
fn megabytes(bytes: u64) -> String {
    let mb = bytes as f64 / (1024.0 * 1024.0);
    let s = if mb >= 0.1 || bytes == 0 {
        format!("{mb:.1}")
    } else {
        format!("{mb:.3}")
    };
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s
    };
    if s == "0" && bytes > 0 {
        "0.001".to_owned()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(human_size(100), "100 B");
        assert_eq!(human_size(2048), "2.0 KB");
        assert_eq!(human_size(5 * 1024 * 1024 + 512 * 1024), "5.5 MB");
        assert_eq!(megabytes(500 * 1024 * 1024), "500");
        assert_eq!(megabytes(1024 * 1024 + 200 * 1024), "1.2");
        assert_eq!(megabytes(10 * 1024), "0.01");
        assert_eq!(megabytes(1), "0.001");
        assert_eq!(megabytes(0), "0");
    }

    #[test]
    fn slugignore_becomes_tar_patterns() {
        assert_eq!(
            slugignore_patterns("# c\n\n*.psd\n/tests/\ndocs\n"),
            "*.psd\n./tests\ndocs\n"
        );
    }

    #[test]
    fn exports_wrap_the_command() {
        let cmd = Cmd::new("compile", "/bp/bin/compile", PathBuf::from("/b")).arg("/b");
        let cmd = with_exports(&[PathBuf::from("/bp1/it's/export")], cmd);
        assert_eq!(cmd.program, "/bin/sh");
        assert_eq!(
            cmd.args,
            vec![
                "-c",
                ". '/bp1/it'\\''s/export' && exec \"$@\"",
                "buildpack",
                "/bp/bin/compile",
                "/b"
            ]
        );
    }

    #[test]
    fn env_file_names() {
        assert!(valid_env_file_name("DATABASE_URL"));
        assert!(!valid_env_file_name(""));
        assert!(!valid_env_file_name(".."));
        assert!(!valid_env_file_name("A/B"));
    }
}
