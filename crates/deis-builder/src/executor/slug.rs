//! The buildpack half of a build, between object storage and the local
//! executor: restore the app's build cache, build, store the slug and its
//! process types, save the cache if the build changed it. The builder runs
//! it for builds on its own machine; `deis-workflow build-slug` runs the very
//! same steps inside a Kubernetes Job, after [`fetch_source`].

use std::collections::BTreeMap;
use std::path::Path;

use deis_objects::{self as objects, Objects};
use tokio::process::Command;

use super::{BuildError, BuildJob, BuildLog, LocalExecutor, StoredSlug};

async fn say(log: &BuildLog, text: &str) {
    let _ = log.send(text.to_owned()).await;
}

pub(crate) async fn build_and_store(
    executor: &LocalExecutor,
    objects: &Objects,
    mut job: BuildJob,
    log: BuildLog,
) -> Result<StoredSlug, BuildError> {
    let (app, sha) = (job.app.clone(), job.sha.clone());
    let cache_key = objects::cache_key(&app);
    let cache = if job.env.contains_key("DEIS_DISABLE_CACHE") {
        objects.delete(&cache_key).await?;
        say(&log, "-----> Build cache disabled (DEIS_DISABLE_CACHE).").await;
        None
    } else {
        let dir = job.work_dir.join("cache");
        tokio::fs::create_dir_all(&dir).await?;
        let packed = job.work_dir.join("cache.tgz");
        if objects.get_to_file(&cache_key, &packed).await? {
            say(&log, "-----> Restoring build cache").await;
            let mut tar = Command::new("tar");
            tar.arg("-xzf").arg(&packed).arg("-C").arg(&dir);
            run_step(&mut tar, "restoring the build cache").await?;
            let _ = tokio::fs::remove_file(&packed).await;
        }
        Some(dir)
    };
    let cache_before = match &cache {
        Some(dir) => Some(tree_signature(dir).await?),
        None => None,
    };
    job.cache = cache.clone();
    let work_dir = job.work_dir.clone();
    let built = executor.build(job, log).await?;

    objects
        .put_file(&objects::slug_key(&app, &sha), &built.slug)
        .await?;
    objects
        .put_bytes(
            &objects::procfile_key(&app, &sha),
            procfile_text(&built.procfile).into_bytes(),
        )
        .await?;
    if let (Some(dir), Some(before)) = (&cache, cache_before)
        && tree_signature(dir).await? != before
    {
        let packed = work_dir.join("cache-new.tgz");
        let mut tar = Command::new("tar");
        tar.arg("-czf").arg(&packed).arg("-C").arg(dir).arg(".");
        run_step(&mut tar, "saving the build cache").await?;
        objects.put_file(&cache_key, &packed).await?;
    }
    Ok(StoredSlug {
        procfile: built.procfile,
    })
}

/// Downloads the source tarball of `app` at `sha` from object storage
/// (through `<work_dir>/source.tar`) and unpacks it into `into`.
pub async fn fetch_source(
    objects: &Objects,
    app: &str,
    sha: &str,
    work_dir: &Path,
    into: &Path,
) -> Result<(), BuildError> {
    tokio::fs::create_dir_all(work_dir).await?;
    let tarball = work_dir.join("source.tar");
    if !objects
        .get_to_file(&objects::source_key(app, sha), &tarball)
        .await?
    {
        return Err(BuildError::Failed(format!(
            "The source of {app} at {} is not in object storage; push again.",
            sha.get(..8).unwrap_or(sha)
        )));
    }
    unpack(&tarball, into).await?;
    let _ = tokio::fs::remove_file(&tarball).await;
    Ok(())
}

/// Unpacks the tar at `tarball` into `dir` (created if missing).
pub async fn unpack(tarball: &Path, dir: &Path) -> Result<(), BuildError> {
    tokio::fs::create_dir_all(dir).await?;
    let mut tar = Command::new("tar");
    tar.arg("-xf").arg(tarball).arg("-C").arg(dir);
    run_step(&mut tar, "unpacking the source").await
}

/// The Procfile stored beside a slug.
fn procfile_text(procfile: &BTreeMap<String, String>) -> String {
    procfile.iter().map(|(k, v)| format!("{k}: {v}\n")).collect()
}

async fn run_step(command: &mut Command, what: &str) -> Result<(), BuildError> {
    let out = command.stderr(std::process::Stdio::piped()).output().await?;
    if out.status.success() {
        Ok(())
    } else {
        Err(BuildError::Failed(format!(
            "{what} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// A cheap fingerprint of a directory tree (paths, sizes, modification
/// times), to upload the cache only when the build changed it.
async fn tree_signature(dir: &Path) -> std::io::Result<u64> {
    use std::hash::{Hash, Hasher};
    let dir = dir.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        let mut stack = vec![dir];
        let mut entries = Vec::new();
        while let Some(current) = stack.pop() {
            for entry in std::fs::read_dir(&current)? {
                let entry = entry?;
                let meta = entry.metadata()?;
                if meta.is_dir() {
                    stack.push(entry.path());
                }
                let modified = meta
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok());
                entries.push((entry.path(), meta.len(), modified));
            }
        }
        entries.sort();
        entries.hash(&mut hasher);
        Ok(hasher.finish())
    })
    .await
    .map_err(std::io::Error::other)?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_procfiles_parse_back_to_what_was_stored() {
        let procfile = BTreeMap::from([
            (
                "web".to_owned(),
                "gunicorn app:app --bind 0.0.0.0:$PORT".to_owned(),
            ),
            ("worker".to_owned(), "python worker.py # the queue".to_owned()),
        ]);
        let parsed = super::super::parse_procfile(&procfile_text(&procfile)).unwrap();
        assert_eq!(parsed, procfile);
    }
}
