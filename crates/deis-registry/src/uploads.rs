//! Blob upload sessions.
//!
//! Every chunk (a `PATCH` body, or the body of the final `PUT` or of a
//! monolithic `POST`) is streamed into its own object,
//! `registry/uploads/<id>/parts/<offset>`, so storage is the source of truth
//! for how far an upload got: a chunk that breaks off is discarded whole and
//! the client resumes from the last complete one. Nothing under `uploads/`
//! is visible to pulls.
//!
//! The SHA-256 state of the bytes received so far is kept in memory per
//! session, so completing a one-chunk upload (what skopeo and Docker do)
//! verifies the digest without reading the data again, and a blob that is
//! already stored is not copied at all. When that state is missing (the
//! registry restarted, or the session was evicted from the bounded cache)
//! completion re-hashes the parts by streaming them. Several parts are
//! concatenated (streamed, hashed again) into `uploads/<id>/data`; the
//! verified object is then moved to its content-addressed key, which a
//! concurrent upload of the same content may already have filled: a blob
//! once stored never changes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use deis_objects::{ObjectWriter, Objects};
use serde::{Deserialize, Serialize};

use crate::body::{RequestBody, next_data};
use crate::error::RegistryError;
use crate::names::{Digest, DigestHasher, RepositoryName};
use crate::storage::{Storage, UPLOADS, blob_key, upload_key};

/// Sessions whose hash state is kept; beyond this, idle ones are dropped
/// (they still work, re-hashing at completion).
const MAX_CACHED_SESSIONS: usize = 1024;

/// An inclusive byte range from a `Content-Range` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ChunkRange {
    pub(crate) start: u64,
    pub(crate) end: u64,
}

impl ChunkRange {
    /// Parses `<start>-<end>` (the spec's form) or `bytes=<start>-<end>`.
    pub(crate) fn parse(value: &str) -> Result<ChunkRange, RegistryError> {
        let invalid = || RegistryError::BlobUploadInvalid(format!("invalid Content-Range {value:?}"));
        let value = value.trim();
        let value = value
            .strip_prefix("bytes=")
            .or_else(|| value.strip_prefix("bytes "))
            .unwrap_or(value);
        let (start, end) = value.split_once('-').ok_or_else(invalid)?;
        let end = end.split_once('/').map_or(end, |(end, _total)| end);
        let start: u64 = start.trim().parse().map_err(|_| invalid())?;
        let end: u64 = end.trim().parse().map_err(|_| invalid())?;
        if end < start {
            return Err(invalid());
        }
        Ok(ChunkRange { start, end })
    }

    fn len(self) -> u64 {
        self.end - self.start + 1
    }
}

#[derive(Serialize, Deserialize)]
struct UploadInfo {
    repository: String,
}

/// One upload; requests on it take turns.
#[derive(Debug)]
pub(crate) struct Session {
    pub(crate) id: String,
    repository: RepositoryName,
    state: tokio::sync::Mutex<State>,
}

struct State {
    /// Bytes received in complete chunks.
    size: u64,
    /// The hash of those bytes, when known.
    hasher: Option<DigestHasher>,
    /// Completed or cancelled: later requests find no upload.
    closed: bool,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("size", &self.size)
            .field("hash_known", &self.hasher.is_some())
            .field("closed", &self.closed)
            .finish()
    }
}

/// A chunk stored in the upload area.
struct Part {
    key: String,
}

/// Upload sessions of one registry.
#[derive(Debug)]
pub(crate) struct Uploads {
    storage: Storage,
    sessions: Mutex<HashMap<String, Arc<Session>>>,
    idle: Duration,
    /// Garbage collection's pause (see `gc.rs`).
    pause: Arc<tokio::sync::RwLock<()>>,
}

impl Uploads {
    pub(crate) fn new(storage: Storage, idle: Duration, pause: Arc<tokio::sync::RwLock<()>>) -> Uploads {
        Uploads {
            storage,
            sessions: Mutex::new(HashMap::new()),
            idle,
            pause,
        }
    }

    fn objects(&self) -> &Objects {
        self.storage.objects()
    }

    /// Starts an upload into a repository.
    pub(crate) async fn start(&self, name: &RepositoryName) -> Result<Arc<Session>, RegistryError> {
        let id = uuid::Uuid::new_v4().to_string();
        let info = UploadInfo {
            repository: name.to_string(),
        };
        let info = serde_json::to_vec(&info).unwrap_or_default();
        self.objects().put_bytes(&info_key(&id), info).await?;
        let session = Arc::new(Session {
            id: id.clone(),
            repository: name.clone(),
            state: tokio::sync::Mutex::new(State {
                size: 0,
                hasher: Some(DigestHasher::new()),
                closed: false,
            }),
        });
        Ok(self.remember(session))
    }

    /// An upload of this repository, from memory or from storage.
    pub(crate) async fn open(&self, name: &RepositoryName, id: &str) -> Result<Arc<Session>, RegistryError> {
        // Only our own (UUID) ids can name an upload; anything else never
        // reaches a storage key.
        let id = uuid::Uuid::parse_str(id)
            .map_err(|_| RegistryError::BlobUploadUnknown)?
            .to_string();
        let session = self.session(&id).await?.ok_or(RegistryError::BlobUploadUnknown)?;
        if session.repository != *name {
            return Err(RegistryError::BlobUploadUnknown);
        }
        Ok(session)
    }

    /// The session of an upload id, from memory or from storage; `None`
    /// when storage has no such upload.
    async fn session(&self, id: &str) -> Result<Option<Arc<Session>>, RegistryError> {
        let cached = self
            .sessions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
            .cloned();
        if let Some(session) = cached {
            return Ok(Some(session));
        }
        let Some(info) = self.objects().get_bytes(&info_key(id)).await? else {
            return Ok(None);
        };
        let info: UploadInfo =
            serde_json::from_slice(&info).map_err(|e| RegistryError::Corrupt(format!("upload {id}: {e}")))?;
        let repository = RepositoryName::parse(&info.repository)?;
        let size = self.parts(id).await?.1;
        let session = Arc::new(Session {
            id: id.to_owned(),
            repository,
            state: tokio::sync::Mutex::new(State {
                size,
                hasher: (size == 0).then(DigestHasher::new),
                closed: false,
            }),
        });
        Ok(Some(self.remember(session)))
    }

    /// Removes the uploads whose last activity (start or last complete
    /// chunk) is older than `cutoff`; returns how many. An upload a request
    /// of this registry is working on (a chunk streaming in, a completion)
    /// holds its session and is skipped; a chunk streaming into another
    /// registry process sharing the store is invisible until complete, which
    /// is why the cutoff should be far longer than any chunk takes.
    pub(crate) async fn remove_abandoned(&self, cutoff: SystemTime) -> Result<usize, RegistryError> {
        let mut removed = 0;
        for id in self.objects().list_dir(UPLOADS).await?.directories {
            // Only ids this registry made; anything else is left alone.
            if uuid::Uuid::parse_str(&id).map(|uuid| uuid.to_string()).ok() != Some(id.clone()) {
                tracing::debug!(%id, "not an upload id; left in place");
                continue;
            }
            if !self.idle_since(&id, cutoff).await? {
                continue;
            }
            let session = match self.session(&id).await {
                Ok(session) => session,
                // Unreadable records cannot be resumed either.
                Err(RegistryError::Corrupt(_) | RegistryError::NameInvalid(_)) => None,
                Err(e) => return Err(e),
            };
            // Requests on an upload take turns through its session: holding
            // it, no request can add a chunk while it is removed.
            let mut guard = None;
            if let Some(session) = &session {
                let Ok(state) = session.state.try_lock() else {
                    continue; // a request is working on it
                };
                if state.closed {
                    continue; // completed or cancelled meanwhile
                }
                guard = Some(state);
            }
            // A chunk may have completed just before the session was taken.
            if !self.idle_since(&id, cutoff).await? {
                continue;
            }
            if let Some(state) = guard.as_mut() {
                state.closed = true;
            }
            self.forget(&id);
            self.objects().delete_prefix(&upload_key(&id)).await?;
            tracing::info!(%id, "removed an abandoned upload");
            removed += 1;
        }
        Ok(removed)
    }

    /// Whether nothing was written to the upload since `cutoff` (and it
    /// holds anything at all).
    async fn idle_since(&self, id: &str, cutoff: SystemTime) -> Result<bool, RegistryError> {
        let upload = upload_key(id);
        let top = self.objects().list_dir(&upload).await?;
        let parts = self.objects().list_dir(&parts_key(id)).await?;
        let last = top
            .objects
            .iter()
            .chain(&parts.objects)
            .map(|object| object.modified)
            .max();
        Ok(last.is_some_and(|last| last < cutoff))
    }

    /// Caches a session; if a concurrent request cached the same upload
    /// first, that one is used, so requests on an upload always take turns.
    fn remember(&self, session: Arc<Session>) -> Arc<Session> {
        let mut sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(cached) = sessions.get(&session.id) {
            return Arc::clone(cached);
        }
        if sessions.len() >= MAX_CACHED_SESSIONS {
            // Sessions no request is using can be reloaded from storage.
            sessions.retain(|_, cached| Arc::strong_count(cached) > 1);
        }
        if sessions.len() < MAX_CACHED_SESSIONS {
            sessions.insert(session.id.clone(), Arc::clone(&session));
        }
        session
    }

    fn forget(&self, id: &str) {
        self.sessions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(id);
    }

    /// Bytes received so far. While a chunk is being written the session is
    /// busy, and storage says how far it got.
    pub(crate) async fn size(&self, session: &Session) -> Result<u64, RegistryError> {
        let known = match session.state.try_lock() {
            Ok(state) if state.closed => return Err(RegistryError::BlobUploadUnknown),
            Ok(state) => Some(state.size),
            Err(_) => None,
        };
        match known {
            Some(size) => Ok(size),
            None => Ok(self.parts(&session.id).await?.1),
        }
    }

    /// Appends a chunk; returns the new size.
    pub(crate) async fn append(
        &self,
        session: &Session,
        body: &mut RequestBody,
        range: Option<ChunkRange>,
    ) -> Result<u64, RegistryError> {
        let mut state = session.state.lock().await;
        if state.closed {
            return Err(RegistryError::BlobUploadUnknown);
        }
        self.write_chunk(&session.id, &mut state, body, range).await?;
        Ok(state.size)
    }

    /// Appends the final chunk (if any), verifies the digest, stores the
    /// blob and links it into the repository. On a digest mismatch the
    /// upload is discarded and nothing becomes visible.
    pub(crate) async fn complete(
        &self,
        session: &Session,
        body: &mut RequestBody,
        range: Option<ChunkRange>,
        expected: &Digest,
    ) -> Result<(), RegistryError> {
        let mut state = session.state.lock().await;
        if state.closed {
            return Err(RegistryError::BlobUploadUnknown);
        }
        self.write_chunk(&session.id, &mut state, body, range).await?;
        // From here until the link is written, garbage collection waits.
        let _pause = self.pause.read().await;
        let stored = self.store_blob(&session.id, &state, expected).await;
        // Whatever the outcome, this upload is over.
        state.closed = true;
        self.forget(&session.id);
        self.objects().delete_prefix(&upload_key(&session.id)).await?;
        stored?;
        self.storage.link_blob(&session.repository, expected).await
    }

    /// Discards an upload.
    pub(crate) async fn cancel(&self, session: &Session) -> Result<(), RegistryError> {
        let mut state = session.state.lock().await;
        if state.closed {
            return Err(RegistryError::BlobUploadUnknown);
        }
        state.closed = true;
        self.forget(&session.id);
        self.objects().delete_prefix(&upload_key(&session.id)).await?;
        Ok(())
    }

    /// Streams a request body into a new part. An empty body adds nothing;
    /// a body that breaks off, or does not fill its `Content-Range`, is
    /// discarded whole.
    async fn write_chunk(
        &self,
        id: &str,
        state: &mut State,
        body: &mut RequestBody,
        range: Option<ChunkRange>,
    ) -> Result<(), RegistryError> {
        if let Some(range) = range
            && range.start != state.size
        {
            return Err(RegistryError::UploadOutOfOrder { size: state.size });
        }
        let Some(first) = next_data(body, self.idle).await? else {
            return Ok(());
        };
        let mut writer = self.objects().writer(&part_key(id, state.size)).await?;
        let mut hasher = state.hasher.clone();
        let mut next = Some(first);
        while let Some(data) = next {
            if let Some(hasher) = hasher.as_mut() {
                hasher.update(&data);
            }
            if let Err(e) = writer.write(data).await {
                return Err(abort(writer, e.into()).await);
            }
            next = match next_data(body, self.idle).await {
                Ok(next) => next,
                Err(e) => return Err(abort(writer, e).await),
            };
        }
        if let Some(range) = range
            && range.len() != writer.written()
        {
            let message = format!(
                "Content-Range says {} bytes, the body had {}",
                range.len(),
                writer.written()
            );
            return Err(abort(writer, RegistryError::SizeInvalid(message)).await);
        }
        state.size += writer.finish().await?;
        state.hasher = hasher;
        Ok(())
    }

    /// Verifies the upload's content and moves it to its content-addressed
    /// key (unless that blob is already stored).
    async fn store_blob(&self, id: &str, state: &State, expected: &Digest) -> Result<(), RegistryError> {
        let known = state.hasher.clone().map(DigestHasher::finish);
        if let Some(actual) = &known {
            check_digest(actual, expected)?;
            if self.storage.blob_stored(expected).await? {
                return Ok(());
            }
        }
        let (parts, _) = self.parts(id).await?;
        let data_key = format!("{}/data", upload_key(id));
        // `computed` is `None` only when `known` (checked above) covers it.
        let (source, computed) = match parts.as_slice() {
            [] => {
                self.objects().put_bytes(&data_key, Vec::new()).await?;
                (data_key, Some(Digest::of(b"")))
            }
            [single] if known.is_some() => (single.key.clone(), None),
            [single] => (single.key.clone(), Some(self.hash_parts(&parts, None).await?)),
            _ => {
                // Hashed again as it is written, so what is stored is what
                // was verified.
                let writer = self.objects().writer(&data_key).await?;
                (data_key, Some(self.hash_parts(&parts, Some(writer)).await?))
            }
        };
        if let Some(computed) = &computed {
            check_digest(computed, expected)?;
        }
        // `false`: the same content was stored meanwhile, and stays as is.
        self.objects()
            .rename_if_absent(&source, &blob_key(expected))
            .await?;
        Ok(())
    }

    /// Streams the parts in order, hashing them and, with a writer, copying
    /// them into one object.
    async fn hash_parts(
        &self,
        parts: &[Part],
        mut writer: Option<ObjectWriter>,
    ) -> Result<Digest, RegistryError> {
        use futures::TryStreamExt;
        let mut hasher = DigestHasher::new();
        for part in parts {
            let reader = self
                .objects()
                .read(&part.key, None)
                .await?
                .ok_or_else(|| RegistryError::Corrupt(format!("upload part {} vanished", part.key)))?;
            let mut stream = reader.stream;
            while let Some(chunk) = stream.try_next().await? {
                hasher.update(&chunk);
                if let Some(writer) = writer.as_mut() {
                    writer.write(chunk).await?;
                }
            }
        }
        if let Some(writer) = writer {
            writer.finish().await?;
        }
        Ok(hasher.finish())
    }

    /// The upload's parts in order and their total size. Parts are named by
    /// their offset, so only a contiguous run from 0 counts.
    async fn parts(&self, id: &str) -> Result<(Vec<Part>, u64), RegistryError> {
        let prefix = parts_key(id);
        let listing = self.objects().list_dir(&prefix).await?;
        let mut parts = Vec::new();
        let mut size = 0u64;
        for object in listing.objects {
            if object.name.parse::<u64>().ok() != Some(size) {
                break;
            }
            parts.push(Part {
                key: format!("{prefix}/{}", object.name),
            });
            size += object.size;
        }
        Ok((parts, size))
    }
}

fn check_digest(actual: &Digest, expected: &Digest) -> Result<(), RegistryError> {
    if actual == expected {
        Ok(())
    } else {
        Err(RegistryError::DigestInvalid(format!(
            "content has digest {actual}, not {expected}"
        )))
    }
}

/// Discards a part being written and returns the error that stopped it.
async fn abort(writer: ObjectWriter, error: RegistryError) -> RegistryError {
    if let Err(e) = writer.abort().await {
        tracing::debug!(error = %e, "discarding a broken upload chunk");
    }
    error
}

fn info_key(id: &str) -> String {
    format!("{}/info", upload_key(id))
}

fn parts_key(id: &str) -> String {
    format!("{}/parts", upload_key(id))
}

/// Zero-padded so that the listing's name order is the offset order.
fn part_key(id: &str, offset: u64) -> String {
    format!("{}/{offset:020}", parts_key(id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_ranges_parse() {
        assert_eq!(ChunkRange::parse("0-9").unwrap(), ChunkRange { start: 0, end: 9 });
        assert_eq!(ChunkRange::parse("bytes=10-19").unwrap().len(), 10);
        assert_eq!(
            ChunkRange::parse("bytes 5-5/100").unwrap(),
            ChunkRange { start: 5, end: 5 }
        );
        for bad in ["", "5", "9-0", "a-b", "-1-2", "1-"] {
            assert!(ChunkRange::parse(bad).is_err(), "{bad}");
        }
    }
}
