//! Slugs unpacked on this machine: one directory per build, unpacked once
//! and shared by every process of every release that runs that build.

use std::path::{Path, PathBuf};

use deis_objects::Objects;
use tokio::process::Command;

/// Marks a completely unpacked slug (unpacking is not atomic).
const DONE: &str = ".deis-unpacked";

/// The slug directories under one root.
pub(crate) struct Slugs {
    root: PathBuf,
    objects: Objects,
    /// Unpacking, pruning and removal one at a time, so a one-off run
    /// never sees a slug half unpacked or pruned under it.
    busy: tokio::sync::Mutex<()>,
}

impl Slugs {
    pub(crate) fn new(root: PathBuf, objects: Objects) -> Slugs {
        Slugs {
            root,
            objects,
            busy: tokio::sync::Mutex::new(()),
        }
    }

    fn app_dir(&self, app: &str) -> PathBuf {
        self.root.join(app)
    }

    /// The directory of a build's slug, unpacking it from object storage
    /// (`key`) the first time.
    pub(crate) async fn unpack(&self, app: &str, build_uuid: &str, key: &str) -> Result<PathBuf, String> {
        let _busy = self.busy.lock().await;
        let dir = self.app_dir(app).join(build_uuid);
        if dir.join(DONE).exists() {
            return Ok(dir);
        }
        let _ = tokio::fs::remove_dir_all(&dir).await;
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let archive = self.app_dir(app).join(format!("{build_uuid}.tgz"));
        let found = self
            .objects
            .get_to_file(key, &archive)
            .await
            .map_err(|e| format!("cannot fetch the slug {key}: {e}"))?;
        if !found {
            return Err(format!("the slug {key} is not in object storage"));
        }
        let out = Command::new("tar")
            .arg("-xzf")
            .arg(&archive)
            .arg("-C")
            .arg(&dir)
            .output()
            .await
            .map_err(|e| format!("cannot run tar: {e}"))?;
        let _ = tokio::fs::remove_file(&archive).await;
        if !out.status.success() {
            return Err(format!(
                "cannot unpack the slug: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        tokio::fs::write(dir.join(DONE), b"")
            .await
            .map_err(|e| e.to_string())?;
        Ok(dir)
    }

    /// Removes an app's unpacked slugs except those of `keep` builds.
    pub(crate) async fn prune(&self, app: &str, keep: &[String]) {
        let _busy = self.busy.lock().await;
        let Ok(mut entries) = tokio::fs::read_dir(self.app_dir(app)).await else {
            return;
        };
        while let Ok(Some(entry)) = entries.next_entry().await {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !keep.contains(&name) {
                let _ = tokio::fs::remove_dir_all(entry.path()).await;
            }
        }
    }

    /// Removes every unpacked slug of an app.
    pub(crate) async fn remove_app(&self, app: &str) {
        let _busy = self.busy.lock().await;
        let _ = tokio::fs::remove_dir_all(self.app_dir(app)).await;
    }
}

/// `config_vars` of a slug's `.release` (YAML written by the buildpack):
/// defaults that the app's own config overrides.
pub(crate) fn release_config_vars(slug: &Path) -> Vec<(String, String)> {
    let Ok(text) = std::fs::read_to_string(slug.join(".release")) else {
        return Vec::new();
    };
    let mut vars = Vec::new();
    let mut inside = false;
    for line in text.lines() {
        if !line.starts_with(' ') && !line.starts_with('\t') {
            inside = line.trim_end() == "config_vars:";
            continue;
        }
        if !inside {
            continue;
        }
        if let Some((key, value)) = line.trim().split_once(':') {
            let value = value.trim().trim_matches(|c| c == '"' || c == '\'');
            if !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                vars.push((key.to_owned(), value.to_owned()));
            }
        }
    }
    vars
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_vars_come_from_the_release_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(".release"),
            "---\naddons: []\nconfig_vars:\n  LANG: en_US.UTF-8\n  PATH: \"bin:/usr/bin\"\ndefault_process_types:\n  web: x\n",
        )
        .unwrap();
        assert_eq!(
            release_config_vars(dir.path()),
            vec![
                ("LANG".into(), "en_US.UTF-8".into()),
                ("PATH".into(), "bin:/usr/bin".into())
            ]
        );
        assert!(release_config_vars(&dir.path().join("missing")).is_empty());
    }
}
