//! Object storage for source tarballs, slugs and build caches (later images
//! and log archives), on the `object_store` crate: local files by default,
//! S3, GCS or Azure by URL.
//!
//! Architecture invariant: every component that stores blobs goes through
//! [`Objects`]; none talks to a storage backend directly.
//!
//! Keys follow Deis's layout: `home/<app>:git-<sha8>/tar`,
//! `home/<app>:git-<sha8>/push/slug.tgz` (with `Procfile` beside it) and
//! `home/<app>/cache/cache.tgz`. The registry keeps its own tree under
//! `registry/` (see `deis-registry`).
//!
//! Besides whole files and small values, [`Objects`] streams: [`ObjectWriter`]
//! uploads in chunks as data arrives, [`Objects::read`] returns a byte stream
//! (optionally of a range), and [`Objects::list_dir`], [`Objects::size`],
//! [`Objects::rename_if_absent`] and [`Objects::put_bytes_if_absent`] give
//! what a content-addressed store needs.

use std::ops::Range;
use std::path::Path as FsPath;
use std::sync::Arc;

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{
    GetOptions, GetRange, GetResultPayload, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload,
    WriteMultipart,
};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

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

/// Chunks of a streaming upload in flight at once (so at most about
/// `(PARTS_IN_FLIGHT + 1) * CHUNK` bytes are buffered per upload).
const PARTS_IN_FLIGHT: usize = 4;

/// Read size when streaming a local file: large enough that a big object is
/// not thousands of blocking reads, small enough to keep memory low.
const READ_CHUNK: usize = 256 * 1024;

/// An object streamed into storage chunk by chunk; nothing is visible under
/// its key until [`ObjectWriter::finish`]. Dropping it (or
/// [`ObjectWriter::abort`]) discards what was written.
pub struct ObjectWriter {
    objects: Objects,
    key: String,
    writer: WriteMultipart,
    written: u64,
}

impl std::fmt::Debug for ObjectWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectWriter")
            .field("key", &self.key)
            .field("written", &self.written)
            .finish_non_exhaustive()
    }
}

impl ObjectWriter {
    /// Appends bytes, waiting while too many chunks are still uploading.
    pub async fn write(&mut self, bytes: Bytes) -> Result<(), ObjectsError> {
        self.writer.wait_for_capacity(PARTS_IN_FLIGHT).await?;
        self.written += bytes.len() as u64;
        self.writer.put(bytes);
        Ok(())
    }

    /// How many bytes were written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Completes the object and returns its size.
    pub async fn finish(self) -> Result<u64, ObjectsError> {
        if self.written == 0 {
            // Some stores refuse a multipart upload of no parts.
            self.writer.abort().await?;
            self.objects.put_bytes(&self.key, Vec::new()).await?;
            return Ok(0);
        }
        self.writer.finish().await?;
        Ok(self.written)
    }

    /// Discards the object.
    pub async fn abort(self) -> Result<(), ObjectsError> {
        self.writer.abort().await?;
        Ok(())
    }
}

/// An object being read: its whole size, the range being streamed, and the
/// bytes of that range.
pub struct ObjectReader {
    /// The size of the whole object.
    pub size: u64,
    /// The byte range `stream` yields.
    pub range: Range<u64>,
    /// The bytes, in chunks.
    pub stream: BoxStream<'static, Result<Bytes, ObjectsError>>,
}

impl std::fmt::Debug for ObjectReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectReader")
            .field("size", &self.size)
            .field("range", &self.range)
            .finish_non_exhaustive()
    }
}

/// One level of a listing: the names (last key component) of the
/// "directories" and objects directly under a prefix.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Listing {
    /// Names of the prefixes one level down.
    pub directories: Vec<String>,
    /// The objects directly under the prefix.
    pub objects: Vec<ListedObject>,
}

/// An object in a [`Listing`].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ListedObject {
    /// The last component of its key.
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
    /// When it was last written.
    pub modified: std::time::SystemTime,
}

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
        let mut writer = self.writer(key).await?;
        loop {
            let mut buffer = Vec::with_capacity(READ_CHUNK);
            let n = (&mut source)
                .take(READ_CHUNK as u64)
                .read_to_end(&mut buffer)
                .await?;
            if n == 0 {
                break;
            }
            writer.write(Bytes::from(buffer)).await?;
        }
        writer.finish().await
    }

    /// Starts a streaming upload to `key`.
    pub async fn writer(&self, key: &str) -> Result<ObjectWriter, ObjectsError> {
        let upload = self.store.put_multipart(&self.key(key)).await?;
        Ok(ObjectWriter {
            objects: self.clone(),
            key: key.to_owned(),
            writer: WriteMultipart::new_with_chunk_size(upload, CHUNK),
            written: 0,
        })
    }

    /// Stores a small value unless the key exists; `false` when it did
    /// (content-addressed objects never change once written).
    /// Without conditional puts, as [`Objects::rename_if_absent`].
    pub async fn put_bytes_if_absent(&self, key: &str, bytes: Vec<u8>) -> Result<bool, ObjectsError> {
        let options = PutOptions::from(PutMode::Create);
        let payload = PutPayload::from(bytes);
        match self
            .store
            .put_opts(&self.key(key), payload.clone(), options)
            .await
        {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
            Err(object_store::Error::NotSupported { .. } | object_store::Error::NotImplemented { .. }) => {
                if self.exists(key).await? {
                    return Ok(false);
                }
                self.store.put(&self.key(key), payload).await?;
                Ok(true)
            }
            Err(err) => Err(err.into()),
        }
    }

    /// Streams an object, or the byte `range` of it (which must lie within
    /// the object; check with [`Objects::size`] first). `None` when it does
    /// not exist.
    pub async fn read(
        &self,
        key: &str,
        range: Option<Range<u64>>,
    ) -> Result<Option<ObjectReader>, ObjectsError> {
        let options = GetOptions::new().with_range(range.map(GetRange::Bounded));
        let result = match self.store.get_opts(&self.key(key), options).await {
            Ok(result) => result,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(err) => return Err(err.into()),
        };
        let size = result.meta.size;
        let range = result.range.clone();
        let stream = match result.payload {
            // object_store reads local files 8 KiB per blocking call; larger
            // reads make big blobs several times faster to serve.
            GetResultPayload::File(file, _) => local_file_stream(file, range.clone()),
            GetResultPayload::Stream(stream) => stream.map_err(ObjectsError::from).boxed(),
        };
        Ok(Some(ObjectReader { size, range, stream }))
    }

    /// The size of an object; `None` when it does not exist.
    pub async fn size(&self, key: &str) -> Result<Option<u64>, ObjectsError> {
        match self.store.head(&self.key(key)).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(err) => Err(err.into()),
        }
    }

    /// Moves an object unless the target exists; `false` (and `from` left
    /// in place) when it did. On local files this is a hard link, so a
    /// large object is never copied.
    ///
    /// On a store without conditional copies (S3 unless configured), the
    /// check and the move are two steps: meant for content-addressed keys,
    /// where a concurrent writer of the same key writes the same bytes.
    pub async fn rename_if_absent(&self, from: &str, to: &str) -> Result<bool, ObjectsError> {
        let (source, target) = (self.key(from), self.key(to));
        let conditional = self.store.rename_if_not_exists(&source, &target).await;
        self.unless_present(to, conditional, self.store.rename(&source, &target))
            .await
    }

    /// Copies an object unless the target exists; `false` when it did.
    /// Without conditional copies, as [`Objects::rename_if_absent`].
    pub async fn copy_if_absent(&self, from: &str, to: &str) -> Result<bool, ObjectsError> {
        let (source, target) = (self.key(from), self.key(to));
        let conditional = self.store.copy_if_not_exists(&source, &target).await;
        self.unless_present(to, conditional, self.store.copy(&source, &target))
            .await
    }

    /// The outcome of a conditional write to `to`; where the store has no
    /// conditional writes, `to` is checked and `unconditional` runs (lazily:
    /// only then).
    async fn unless_present(
        &self,
        to: &str,
        conditional: Result<(), object_store::Error>,
        unconditional: impl std::future::Future<Output = Result<(), object_store::Error>>,
    ) -> Result<bool, ObjectsError> {
        match conditional {
            Ok(()) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
            Err(object_store::Error::NotSupported { .. } | object_store::Error::NotImplemented { .. }) => {
                if self.exists(to).await? {
                    return Ok(false);
                }
                unconditional.await?;
                Ok(true)
            }
            Err(err) => Err(err.into()),
        }
    }

    /// The directories and objects directly under a prefix, each sorted by
    /// name; empty when nothing is there.
    pub async fn list_dir(&self, prefix: &str) -> Result<Listing, ObjectsError> {
        let listed = self.store.list_with_delimiter(Some(&self.key(prefix))).await?;
        let name = |path: &Path| path.filename().map(str::to_owned);
        let mut directories: Vec<String> = listed.common_prefixes.iter().filter_map(name).collect();
        let mut objects: Vec<ListedObject> = listed
            .objects
            .iter()
            .filter_map(|meta| {
                Some(ListedObject {
                    name: name(&meta.location)?,
                    size: meta.size,
                    modified: meta.last_modified.into(),
                })
            })
            .collect();
        directories.sort();
        objects.sort();
        Ok(Listing { directories, objects })
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

/// Streams `range` of a local file in [`READ_CHUNK`] reads.
fn local_file_stream(
    file: std::fs::File,
    range: Range<u64>,
) -> BoxStream<'static, Result<Bytes, ObjectsError>> {
    futures::stream::once(async move {
        let mut file = tokio::fs::File::from_std(file);
        file.seek(std::io::SeekFrom::Start(range.start)).await?;
        let remaining = range.end.saturating_sub(range.start);
        let chunks = futures::stream::try_unfold(file.take(remaining), |mut reader| async move {
            let mut buffer = Vec::with_capacity(READ_CHUNK);
            let n = (&mut reader)
                .take(READ_CHUNK as u64)
                .read_to_end(&mut buffer)
                .await?;
            Ok::<_, ObjectsError>((n > 0).then(|| (Bytes::from(buffer), reader)))
        });
        Ok::<_, ObjectsError>(chunks)
    })
    .try_flatten()
    .boxed()
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

    #[tokio::test]
    async fn deleting_an_app_leaves_other_apps_alone() {
        let dir = tempfile::tempdir().unwrap();
        let objects = Objects::local(&dir.path().join("objects")).unwrap();
        let (a, b) = ("0123456789abcdef", "fedcba9876543210");
        let mine = [
            source_key("web", a),
            slug_key("web", a),
            procfile_key("web", a),
            slug_key("web", b),
            cache_key("web"),
        ];
        // Names that share a prefix with "web" and must survive.
        let theirs = [
            slug_key("web-2", a),
            cache_key("web-2"),
            slug_key("webapp", b),
            cache_key("webx"),
        ];
        for key in mine.iter().chain(&theirs) {
            objects.put_bytes(key, b"x".to_vec()).await.unwrap();
        }
        assert_eq!(objects.delete_app("web").await.unwrap(), 2);
        for key in &mine {
            assert!(!objects.exists(key).await.unwrap(), "{key} is left");
        }
        for key in &theirs {
            assert!(objects.exists(key).await.unwrap(), "{key} was deleted");
        }
        // Nothing left on disk either (empty directories are cleaned up).
        assert!(!dir.path().join("objects/home/web").exists());
        assert_eq!(objects.delete_app("web").await.unwrap(), 0);
        assert_eq!(objects.delete_app("absent").await.unwrap(), 0);
    }

    #[tokio::test]
    async fn streams_ranges_listings_and_renames_work_on_both_stores() {
        let dir = tempfile::tempdir().unwrap();
        for store in [
            Objects::local(&dir.path().join("objects")).unwrap(),
            Objects::memory(),
        ] {
            let objects = &store;
            let data: Vec<u8> = (0..(CHUNK + READ_CHUNK * 3 + 7))
                .map(|i| (i % 253) as u8)
                .collect();
            let mut writer = objects.writer("up/a/data").await.unwrap();
            for piece in data.chunks(100_000) {
                writer.write(Bytes::copy_from_slice(piece)).await.unwrap();
            }
            assert!(
                !objects.exists("up/a/data").await.unwrap(),
                "visible before finish"
            );
            assert_eq!(writer.finish().await.unwrap(), data.len() as u64);
            assert_eq!(objects.size("up/a/data").await.unwrap(), Some(data.len() as u64));

            let read = |range| async move {
                let reader = objects.read("up/a/data", range).await.unwrap().unwrap();
                let size = reader.size;
                let chunks: Vec<Bytes> = reader.stream.try_collect().await.unwrap();
                (size, chunks.concat())
            };
            assert_eq!(read(None).await, (data.len() as u64, data.clone()));
            let (_, middle) = read(Some(10..READ_CHUNK as u64 + 20)).await;
            assert_eq!(middle, data.get(10..READ_CHUNK + 20).unwrap());
            assert!(objects.read("up/none", None).await.unwrap().is_none());

            let empty = objects.writer("up/empty").await.unwrap();
            assert_eq!(empty.finish().await.unwrap(), 0);
            assert_eq!(objects.size("up/empty").await.unwrap(), Some(0));
            let aborted = objects.writer("up/aborted").await.unwrap();
            aborted.abort().await.unwrap();
            assert_eq!(objects.size("up/aborted").await.unwrap(), None);

            assert!(
                objects
                    .put_bytes_if_absent("x/b/one", b"1".to_vec())
                    .await
                    .unwrap()
            );
            assert!(
                !objects
                    .put_bytes_if_absent("x/b/one", b"2".to_vec())
                    .await
                    .unwrap()
            );
            assert_eq!(objects.get_bytes("x/b/one").await.unwrap().unwrap(), b"1");
            assert!(objects.copy_if_absent("x/b/one", "x/c/two").await.unwrap());
            assert!(!objects.copy_if_absent("x/b/one", "x/c/two").await.unwrap());
            assert!(objects.rename_if_absent("up/a/data", "x/data").await.unwrap());
            assert!(!objects.exists("up/a/data").await.unwrap());
            assert!(!objects.rename_if_absent("x/b/one", "x/c/two").await.unwrap());
            assert!(objects.exists("x/b/one").await.unwrap());

            let listing = objects.list_dir("x").await.unwrap();
            assert_eq!(listing.directories, ["b", "c"]);
            let listed: Vec<(&str, u64)> = listing
                .objects
                .iter()
                .map(|object| (object.name.as_str(), object.size))
                .collect();
            assert_eq!(listed, [("data", data.len() as u64)]);
            assert!(
                listing
                    .objects
                    .iter()
                    .all(|object| object.modified <= std::time::SystemTime::now())
            );
            assert_eq!(
                objects.list_dir("nothing/here").await.unwrap(),
                Listing::default()
            );
        }
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
