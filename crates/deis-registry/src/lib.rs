//! The platform's container registry: the [OCI Distribution
//! specification] (v1.1) over HTTP, storing everything in the platform's
//! object store ([`deis_objects::Objects`]: local files by default, S3, GCS
//! or Azure by URL), so images share storage with slugs and sources.
//!
//! [OCI Distribution specification]: https://github.com/opencontainers/distribution-spec/blob/main/spec.md
//!
//! # Use
//!
//! ```no_run
//! # async fn example() -> std::io::Result<()> {
//! use std::sync::Arc;
//! use deis_registry::{Grant, Registry, StaticAuth};
//!
//! let objects = deis_objects::Objects::memory();
//! let auth = StaticAuth::new().with_user("builder", "secret", Grant::ReadWrite);
//! let registry = Registry::new(objects, Arc::new(auth));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! registry.serve(listener, std::future::pending()).await
//! # }
//! ```
//!
//! [`Registry`] is also a `tower::Service` (and [`Registry::handle`] answers
//! one `http::Request`), so it can be mounted inside another server. Access
//! is decided by a [`RegistryAuth`]; [`StaticAuth`] is a fixed user list.
//! With [`RegistryOptions::token`] set, the registry also runs the Docker
//! token flow itself (see `token.rs`): `GET /v2/token` trades Basic
//! credentials for a short-lived bearer token, granting the requested
//! actions the `RegistryAuth` allows. Beside HTTP:
//! [`Registry::collect_garbage`] (see `gc.rs`, which also removes abandoned
//! uploads) and the admin calls [`Registry::list_repositories`],
//! [`Registry::list_tags`], [`Registry::resolve_tag`] and
//! [`Registry::delete_tag`].
//!
//! # API
//!
//! `GET /v2/`; blobs `GET`/`HEAD` (with `Range`) and `DELETE`; uploads
//! `POST` (monolithic with `?digest=`, cross-repository `?mount=&from=`),
//! `PATCH` (with or without `Content-Range`), `GET` (status), `PUT`
//! (complete, optionally with a last chunk) and `DELETE` (cancel); manifests
//! `GET`/`HEAD`/`PUT`/`DELETE` by tag or digest for OCI image manifests and
//! indexes and Docker schema 2 manifests and manifest lists; `tags/list`
//! and `_catalog` with `n`/`last` pagination and `Link`; and the referrers
//! API with `artifactType` filtering; with the token flow on, `GET
//! /v2/token?service=..&scope=repository:<name>:pull,push&scope=..` (the
//! [token spec]'s endpoint, answering `token`, `access_token`, `expires_in`
//! and `issued_at`). Errors are the spec's JSON bodies with its codes
//! ([`RegistryError`] maps each to one code and status); a 401 challenges
//! with `Basic`, or with `Bearer realm="<scheme>://<host>/v2/token",
//! service="<realm>",scope="<what was refused>"` when
//! [`TokenOptions::challenge_bearer`] is set.
//!
//! [token spec]: https://distribution.github.io/distribution/spec/auth/token/
//!
//! # Storage layout
//!
//! Under the object store's root:
//!
//! ```text
//! registry/blobs/sha256/<hex[0..2]>/<hex>                          blob bytes (manifests too), immutable
//! registry/repositories/<name>/_layers/sha256/<hex>                 blob linked into the repository (empty)
//! registry/repositories/<name>/_manifests/revisions/sha256/<hex>    manifest in the repository: {"mediaType", "subject"}
//! registry/repositories/<name>/_manifests/tags/<tag>                "sha256:<hex>" the tag points at
//! registry/repositories/<name>/_referrers/sha256/<subject>/<hex>    descriptor of a manifest whose subject is <subject>
//! registry/uploads/<uuid>/info                                      {"repository"} of an upload in progress (removed when idle too long)
//! registry/uploads/<uuid>/parts/<offset, 20 digits>                 one received chunk
//! registry/uploads/<uuid>/data                                      several chunks joined while completing
//! ```
//!
//! A blob is readable only through repositories that link it (it was pushed
//! or mounted there), and manifests only through their revisions. `<name>`
//! may have several components; the `_` directories cannot clash with them
//! because no name component starts with `_`.
//!
//! # Guarantees
//!
//! - Content is addressed and verified: a blob or manifest whose content
//!   does not match its digest is refused with `DIGEST_INVALID`; only
//!   `sha256` is accepted.
//! - An upload is written to `registry/uploads/` and moved to its
//!   content-addressed key only after its digest is verified; concurrent
//!   uploads of the same content are safe (the first move wins; a stored
//!   blob never changes).
//! - Memory is bounded whatever the blob size: request bodies stream to
//!   storage chunk by chunk while being hashed, and blobs stream back from
//!   storage. Manifests are read whole but limited
//!   ([`RegistryOptions::max_manifest_bytes`]). See `uploads.rs` for how the
//!   hash state of resumable uploads is kept.
//! - The server bounds connections and header read time, and gives up on
//!   request bodies that stall.

mod admin;
mod api;
mod auth;
mod body;
mod error;
mod gc;
mod manifest;
mod names;
mod storage;
mod token;
mod uploads;

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use deis_core::accept::AcceptBackoff;
use http::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

pub use crate::auth::{
    Action, Credentials, Decision, Grant, MalformedCredentials, RegistryAuth, Scope, StaticAuth,
};
pub use crate::body::{BoxError, ResponseBody};
pub use crate::error::RegistryError;
pub use crate::gc::GcReport;
pub use crate::manifest::{DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST};
pub use crate::names::{Digest, DigestHasher, RepositoryName};
pub use crate::token::TokenOptions;

/// Limits and settings of a registry.
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// The realm of the `WWW-Authenticate: Basic` challenge.
    pub realm: String,
    /// The largest manifest accepted (the spec suggests 4 MiB).
    pub max_manifest_bytes: usize,
    /// The most entries one `tags/list` or `_catalog` page holds (and the
    /// catalog's page size when the client gives no `n`).
    pub max_page_size: usize,
    /// Connections served at once; more wait in the listen queue.
    pub max_connections: usize,
    /// How long a client may take to send a request's headers.
    pub header_read_timeout: Duration,
    /// How long a request body may send nothing before it is given up.
    pub body_idle_timeout: Duration,
    /// How long [`Registry::serve`] lets requests finish after shutdown.
    pub shutdown_grace: Duration,
    /// The Docker token flow (`GET /v2/token` and bearer tokens); `None`:
    /// Basic credentials only.
    pub token: Option<TokenOptions>,
    /// Uploads with no activity for this long are removed by
    /// [`Registry::collect_garbage`] (see
    /// [`Registry::remove_abandoned_uploads`]).
    pub abandoned_upload_age: Duration,
}

impl Default for RegistryOptions {
    fn default() -> RegistryOptions {
        RegistryOptions {
            realm: "deis-registry".into(),
            max_manifest_bytes: 4 * 1024 * 1024,
            max_page_size: 1000,
            max_connections: 1024,
            header_read_timeout: Duration::from_secs(30),
            body_idle_timeout: Duration::from_secs(60),
            shutdown_grace: Duration::from_secs(10),
            token: None,
            abandoned_upload_age: Duration::from_secs(24 * 3600),
        }
    }
}

/// The registry: cheap to clone, every clone serves the same store.
#[derive(Clone)]
pub struct Registry {
    inner: Arc<api::Inner>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("options", &self.inner.options)
            .finish_non_exhaustive()
    }
}

impl Registry {
    /// A registry on `objects` with default options.
    pub fn new(objects: deis_objects::Objects, auth: Arc<dyn RegistryAuth>) -> Registry {
        Registry::with_options(objects, auth, RegistryOptions::default())
    }

    /// A registry on `objects` with these options.
    pub fn with_options(
        objects: deis_objects::Objects,
        auth: Arc<dyn RegistryAuth>,
        options: RegistryOptions,
    ) -> Registry {
        let storage = storage::Storage::new(objects);
        let pause = Arc::new(tokio::sync::RwLock::new(()));
        let uploads = uploads::Uploads::new(storage.clone(), options.body_idle_timeout, Arc::clone(&pause));
        let tokens = options.token.clone().and_then(token::Tokens::new);
        Registry {
            inner: Arc::new(api::Inner {
                storage,
                uploads,
                pause,
                auth,
                tokens,
                options,
            }),
        }
    }

    /// Serves HTTP/1.1 on `listener` until `shutdown` completes, then lets
    /// requests in progress finish (up to [`RegistryOptions::shutdown_grace`]).
    pub async fn serve(
        &self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send,
    ) -> std::io::Result<()> {
        let options = &self.inner.options;
        let slots = Arc::new(Semaphore::new(
            options.max_connections.clamp(1, Semaphore::MAX_PERMITS),
        ));
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(options.header_read_timeout);
        tokio::pin!(shutdown);
        let mut backoff = AcceptBackoff::default();
        loop {
            let permit = tokio::select! {
                () = &mut shutdown => break,
                permit = Arc::clone(&slots).acquire_owned() => permit.map_err(std::io::Error::other)?,
            };
            let stream = tokio::select! {
                () = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => {
                        backoff.succeeded();
                        stream
                    }
                    Err(error) => {
                        let pause = backoff.failed();
                        tracing::warn!(%error, retry_in = ?pause, "cannot accept a registry connection");
                        tokio::time::sleep(pause).await;
                        continue;
                    }
                },
            };
            let registry = self.clone();
            let service = hyper::service::service_fn(move |request| {
                let registry = registry.clone();
                async move { Ok::<_, Infallible>(registry.handle(request).await) }
            });
            let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
            tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::debug!(error = %e, "registry connection ended");
                }
                drop(permit);
            });
        }
        drop(listener);
        if tokio::time::timeout(options.shutdown_grace, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::debug!("registry connections still open after the shutdown grace period");
        }
        Ok(())
    }
}

impl<B> tower::Service<Request<B>> for Registry
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = futures::future::BoxFuture<'static, Result<Response<ResponseBody>, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let registry = self.clone();
        Box::pin(async move { Ok(registry.handle(request).await) })
    }
}
