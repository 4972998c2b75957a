//! Garbage collection: deletes the blobs no manifest references, and the
//! uploads clients started and abandoned.
//!
//! Marking reads every manifest while the registry keeps serving. Then,
//! with manifest pushes, upload completions and mounts held back (the
//! `pause` lock), manifests written since the collection started are marked
//! too, and unreferenced blobs are deleted with their repository links.
//! Recent blobs and blobs linked recently (younger than the caller's grace
//! period) are kept: a push uploads its blobs before its manifest, so they
//! are unreferenced for a while. Uploads in progress are not blobs yet;
//! only those idle for [`RegistryOptions::abandoned_upload_age`] are
//! removed (see `uploads.rs`).
//!
//! [`RegistryOptions::abandoned_upload_age`]: crate::RegistryOptions::abandoned_upload_age

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use crate::Registry;
use crate::error::RegistryError;
use crate::names::{Digest, RepositoryName};

/// What a garbage collection did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Repositories whose manifests were read.
    pub repositories: usize,
    /// Manifests read.
    pub manifests: usize,
    /// Blobs kept (referenced or recent).
    pub blobs_kept: usize,
    /// Blobs deleted.
    pub blobs_removed: usize,
    /// Bytes those blobs held.
    pub bytes_removed: u64,
    /// Abandoned uploads removed.
    pub uploads_removed: usize,
}

impl Registry {
    /// Deletes every blob no manifest references, unless it (or a link to
    /// it) was written less than `grace` ago. A manifest pushed while this
    /// runs keeps its blobs. Also removes the uploads idle for
    /// [`RegistryOptions::abandoned_upload_age`](crate::RegistryOptions::abandoned_upload_age).
    pub async fn collect_garbage(&self, grace: Duration) -> Result<GcReport, RegistryError> {
        let storage = &self.inner.storage;
        let mut report = GcReport {
            uploads_removed: self
                .remove_abandoned_uploads(self.inner.options.abandoned_upload_age)
                .await?,
            ..GcReport::default()
        };
        let started = SystemTime::now();
        let recent = started.checked_sub(grace).unwrap_or(SystemTime::UNIX_EPOCH);
        let mut referenced: HashSet<Digest> = HashSet::new();
        for name in self.repositories().await? {
            for (digest, _) in storage.revisions(&name).await? {
                referenced.extend(storage.manifest_references(&name, &digest).await?);
                report.manifests += 1;
            }
            report.repositories += 1;
        }

        let _pause = self.inner.pause.write().await;
        let repositories = self.repositories().await?;
        let mut links = Vec::new();
        for name in &repositories {
            for (digest, written) in storage.revisions(name).await? {
                if written >= recent {
                    referenced.extend(storage.manifest_references(name, &digest).await?);
                }
            }
            for (digest, written) in storage.linked_blobs(name).await? {
                if written >= recent {
                    referenced.insert(digest.clone());
                }
                links.push((name, digest));
            }
        }
        let mut removed = HashSet::new();
        for (digest, size, written) in storage.stored_blobs().await? {
            if referenced.contains(&digest) || written >= recent {
                report.blobs_kept += 1;
                continue;
            }
            storage.delete_blob(&digest).await?;
            report.blobs_removed += 1;
            report.bytes_removed += size;
            removed.insert(digest);
        }
        for (name, digest) in links {
            if removed.contains(&digest) {
                storage.delete_link(name, &digest).await?;
            }
        }
        tracing::info!(?report, "registry garbage collection finished");
        Ok(report)
    }

    /// Removes the uploads nothing was written to for `idle` (since they
    /// were started or their last chunk arrived); an upload a request is
    /// working on is never touched. Returns how many were removed.
    pub async fn remove_abandoned_uploads(&self, idle: Duration) -> Result<usize, RegistryError> {
        let cutoff = SystemTime::now()
            .checked_sub(idle)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        self.inner.uploads.remove_abandoned(cutoff).await
    }

    async fn repositories(&self) -> Result<Vec<RepositoryName>, RegistryError> {
        let names = self.inner.storage.catalog().await?;
        names.iter().map(|name| RepositoryName::parse(name)).collect()
    }
}
