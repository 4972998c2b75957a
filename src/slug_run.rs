//! `deis-workflow slug-run`: Deis's slugrunner contract, so that the
//! platform image also runs buildpack apps on Kubernetes (its `/runner/init`
//! is this command). The slug at `SLUG_URL` is fetched from object storage
//! and unpacked into the app directory; then `start <type>` runs that
//! type's command from the slug's Procfile, and anything else runs as
//! given; either way with HOME at the app and `.profile.d/*.sh` sourced,
//! as the local runtime starts processes.

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;
use deis_builder::Objects;
use deis_builder::executor::parse_procfile;

/// Sources the slug's profile scripts, then becomes the command (`$@`).
const LAUNCHER: &str = r#"cd "$HOME" || exit 126
for f in .profile.d/*.sh; do [ -r "$f" ] && . "$f"; done
unset f
exec "$@""#;

#[derive(Args)]
pub(crate) struct SlugRunArgs {
    /// The slug: an object store URL (`s3://bucket/home/<app>:git-<sha>/push/slug.tgz`, `file:///...`).
    #[arg(long, env = "SLUG_URL")]
    slug_url: String,
    /// Where the slug is unpacked (HOME of the process).
    #[arg(long, env = "DEIS_APP_DIR", default_value = "/app")]
    app_dir: PathBuf,
    /// `start <type>`, or a command and its arguments.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    command: Vec<String>,
}

/// Fetches and unpacks the slug, then replaces this process with the
/// command; returns only if that fails.
pub(crate) async fn slug_run(args: SlugRunArgs) -> Result<()> {
    fetch(&args.slug_url, &args.app_dir).await?;
    let command = match args.command.as_slice() {
        [start, process_type] if start == "start" => {
            let line = procfile_command(&args.app_dir, process_type)?;
            vec!["bash".to_owned(), "-c".to_owned(), line]
        }
        [start, ..] if start == "start" => bail!("usage: slug-run start <process type>"),
        given => given.to_vec(),
    };
    let error = std::process::Command::new("bash")
        .arg("-c")
        .arg(LAUNCHER)
        .arg("slug-run")
        .args(&command)
        .env("HOME", &args.app_dir)
        .current_dir(&args.app_dir)
        .exec();
    Err(error).context("cannot start bash to run the slug")
}

async fn fetch(url: &str, app_dir: &Path) -> Result<()> {
    let Some((store, key)) = url.rsplit_once('/') else {
        bail!("SLUG_URL {url:?} is not an object store URL");
    };
    let objects = Objects::from_url(store)?;
    tokio::fs::create_dir_all(app_dir)
        .await
        .with_context(|| format!("cannot create {}", app_dir.display()))?;
    let slug = app_dir.join(".slug.tgz");
    if !objects.get_to_file(key, &slug).await? {
        bail!("There is no slug at {url}; push the app again.");
    }
    let unpacked = tokio::process::Command::new("tar")
        .arg("-xzf")
        .arg(&slug)
        .arg("-C")
        .arg(app_dir)
        .status()
        .await
        .context("cannot run tar to unpack the slug")?;
    let _ = tokio::fs::remove_file(&slug).await;
    if !unpacked.success() {
        bail!("The slug at {url} could not be unpacked ({unpacked}).");
    }
    Ok(())
}

fn procfile_command(app_dir: &Path, process_type: &str) -> Result<String> {
    let text = std::fs::read_to_string(app_dir.join("Procfile")).context("the slug has no Procfile")?;
    let mut types = parse_procfile(&text)?;
    match types.remove(process_type) {
        Some(line) => Ok(line),
        None => bail!(
            "The slug's Procfile has no process type {process_type:?} (it has: {}).",
            types.keys().cloned().collect::<Vec<_>>().join(", ")
        ),
    }
}
