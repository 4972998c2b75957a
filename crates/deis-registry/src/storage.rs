//! The registry's tree in the object store (see the crate docs for the
//! layout) and the repository-level operations on it: blob links, manifest
//! revisions, tags, referrers and the catalog.

use std::time::SystemTime;

use deis_objects::Objects;
use serde::{Deserialize, Serialize};

use crate::error::RegistryError;
use crate::manifest::{self, Descriptor};
use crate::names::{Digest, RepositoryName};

const ROOT: &str = "registry";

/// Directories of a repository start with `_`, which no name component can,
/// so they never collide with nested repository names.
const REPOSITORY_DIRS: [&str; 3] = ["_layers", "_manifests", "_referrers"];

/// Where a blob's bytes live: one copy per digest, shared by repositories.
pub(crate) fn blob_key(digest: &Digest) -> String {
    let hex = digest.hex();
    format!("{ROOT}/blobs/sha256/{}/{hex}", hex.get(..2).unwrap_or(hex))
}

fn repository_key(name: &RepositoryName) -> String {
    format!("{ROOT}/repositories/{name}")
}

fn layer_link_key(name: &RepositoryName, digest: &Digest) -> String {
    format!("{}/{}", layer_links_key(name), digest.hex())
}

fn revision_key(name: &RepositoryName, digest: &Digest) -> String {
    format!("{}/{}", revisions_key(name), digest.hex())
}

fn tags_key(name: &RepositoryName) -> String {
    format!("{}/_manifests/tags", repository_key(name))
}

fn tag_key(name: &RepositoryName, tag: &str) -> String {
    format!("{}/{tag}", tags_key(name))
}

fn referrers_key(name: &RepositoryName, subject: &Digest) -> String {
    format!("{}/_referrers/sha256/{}", repository_key(name), subject.hex())
}

fn referrer_key(name: &RepositoryName, subject: &Digest, digest: &Digest) -> String {
    format!("{}/{}", referrers_key(name, subject), digest.hex())
}

fn revisions_key(name: &RepositoryName) -> String {
    format!("{}/_manifests/revisions/sha256", repository_key(name))
}

fn layer_links_key(name: &RepositoryName) -> String {
    format!("{}/_layers/sha256", repository_key(name))
}

/// A digest from the hex name of a stored object (`None` for a stray file).
fn digest_named(hex: &str) -> Option<Digest> {
    Digest::parse(&format!("sha256:{hex}")).ok()
}

/// Upload sessions live outside repositories: `registry/uploads/<id>/`.
pub(crate) const UPLOADS: &str = "registry/uploads";

pub(crate) fn upload_key(id: &str) -> String {
    format!("{UPLOADS}/{id}")
}

/// What a manifest revision records beside the manifest's bytes (which are
/// stored as a blob).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Revision {
    pub(crate) media_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) subject: Option<String>,
}

/// A stored manifest.
pub(crate) struct StoredManifest {
    pub(crate) digest: Digest,
    pub(crate) media_type: String,
    pub(crate) size: u64,
}

/// The repository-level view of the object store.
#[derive(Debug, Clone)]
pub(crate) struct Storage {
    objects: Objects,
}

impl Storage {
    pub(crate) fn new(objects: Objects) -> Storage {
        Storage { objects }
    }

    pub(crate) fn objects(&self) -> &Objects {
        &self.objects
    }

    /// The size of a blob linked into the repository.
    pub(crate) async fn blob_size(
        &self,
        name: &RepositoryName,
        digest: &Digest,
    ) -> Result<u64, RegistryError> {
        if !self.objects.exists(&layer_link_key(name, digest)).await? {
            return Err(RegistryError::BlobUnknown(digest.clone()));
        }
        self.objects
            .size(&blob_key(digest))
            .await?
            .ok_or_else(|| RegistryError::BlobUnknown(digest.clone()))
    }

    /// Whether the blob's bytes are stored (in any repository).
    pub(crate) async fn blob_stored(&self, digest: &Digest) -> Result<bool, RegistryError> {
        Ok(self.objects.exists(&blob_key(digest)).await?)
    }

    /// Makes a stored blob visible in a repository.
    pub(crate) async fn link_blob(
        &self,
        name: &RepositoryName,
        digest: &Digest,
    ) -> Result<(), RegistryError> {
        self.objects
            .put_bytes(&layer_link_key(name, digest), Vec::new())
            .await?;
        Ok(())
    }

    /// Removes a blob from a repository (its bytes stay for other
    /// repositories until garbage collection).
    pub(crate) async fn unlink_blob(
        &self,
        name: &RepositoryName,
        digest: &Digest,
    ) -> Result<(), RegistryError> {
        if !self.objects.exists(&layer_link_key(name, digest)).await? {
            return Err(RegistryError::BlobUnknown(digest.clone()));
        }
        self.delete_link(name, digest).await
    }

    /// Whether the repository holds the manifest.
    pub(crate) async fn has_manifest(
        &self,
        name: &RepositoryName,
        digest: &Digest,
    ) -> Result<bool, RegistryError> {
        Ok(self.objects.exists(&revision_key(name, digest)).await?)
    }

    /// A manifest's metadata by digest.
    pub(crate) async fn manifest(
        &self,
        name: &RepositoryName,
        digest: &Digest,
    ) -> Result<StoredManifest, RegistryError> {
        let revision = self
            .revision(name, digest)
            .await?
            .ok_or(RegistryError::ManifestUnknown)?;
        let size = self
            .objects
            .size(&blob_key(digest))
            .await?
            .ok_or(RegistryError::ManifestUnknown)?;
        Ok(StoredManifest {
            digest: digest.clone(),
            media_type: revision.media_type,
            size,
        })
    }

    /// A manifest's bytes (bounded by the manifest size limit at push).
    pub(crate) async fn manifest_bytes(&self, digest: &Digest) -> Result<Vec<u8>, RegistryError> {
        self.objects
            .get_bytes(&blob_key(digest))
            .await?
            .ok_or(RegistryError::ManifestUnknown)
    }

    async fn revision(
        &self,
        name: &RepositoryName,
        digest: &Digest,
    ) -> Result<Option<Revision>, RegistryError> {
        let Some(bytes) = self.objects.get_bytes(&revision_key(name, digest)).await? else {
            return Ok(None);
        };
        let revision = serde_json::from_slice(&bytes)
            .map_err(|e| RegistryError::Corrupt(format!("revision {name}@{digest}: {e}")))?;
        Ok(Some(revision))
    }

    /// Stores a validated manifest: bytes first, then the revision, then the
    /// referrer entry, so nothing points at what is not there yet.
    pub(crate) async fn put_manifest(
        &self,
        name: &RepositoryName,
        digest: &Digest,
        bytes: Vec<u8>,
        revision: &Revision,
        referrer: Option<(&Digest, &Descriptor)>,
    ) -> Result<(), RegistryError> {
        self.objects.put_bytes_if_absent(&blob_key(digest), bytes).await?;
        self.objects
            .put_bytes(&revision_key(name, digest), to_json(revision))
            .await?;
        if let Some((subject, descriptor)) = referrer {
            self.objects
                .put_bytes(&referrer_key(name, subject, digest), to_json(descriptor))
                .await?;
        }
        Ok(())
    }

    /// Deletes a manifest revision, the tags that point at it and its
    /// referrer entry.
    pub(crate) async fn delete_manifest(
        &self,
        name: &RepositoryName,
        digest: &Digest,
    ) -> Result<(), RegistryError> {
        let revision = self
            .revision(name, digest)
            .await?
            .ok_or(RegistryError::ManifestUnknown)?;
        for tag in self.tags(name).await? {
            if self.tag(name, &tag).await?.as_ref() == Some(digest) {
                self.objects.delete(&tag_key(name, &tag)).await?;
            }
        }
        if let Some(subject) = revision.subject.as_deref().and_then(|s| Digest::parse(s).ok()) {
            self.objects.delete(&referrer_key(name, &subject, digest)).await?;
        }
        self.objects.delete(&revision_key(name, digest)).await?;
        Ok(())
    }

    /// Points a tag at a manifest.
    pub(crate) async fn set_tag(
        &self,
        name: &RepositoryName,
        tag: &str,
        digest: &Digest,
    ) -> Result<(), RegistryError> {
        self.objects
            .put_bytes(&tag_key(name, tag), digest.to_string().into_bytes())
            .await?;
        Ok(())
    }

    /// What a tag points at; `None` when there is no such tag.
    pub(crate) async fn tag(
        &self,
        name: &RepositoryName,
        tag: &str,
    ) -> Result<Option<Digest>, RegistryError> {
        let Some(bytes) = self.objects.get_bytes(&tag_key(name, tag)).await? else {
            return Ok(None);
        };
        let text = String::from_utf8_lossy(&bytes);
        let digest = Digest::parse(text.trim())
            .map_err(|e| RegistryError::Corrupt(format!("tag {name}:{tag}: {e}")))?;
        Ok(Some(digest))
    }

    /// Removes a tag (the manifest stays, reachable by digest).
    pub(crate) async fn delete_tag(&self, name: &RepositoryName, tag: &str) -> Result<(), RegistryError> {
        if !self.objects.exists(&tag_key(name, tag)).await? {
            return Err(RegistryError::ManifestUnknown);
        }
        self.objects.delete(&tag_key(name, tag)).await?;
        Ok(())
    }

    /// The repository's tags in lexical order.
    pub(crate) async fn tags(&self, name: &RepositoryName) -> Result<Vec<String>, RegistryError> {
        let listing = self.objects.list_dir(&tags_key(name)).await?;
        Ok(listing.objects.into_iter().map(|object| object.name).collect())
    }

    /// Whether anything was ever pushed to the repository.
    pub(crate) async fn repository_exists(&self, name: &RepositoryName) -> Result<bool, RegistryError> {
        let listing = self.objects.list_dir(&repository_key(name)).await?;
        Ok(listing
            .directories
            .iter()
            .any(|dir| REPOSITORY_DIRS.contains(&dir.as_str())))
    }

    /// The descriptors of the manifests whose subject is `subject`.
    pub(crate) async fn referrers(
        &self,
        name: &RepositoryName,
        subject: &Digest,
    ) -> Result<Vec<Descriptor>, RegistryError> {
        let prefix = referrers_key(name, subject);
        let listing = self.objects.list_dir(&prefix).await?;
        let mut referrers = Vec::with_capacity(listing.objects.len());
        for object in listing.objects {
            let Some(bytes) = self
                .objects
                .get_bytes(&format!("{prefix}/{}", object.name))
                .await?
            else {
                continue; // deleted meanwhile
            };
            match serde_json::from_slice(&bytes) {
                Ok(descriptor) => referrers.push(descriptor),
                Err(e) => tracing::warn!(error = %e, %name, %subject, "skipping unreadable referrer entry"),
            }
        }
        Ok(referrers)
    }

    /// The repository's manifests and when each was written.
    pub(crate) async fn revisions(
        &self,
        name: &RepositoryName,
    ) -> Result<Vec<(Digest, SystemTime)>, RegistryError> {
        self.digests_under(&revisions_key(name)).await
    }

    /// The blobs linked into the repository and when each link was written
    /// (at upload completion or mount).
    pub(crate) async fn linked_blobs(
        &self,
        name: &RepositoryName,
    ) -> Result<Vec<(Digest, SystemTime)>, RegistryError> {
        self.digests_under(&layer_links_key(name)).await
    }

    async fn digests_under(&self, prefix: &str) -> Result<Vec<(Digest, SystemTime)>, RegistryError> {
        let listing = self.objects.list_dir(prefix).await?;
        let digests = listing
            .objects
            .into_iter()
            .filter_map(|object| Some((digest_named(&object.name)?, object.modified)))
            .collect();
        Ok(digests)
    }

    /// The blobs a stored manifest needs, its own bytes included; nothing
    /// when it was deleted meanwhile.
    pub(crate) async fn manifest_references(
        &self,
        name: &RepositoryName,
        digest: &Digest,
    ) -> Result<Vec<Digest>, RegistryError> {
        let Some(revision) = self.revision(name, digest).await? else {
            return Ok(Vec::new());
        };
        let Some(bytes) = self.objects.get_bytes(&blob_key(digest)).await? else {
            return Ok(Vec::new());
        };
        // It was valid when pushed; if it no longer parses, nothing is safe
        // to delete.
        let manifest = manifest::parse(&bytes, Some(&revision.media_type))
            .map_err(|e| RegistryError::Corrupt(format!("manifest {name}@{digest}: {e}")))?;
        let mut references = manifest.blobs;
        references.push(digest.clone());
        Ok(references)
    }

    /// Every stored blob: digest, size and when it was written.
    pub(crate) async fn stored_blobs(&self) -> Result<Vec<(Digest, u64, SystemTime)>, RegistryError> {
        let root = format!("{ROOT}/blobs/sha256");
        let mut blobs = Vec::new();
        for shard in self.objects.list_dir(&root).await?.directories {
            for object in self.objects.list_dir(&format!("{root}/{shard}")).await?.objects {
                if let Some(digest) = digest_named(&object.name) {
                    blobs.push((digest, object.size, object.modified));
                }
            }
        }
        Ok(blobs)
    }

    /// Deletes a blob's bytes (garbage collection only).
    pub(crate) async fn delete_blob(&self, digest: &Digest) -> Result<(), RegistryError> {
        self.objects.delete(&blob_key(digest)).await?;
        Ok(())
    }

    /// Deletes a repository's link to a blob, if there is one.
    pub(crate) async fn delete_link(
        &self,
        name: &RepositoryName,
        digest: &Digest,
    ) -> Result<(), RegistryError> {
        self.objects.delete(&layer_link_key(name, digest)).await?;
        Ok(())
    }

    /// Deletes a repository and every repository nested under it: tags,
    /// manifests, links. Blobs stay until garbage collection finds them
    /// unreferenced.
    pub(crate) async fn delete_repository(&self, name: &RepositoryName) -> Result<(), RegistryError> {
        self.objects.delete_prefix(&repository_key(name)).await?;
        Ok(())
    }

    /// Every repository name, in lexical order. Repositories nest (`a` and
    /// `a/b` may both exist), so the tree is walked; a directory is a
    /// repository when it has one of the `_` directories.
    pub(crate) async fn catalog(&self) -> Result<Vec<String>, RegistryError> {
        let root = format!("{ROOT}/repositories");
        let mut names = Vec::new();
        let mut pending = vec![String::new()];
        while let Some(name) = pending.pop() {
            let prefix = if name.is_empty() {
                root.clone()
            } else {
                format!("{root}/{name}")
            };
            let listing = self.objects.list_dir(&prefix).await?;
            let mut is_repository = false;
            for dir in listing.directories {
                if dir.starts_with('_') {
                    is_repository |= REPOSITORY_DIRS.contains(&dir.as_str());
                } else if name.is_empty() {
                    pending.push(dir);
                } else {
                    pending.push(format!("{name}/{dir}"));
                }
            }
            if is_repository {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }
}

fn to_json(value: &impl Serialize) -> Vec<u8> {
    // Serialising these plain structs cannot fail.
    serde_json::to_vec(value).unwrap_or_default()
}
