//! `deis-workflow build-slug`: one build inside a Kubernetes Job (see
//! `deis_kubernetes::build`). The source comes from object storage, and
//! the build runs the same steps as on the builder's own machine; its output
//! lines go to stdout (the pod's log, streamed to the pusher by the
//! builder), and a failure's message to the termination log.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::Args;
use deis_builder::executor::slug::fetch_source;
use deis_builder::executor::{BuildError, BuildExecutor, BuildJob, declare_build_args};
use deis_builder::{LocalExecutor, Objects};

#[derive(Args)]
pub(crate) struct BuildSlugArgs {
    /// The app being built.
    #[arg(long, env = "DEIS_APP")]
    app: String,
    /// The commit being built (its source tarball is in object storage).
    #[arg(long, env = "SOURCE_VERSION")]
    sha: String,
    /// Object storage holding the source; the slug and cache go there too.
    #[arg(long, env = "DEIS_OBJECT_STORE")]
    object_store: String,
    /// The app's config as a JSON object (handed to buildpacks as ENV_DIR).
    #[arg(long, env = "DEIS_BUILD_CONFIG", hide_env_values = true, default_value = "{}")]
    config: String,
    /// Longest the build may take, in seconds.
    #[arg(long, env = "DEIS_BUILD_TIMEOUT", default_value_t = 900)]
    build_timeout: u64,
    /// Largest slug accepted, in MiB.
    #[arg(long, env = "DEIS_BUILD_MAX_MB", default_value_t = 1024)]
    build_max_mb: u64,
    /// Scratch space for the build.
    #[arg(long, env = "DEIS_BUILD_WORK_DIR", default_value = "/tmp/build")]
    work_dir: PathBuf,
    /// Only unpack the source into this directory (a Dockerfile build's
    /// init container), and build nothing.
    #[arg(long)]
    unpack_to: Option<PathBuf>,
    /// With --unpack-to: where the build arguments go (`NAME=value` lines,
    /// each a `buildah bud --build-arg`), when the config has
    /// DEIS_DOCKER_BUILD_ARGS_ENABLED.
    #[arg(long, requires = "unpack_to")]
    build_args_file: Option<PathBuf>,
    /// Where a failure's message is written (the container's
    /// terminationMessagePath).
    #[arg(long, env = "DEIS_TERMINATION_LOG", default_value = "/dev/termination-log")]
    termination_log: PathBuf,
}

/// Runs the build; the process exits 1 when it fails.
pub(crate) async fn build_slug(args: BuildSlugArgs) -> Result<()> {
    match run(&args).await {
        Ok(()) => Ok(()),
        Err(e) => {
            let message = e.to_string();
            if std::fs::write(&args.termination_log, &message).is_err() {
                eprintln!("{message}");
            }
            std::process::exit(1);
        }
    }
}

async fn run(args: &BuildSlugArgs) -> Result<(), BuildError> {
    let objects = Objects::from_url(&args.object_store)?;
    let config: BTreeMap<String, String> = serde_json::from_str(&args.config)
        .map_err(|e| BuildError::Failed(format!("DEIS_BUILD_CONFIG is not a JSON object of strings: {e}")))?;
    let work_dir = args.work_dir.join(uuid::Uuid::new_v4().simple().to_string());
    let source = match &args.unpack_to {
        Some(dir) => dir.clone(),
        None => work_dir.join("source"),
    };
    fetch_source(&objects, &args.app, &args.sha, &work_dir, &source).await?;
    if args.unpack_to.is_some() {
        let _ = tokio::fs::remove_dir_all(&work_dir).await;
        if let Some(file) = &args.build_args_file {
            write_build_args(&source, &config, file).await?;
        }
        return Ok(());
    }
    // Beside the build's directory: the executor owns everything inside it.
    let executor = LocalExecutor::with_builtin_buildpacks(args.work_dir.join("buildpacks"))?;
    let job = BuildJob {
        app: args.app.clone(),
        sha: args.sha.clone(),
        source,
        work_dir: work_dir.clone(),
        buildpack_url: config.get("BUILDPACK_URL").cloned(),
        env: config,
        cache: None,
        timeout: Duration::from_secs(args.build_timeout),
        max_slug_bytes: args.build_max_mb.saturating_mul(1024 * 1024),
    };
    let (lines, mut printed) = tokio::sync::mpsc::channel::<String>(64);
    let printer = tokio::spawn(async move {
        let mut stdout = std::io::stdout();
        while let Some(line) = printed.recv().await {
            // The pod's log is the pusher's view; a line at a time.
            let _ = writeln!(stdout, "{line}");
            let _ = stdout.flush();
        }
    });
    let built = executor.build_slug(&objects, job, lines).await;
    let _ = printer.await;
    let _ = tokio::fs::remove_dir_all(&work_dir).await;
    built.map(|_| ())
}

/// Declares the build arguments in the Dockerfile and writes their values
/// for buildah. A value spanning lines cannot be written so; it is left out,
/// and the log says so.
async fn write_build_args(
    source: &std::path::Path,
    config: &BTreeMap<String, String>,
    file: &std::path::Path,
) -> Result<(), BuildError> {
    let mut lines = String::new();
    for name in declare_build_args(source, config).await? {
        let value = config.get(&name).map(String::as_str).unwrap_or_default();
        if value.contains(['\n', '\r']) {
            println!("       {name} spans several lines and is not passed as a build argument");
            continue;
        }
        lines.push_str(&format!("{name}={value}\n"));
    }
    if !lines.is_empty() {
        tokio::fs::write(file, lines).await?;
    }
    Ok(())
}
