//! Object storage for source tarballs, slugs and build caches (later images
//! and log archives), on the `object_store` crate: local files by default,
//! S3, GCS or Azure by URL.
//!
//! Architecture invariant: every component that stores blobs goes through
//! [`Objects`]; none talks to a storage backend directly.
//!
//! Keys follow Deis's layout: `home/<app>:git-<sha8>/tar`,
//! `home/<app>:git-<sha8>/push/slug.tgz` (with `Procfile` beside it) and
//! `home/<app>/cache/cache.tgz`.

use std::path::Path as FsPath;
use std::sync::Arc;

use futures::StreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Errors of object storage.
#[derive(Debug, thiserror::Error)]
pub enum ObjectsError {
    /// The store refused or failed.
    #[error("object storage: {0}")]
    Store(#[from] object_store::Error),
    /// A local file could not be read or written.
    #[error("object storage: {0}")]
    Io(#[from] std::io::Error),
    /// The URL does not name a supported store.
    #[error(
        "object storage URL {0:?} is not supported; use file:///path, s3://bucket, gs://bucket or az://container"
    )]
    Url(String),
}

/// Chunk size for streaming uploads: memory stays bounded whatever the size.
const CHUNK: usize = 5 * 1024 * 1024;

/// The platform's object store.
#[derive(Clone, Debug)]
pub struct Objects {
    store: Arc<dyn ObjectStore>,
    prefix: Path,
}

impl Objects {
    /// Local files under `dir` (created if missing).
    pub fn local(dir: &FsPath) -> Result<Objects, ObjectsError> {
        std::fs::create_dir_all(dir)?;
        let store = object_store::local::LocalFileSystem::new_with_prefix(dir)?.with_automatic_cleanup(true);
        Ok(Objects {
            store: Arc::new(store),
            prefix: Path::default(),
        })
    }

    /// A store named by URL: `file:///path`, `s3://bucket/prefix`,
    /// `gs://bucket`, `az://container` (credentials from the usual
    /// environment variables, e.g. `AWS_ACCESS_KEY_ID`, `AWS_ENDPOINT`).
    pub fn from_url(url: &str) -> Result<Objects, ObjectsError> {
        let parsed = url::Url::parse(url).map_err(|_| ObjectsError::Url(url.to_owned()))?;
        match parsed.scheme() {
            "file" => {
                let dir = parsed
                    .to_file_path()
                    .map_err(|()| ObjectsError::Url(url.to_owned()))?;
                return Objects::local(&dir);
            }
            "s3" | "s3a" | "gs" | "az" | "azure" | "abfs" | "abfss" | "adl" => {}
            _ => return Err(ObjectsError::Url(url.to_owned())),
        }
        // The cloud clients speak TLS through rustls with ring, the one
        // crypto provider of the platform; installing it twice is harmless.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let options: Vec<(String, String)> = std::env::vars()
            .filter(|(k, _)| k.starts_with("AWS_") || k.starts_with("GOOGLE_") || k.starts_with("AZURE_"))
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .collect();
        let (store, prefix) = object_store::parse_url_opts(&parsed, options)?;
        Ok(Objects {
            store: Arc::from(store),
            prefix,
        })
    }

    /// An in-memory store (tests).
    pub fn memory() -> Objects {
        Objects {
            store: Arc::new(object_store::memory::InMemory::new()),
            prefix: Path::default(),
        }
    }

    fn key(&self, key: &str) -> Path {
        let mut path = self.prefix.clone();
        for part in key.split('/').filter(|p| !p.is_empty()) {
            path = path.clone().join(part);
        }
        path
    }

    /// Uploads a local file, streaming it in chunks.
    pub async fn put_file(&self, key: &str, file: &FsPath) -> Result<u64, ObjectsError> {
        let mut source = tokio::fs::File::open(file).await?;
        let upload = self.store.put_multipart(&self.key(key)).await?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, CHUNK);
        let mut buffer = vec![0u8; 256 * 1024];
        let mut total = 0u64;
        loop {
            let n = source.read(&mut buffer).await?;
            if n == 0 {
                break;
            }
            writer.wait_for_capacity(4).await?;
            writer.write(buffer.get(..n).unwrap_or_default());
            total += n as u64;
        }
        writer.finish().await?;
        Ok(total)
    }

    /// Stores a small value.
    pub async fn put_bytes(&self, key: &str, bytes: Vec<u8>) -> Result<(), ObjectsError> {
        self.store.put(&self.key(key), PutPayload::from(bytes)).await?;
        Ok(())
    }

    /// Downloads an object into a local file; `false` when it does not exist.
    pub async fn get_to_file(&self, key: &str, file: &FsPath) -> Result<bool, ObjectsError> {
        let result = match self.store.get(&self.key(key)).await {
            Ok(result) => result,
            Err(object_store::Error::NotFound { .. }) => return Ok(false),
            Err(err) => return Err(err.into()),
        };
        let mut stream = result.into_stream();
        let mut out = tokio::fs::File::create(file).await?;
        while let Some(chunk) = stream.next().await {
            out.write_all(&chunk?).await?;
        }
        out.flush().await?;
        Ok(true)
    }

    /// Reads a small object; `None` when it does not exist.
    pub async fn get_bytes(&self, key: &str) -> Result<Option<Vec<u8>>, ObjectsError> {
        match self.store.get(&self.key(key)).await {
            Ok(result) => Ok(Some(result.bytes().await?.to_vec())),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(err) => Err(err.into()),
        }
    }

    /// Whether an object exists.
    pub async fn exists(&self, key: &str) -> Result<bool, ObjectsError> {
        match self.store.head(&self.key(key)).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(err) => Err(err.into()),
        }
    }

    /// Deletes an object; deleting a missing object is not an error.
    pub async fn delete(&self, key: &str) -> Result<(), ObjectsError> {
        match self.store.delete(&self.key(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(err) => Err(err.into()),
        }
    }

    /// Deletes every object under a prefix (an app's objects on destroy).
    pub async fn delete_prefix(&self, prefix: &str) -> Result<(), ObjectsError> {
        self.delete_under(&self.key(prefix)).await
    }

    /// Deletes every object of an app: its build cache (`home/<app>/`) and
    /// every build's source, slug and Procfile (`home/<app>:git-<sha8>/`).
    /// Returns how many builds' prefixes were removed.
    pub async fn delete_app(&self, app: &str) -> Result<usize, ObjectsError> {
        self.delete_prefix(&format!("home/{app}")).await?;
        // Builds sit beside the app's directory, not in it, so they are
        // found among `home/`'s children; `:` cannot occur in an app id, so
        // `<app>:git-` never matches another app's builds.
        let builds = format!("{app}:git-");
        let listed = self.store.list_with_delimiter(Some(&self.key("home"))).await?;
        let mut removed = 0;
        for prefix in listed.common_prefixes {
            if prefix.filename().is_some_and(|name| name.starts_with(&builds)) {
                self.delete_under(&prefix).await?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    async fn delete_under(&self, prefix: &Path) -> Result<(), ObjectsError> {
        let listed: Vec<_> = self.store.list(Some(prefix)).collect().await;
        for meta in listed {
            match self.store.delete(&meta?.location).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(err) => return Err(err.into()),
            }
        }
        Ok(())
    }
}

/// `home/<app>:git-<sha8>`: where one build's objects live.
pub fn build_prefix(app: &str, sha: &str) -> String {
    format!("home/{app}:git-{}", sha.get(..8).unwrap_or(sha))
}

/// The source tarball of a build.
pub fn source_key(app: &str, sha: &str) -> String {
    format!("{}/tar", build_prefix(app, sha))
}

/// The slug of a build.
pub fn slug_key(app: &str, sha: &str) -> String {
    format!("{}/push/slug.tgz", build_prefix(app, sha))
}

/// The Procfile beside a slug.
pub fn procfile_key(app: &str, sha: &str) -> String {
    format!("{}/push/Procfile", build_prefix(app, sha))
}

/// An app's build cache.
pub fn cache_key(app: &str) -> String {
    format!("home/{app}/cache/cache.tgz")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn files_round_trip_through_a_local_store() {
        let dir = tempfile::tempdir().unwrap();
        let objects = Objects::local(&dir.path().join("objects")).unwrap();
        let source = dir.path().join("in.bin");
        let data: Vec<u8> = (0..(CHUNK * 2 + 123)).map(|i| (i % 251) as u8).collect();
        std::fs::write(&source, &data).unwrap();
        let key = slug_key("myapp", "0123456789abcdef0123456789abcdef01234567");
        assert_eq!(key, "home/myapp:git-01234567/push/slug.tgz");
        assert_eq!(objects.put_file(&key, &source).await.unwrap(), data.len() as u64);
        assert!(objects.exists(&key).await.unwrap());
        let out = dir.path().join("out.bin");
        assert!(objects.get_to_file(&key, &out).await.unwrap());
        assert_eq!(std::fs::read(&out).unwrap(), data);
        assert!(!objects.get_to_file("home/none/x", &out).await.unwrap());
        objects.delete_prefix("home/myapp:git-01234567").await.unwrap();
        assert!(!objects.exists(&key).await.unwrap());
        objects.delete(&key).await.unwrap();
    }

    #[test]
    fn unsupported_urls_are_refused_clearly() {
        for url in ["ftp://example.com/x", "http://example.com/bucket", "not a url"] {
            let err = Objects::from_url(url).unwrap_err();
            assert!(err.to_string().contains("not supported"), "{err}");
        }
    }

    #[test]
    fn cloud_urls_build_stores() {
        // Construction only (no request is made): credentials come from the
        // environment when the store is used.
        Objects::from_url("s3://deis-bucket/platform").unwrap();
        Objects::from_url("file:///tmp/deis-objects-test").unwrap();
    }
}
