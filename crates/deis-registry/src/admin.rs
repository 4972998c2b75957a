//! What an admin service or CLI needs without going through HTTP (and
//! without a caller's credentials: the caller decides who may do this).

use crate::Registry;
use crate::error::RegistryError;
use crate::names::{Digest, RepositoryName, validate_tag};

impl Registry {
    /// Every repository, in lexical order.
    pub async fn list_repositories(&self) -> Result<Vec<String>, RegistryError> {
        self.inner.storage.catalog().await
    }

    /// A repository's tags in lexical order; `NAME_UNKNOWN` when nothing was
    /// ever pushed to it.
    pub async fn list_tags(&self, repository: &str) -> Result<Vec<String>, RegistryError> {
        let name = RepositoryName::parse(repository)?;
        if !self.inner.storage.repository_exists(&name).await? {
            return Err(RegistryError::NameUnknown);
        }
        self.inner.storage.tags(&name).await
    }

    /// The manifest a tag points at; `None` when there is no such tag.
    pub async fn resolve_tag(&self, repository: &str, tag: &str) -> Result<Option<Digest>, RegistryError> {
        let name = RepositoryName::parse(repository)?;
        validate_tag(tag)?;
        self.inner.storage.tag(&name, tag).await
    }

    /// Removes a repository with those nested under it (`app` and
    /// `app/web`), as when its app is destroyed; the next garbage
    /// collection frees the blobs nothing else references.
    pub async fn delete_repository(&self, repository: &str) -> Result<(), RegistryError> {
        let name = RepositoryName::parse(repository)?;
        // Not while a collection marks what is referenced.
        let _pause = self.inner.pause.read().await;
        self.inner.storage.delete_repository(&name).await
    }

    /// Removes a tag; its manifest stays, reachable by digest (garbage
    /// collection keeps it and its blobs until the manifest is deleted).
    pub async fn delete_tag(&self, repository: &str, tag: &str) -> Result<(), RegistryError> {
        let name = RepositoryName::parse(repository)?;
        validate_tag(tag)?;
        self.inner.storage.delete_tag(&name, tag).await
    }
}
