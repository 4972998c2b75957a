//! Slugs unpacked on this machine: one directory per build, unpacked once
//! and shared by every process of every release that runs that build.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use deis_isolation::OsUser;
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
    /// (`key`) the first time. With a `user`, the slug is that user's and
    /// nobody else's.
    pub(crate) async fn unpack(
        &self,
        app: &str,
        build_uuid: &str,
        key: &str,
        user: Option<OsUser>,
    ) -> Result<PathBuf, String> {
        let _busy = self.busy.lock().await;
        let dir = self.app_dir(app).join(build_uuid);
        if dir.join(DONE).exists() {
            // Unpacked before the app had a user of its own (or for another
            // uid): given now, while it still is root's.
            if let Some(user) = user
                && std::fs::symlink_metadata(&dir).is_ok_and(|m| m.uid() != user.uid)
            {
                give(user, &dir).await?;
            }
            return Ok(dir);
        }
        // Unpacked where only root can reach it, then moved into place
        // whole: nothing of the app's can interfere while it is prepared.
        let staging = self.app_dir(app).join(format!("{build_uuid}.unpacking"));
        for stale in [&dir, &staging] {
            let _ = tokio::fs::remove_dir_all(stale).await;
        }
        let cannot = |what: &Path, e: std::io::Error| format!("cannot create {}: {e}", what.display());
        tokio::fs::create_dir_all(self.app_dir(app))
            .await
            .map_err(|e| cannot(&self.app_dir(app), e))?;
        if user.is_some() {
            // Searchable, not listable (as the root of all slugs is): apps
            // reach only their own builds.
            tokio::fs::set_permissions(self.app_dir(app), std::fs::Permissions::from_mode(0o711))
                .await
                .map_err(|e| cannot(&self.app_dir(app), e))?;
        }
        tokio::fs::DirBuilder::new()
            .mode(0o700)
            .create(&staging)
            .await
            .map_err(|e| cannot(&staging, e))?;
        // Downloaded where no app can read it, either.
        let downloads = self.root.join(".downloads");
        tokio::fs::DirBuilder::new()
            .mode(0o700)
            .recursive(true)
            .create(&downloads)
            .await
            .map_err(|e| cannot(&downloads, e))?;
        let archive = downloads.join(format!("{app}-{build_uuid}.tgz"));
        let found = self
            .objects
            .get_to_file(key, &archive)
            .await
            .map_err(|e| format!("cannot fetch the slug {key}: {e}"))?;
        if !found {
            return Err(format!("the slug {key} is not in object storage"));
        }
        let out = Command::new("tar")
            .arg("--no-same-owner")
            .arg("-xzf")
            .arg(&archive)
            .arg("-C")
            .arg(&staging)
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
        tokio::fs::write(staging.join(DONE), b"")
            .await
            .map_err(|e| e.to_string())?;
        if let Some(user) = user {
            give(user, &staging).await?;
        }
        tokio::fs::rename(&staging, &dir)
            .await
            .map_err(|e| format!("cannot move the slug into {}: {e}", dir.display()))?;
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

/// Gives an unpacked slug to its app's user.
async fn give(user: OsUser, dir: &Path) -> Result<(), String> {
    let dir = dir.to_owned();
    tokio::task::spawn_blocking(move || user.give(&dir))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("cannot give the slug to its app's user: {e}"))
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
