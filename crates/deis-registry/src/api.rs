//! The HTTP API: routing, authorization and one handler per endpoint of the
//! OCI Distribution specification.

use std::ops::Range;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use http::header::{
    ACCEPT_RANGES, AUTHORIZATION, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, HOST,
    HeaderName, LINK, LOCATION, RANGE, WWW_AUTHENTICATE,
};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, request};
use http_body_util::BodyExt;
use serde_json::json;

use crate::auth::{Action, Credentials, Decision, MalformedCredentials, RegistryAuth, Scope};
use crate::body::{self, BoxError, RequestBody, ResponseBody};
use crate::error::RegistryError;
use crate::manifest::{self, Descriptor, OCI_INDEX};
use crate::names::{Digest, Reference, RepositoryName};
use crate::storage::{Revision, Storage};
use crate::token::{self, Tokens};
use crate::uploads::{ChunkRange, Uploads};
use crate::{Registry, RegistryOptions};

const API_VERSION: HeaderName = HeaderName::from_static("docker-distribution-api-version");
const CONTENT_DIGEST: HeaderName = HeaderName::from_static("docker-content-digest");
const UPLOAD_UUID: HeaderName = HeaderName::from_static("docker-upload-uuid");
const OCI_SUBJECT: HeaderName = HeaderName::from_static("oci-subject");
const OCI_FILTERS_APPLIED: HeaderName = HeaderName::from_static("oci-filters-applied");
const FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// The request's credentials: none, parsed, or an unreadable header (which
/// is refused like wrong credentials).
type Caller = Result<Option<Credentials>, MalformedCredentials>;

/// Manifest existence checks run this many at a time.
const PARALLEL_CHECKS: usize = 16;

/// The registry's shared state.
pub(crate) struct Inner {
    pub(crate) storage: Storage,
    pub(crate) uploads: Uploads,
    /// Read-held while a push makes content reachable (manifest stored,
    /// upload committed, blob mounted); garbage collection write-holds it to
    /// sweep.
    pub(crate) pause: Arc<tokio::sync::RwLock<()>>,
    pub(crate) auth: Arc<dyn RegistryAuth>,
    /// The token flow, when configured (with a usable key).
    pub(crate) tokens: Option<Tokens>,
    pub(crate) options: RegistryOptions,
}

/// An API path, with its still unparsed parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route<'a> {
    Base,
    Catalog,
    Token,
    Tags(&'a str),
    Manifest(&'a str, &'a str),
    Blob(&'a str, &'a str),
    UploadStart(&'a str),
    Upload(&'a str, &'a str),
    Referrers(&'a str, &'a str),
}

impl<'a> Route<'a> {
    /// Names may have several components, so paths are matched from the end.
    fn parse(path: &'a str) -> Option<Route<'a>> {
        let rest = path.strip_prefix("/v2")?;
        if rest.is_empty() || rest == "/" {
            return Some(Route::Base);
        }
        let rest = rest.strip_prefix('/')?;
        if rest == "_catalog" {
            return Some(Route::Catalog);
        }
        // No repository endpoint is a single component, so no name clashes.
        if rest == "token" {
            return Some(Route::Token);
        }
        if let Some(name) = rest.strip_suffix("/tags/list") {
            return Some(Route::Tags(name));
        }
        if let Some(name) = rest
            .strip_suffix("/blobs/uploads/")
            .or_else(|| rest.strip_suffix("/blobs/uploads"))
        {
            return Some(Route::UploadStart(name));
        }
        let (prefix, last) = rest.rsplit_once('/')?;
        let (name, kind) = prefix.rsplit_once('/')?;
        match kind {
            "manifests" => Some(Route::Manifest(name, last)),
            "blobs" => Some(Route::Blob(name, last)),
            "referrers" => Some(Route::Referrers(name, last)),
            "uploads" => Some(Route::Upload(name.strip_suffix("/blobs")?, last)),
            _ => None,
        }
    }
}

/// What a request must be allowed: the one table from endpoints to scopes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Needs<'a> {
    Registry,
    Catalog,
    /// An action on a repository, by its still unvalidated name.
    Repository(&'a str, Action),
    /// The token endpoint authenticates the caller itself.
    Token,
}

impl<'a> Needs<'a> {
    /// `None` when the method is not allowed on the route.
    fn of(route: Route<'a>, method: &Method) -> Option<Needs<'a>> {
        let read = *method == Method::GET || *method == Method::HEAD;
        let repository = |name, action| Some(Needs::Repository(name, action));
        match route {
            Route::Base if read => Some(Needs::Registry),
            Route::Catalog if *method == Method::GET => Some(Needs::Catalog),
            Route::Token if *method == Method::GET => Some(Needs::Token),
            Route::Tags(name) | Route::Referrers(name, _) if *method == Method::GET => {
                repository(name, Action::Pull)
            }
            Route::Manifest(name, _) | Route::Blob(name, _) if read => repository(name, Action::Pull),
            Route::Manifest(name, _) if *method == Method::PUT => repository(name, Action::Push),
            Route::Manifest(name, _) | Route::Blob(name, _) if *method == Method::DELETE => {
                repository(name, Action::Delete)
            }
            Route::UploadStart(name) if *method == Method::POST => repository(name, Action::Push),
            Route::Upload(name, _)
                if [Method::GET, Method::PATCH, Method::PUT, Method::DELETE].contains(method) =>
            {
                repository(name, Action::Push)
            }
            _ => None,
        }
    }
}

/// The decoded query string.
struct Query(Vec<(String, String)>);

impl Query {
    fn parse(query: Option<&str>) -> Query {
        let pairs = query
            .unwrap_or_default()
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                (percent_decode(key), percent_decode(value))
            })
            .collect();
        Query(pairs)
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    fn get_all<'q>(&'q self, key: &'q str) -> impl Iterator<Item = &'q str> {
        self.0
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Decodes `%XX` (clients encode a digest's `:` as `%3A`). A `+` stays a
/// `+`: media types such as `application/vnd.x+json` carry one.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&byte) = bytes.get(i) {
        let escaped = (byte == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .filter(|hex| hex.iter().all(u8::is_ascii_hexdigit))
            .and_then(|hex| u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok());
        match escaped {
            Some(value) => {
                decoded.push(value);
                i += 3;
            }
            None => {
                decoded.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

/// A response being built. Header values come from validated names,
/// digests and numbers; one that still cannot be a header is dropped.
struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: ResponseBody,
}

impl Reply {
    fn new(status: StatusCode) -> Reply {
        Reply {
            status,
            headers: HeaderMap::new(),
            body: body::empty(),
        }
    }

    fn header(mut self, name: HeaderName, value: impl Into<String>) -> Reply {
        match HeaderValue::try_from(value.into()) {
            Ok(value) => {
                self.headers.insert(name, value);
            }
            Err(e) => tracing::warn!(%name, error = %e, "dropping an unrepresentable header"),
        }
        self
    }

    fn json(mut self, value: &serde_json::Value, content_type: &str) -> Reply {
        let bytes = serde_json::to_vec(value).unwrap_or_default();
        self = self
            .header(CONTENT_TYPE, content_type)
            .header(CONTENT_LENGTH, bytes.len().to_string());
        self.body = body::full(bytes);
        self
    }

    fn body(mut self, body: ResponseBody) -> Reply {
        self.body = body;
        self
    }

    fn into_response(self) -> Response<ResponseBody> {
        let mut response = Response::new(self.body);
        *response.status_mut() = self.status;
        *response.headers_mut() = self.headers;
        response
            .headers_mut()
            .insert(API_VERSION, HeaderValue::from_static("registry/2.0"));
        response
    }
}

/// `Range: 0-<last byte>` as Distribution writes it (`0-0` when empty).
fn upload_range(size: u64) -> String {
    format!("0-{}", size.saturating_sub(1))
}

fn blob_location(name: &RepositoryName, digest: &Digest) -> String {
    format!("/v2/{name}/blobs/{digest}")
}

fn upload_location(name: &RepositoryName, id: &str) -> String {
    format!("/v2/{name}/blobs/uploads/{id}")
}

/// The upload headers of `202`/`204` answers.
fn upload_reply(status: StatusCode, name: &RepositoryName, id: &str, size: u64) -> Reply {
    Reply::new(status)
        .header(LOCATION, upload_location(name, id))
        .header(RANGE, upload_range(size))
        .header(UPLOAD_UUID, id)
}

fn blob_created(name: &RepositoryName, digest: &Digest) -> Reply {
    Reply::new(StatusCode::CREATED)
        .header(LOCATION, blob_location(name, digest))
        .header(CONTENT_DIGEST, digest.to_string())
}

/// The byte range a `Range` header asks of a blob of `size` bytes: `None`
/// for the whole blob (no header, or one this registry ignores, as HTTP
/// allows: several ranges, other units).
fn requested_range(header: Option<&HeaderValue>, size: u64) -> Result<Option<Range<u64>>, RegistryError> {
    let Some(spec) = header
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().strip_prefix("bytes="))
        .filter(|spec| !spec.contains(','))
    else {
        return Ok(None);
    };
    let Some((first, last)) = spec.split_once('-') else {
        return Ok(None);
    };
    let unsatisfiable = RegistryError::RangeNotSatisfiable { size };
    let (first, last) = (first.trim(), last.trim());
    let range = if first.is_empty() {
        // A suffix: the last N bytes.
        let Ok(suffix) = last.parse::<u64>() else {
            return Ok(None);
        };
        if suffix == 0 || size == 0 {
            return Err(unsatisfiable);
        }
        size.saturating_sub(suffix)..size
    } else {
        let Ok(start) = first.parse::<u64>() else {
            return Ok(None);
        };
        let end = if last.is_empty() {
            size
        } else {
            match last.parse::<u64>() {
                Ok(last) if last >= start => last.saturating_add(1).min(size),
                _ => return Ok(None),
            }
        };
        if start >= size {
            return Err(unsatisfiable);
        }
        start..end
    };
    Ok(Some(range))
}

/// One page of a sorted list: entries after `last`, at most `n`; and
/// whether more follow.
fn paginate(
    all: Vec<String>,
    query: &Query,
    default_limit: Option<usize>,
    max: usize,
) -> Result<(Vec<String>, bool), RegistryError> {
    let limit = match query.get("n") {
        Some(n) => Some(
            n.parse::<usize>()
                .map_err(|_| RegistryError::Unsupported(format!("invalid page size n={n:?}")))?
                .min(max),
        ),
        None => default_limit,
    };
    let mut rest = all
        .into_iter()
        .filter(|entry| query.get("last").is_none_or(|last| entry.as_str() > last));
    let page: Vec<String> = match limit {
        Some(limit) => rest.by_ref().take(limit).collect(),
        None => rest.by_ref().collect(),
    };
    let more = rest.next().is_some() && !page.is_empty();
    Ok((page, more))
}

/// `Link: <path?n=N&last=LAST>; rel="next"` when another page follows.
fn with_next_link(reply: Reply, path: &str, page: &[String], more: bool) -> Reply {
    match page.last() {
        Some(last) if more => reply.header(
            LINK,
            format!("<{path}?n={}&last={last}>; rel=\"next\"", page.len()),
        ),
        _ => reply,
    }
}

/// Where clients fetch tokens: the configured URL, or this request's host
/// (`None` when it has none fit to quote).
fn token_url(tokens: &Tokens, parts: &request::Parts) -> Option<String> {
    if let Some(url) = &tokens.options.realm_url {
        return Some(url.replace(['"', '\\'], ""));
    }
    let host = match parts.headers.get(HOST) {
        Some(host) => host.to_str().ok()?,
        // HTTP/2 carries it in the URI.
        None => parts.uri.authority()?.as_str(),
    };
    // It goes inside a quoted string: only what a host and port may hold
    // (a name of at most 255 bytes, or a bracketed IPv6 address, and a port).
    let fit = !host.is_empty()
        && host.len() <= 255 + ":65535".len()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-_:[]".contains(&b));
    if !fit {
        return None;
    }
    // A proxy lists the client's own scheme first. Believing the header is
    // safe: the challenge goes back only to the client that sent it.
    let https = parts
        .headers
        .get(FORWARDED_PROTO)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(',').next())
        .is_some_and(|proto| proto.trim().eq_ignore_ascii_case("https"));
    let scheme = if https { "https" } else { "http" };
    Some(format!("{scheme}://{host}/v2/token"))
}

impl Registry {
    /// Answers one request. Never fails: errors become the spec's error
    /// responses.
    pub async fn handle<B>(&self, request: Request<B>) -> Response<ResponseBody>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let (parts, body) = request.into_parts();
        let mut body: RequestBody = body.map_err(Into::into).boxed_unsync();
        let mut reply = match self.dispatch(&parts, &mut body).await {
            Ok(reply) => reply,
            Err(error) => self.error_reply(&error, &parts),
        };
        if parts.method == Method::HEAD {
            reply.body = body::empty();
        }
        reply.into_response()
    }

    fn error_reply(&self, error: &RegistryError, parts: &request::Parts) -> Reply {
        let reply = error.reply();
        if reply.status.is_server_error() {
            tracing::warn!(method = %parts.method, path = parts.uri.path(), error = %error, "registry request failed");
        } else {
            tracing::debug!(method = %parts.method, path = parts.uri.path(), error = %error, "registry request refused");
        }
        let mut out = Reply::new(reply.status).json(&error.body(), "application/json");
        match error {
            RegistryError::Unauthorized | RegistryError::InsufficientScope => {
                out = out.header(WWW_AUTHENTICATE, self.challenge(error, parts));
            }
            RegistryError::UploadOutOfOrder { size } => out = out.header(RANGE, upload_range(*size)),
            RegistryError::RangeNotSatisfiable { size } => {
                out = out.header(CONTENT_RANGE, format!("bytes */{size}"))
            }
            _ => {}
        }
        out
    }

    /// The `WWW-Authenticate` challenge of a 401: `Bearer`, pointing at the
    /// token endpoint with the scope that was refused, when the token flow
    /// is set to challenge so; `Basic` otherwise, and always for the token
    /// endpoint itself (which takes Basic credentials).
    fn challenge(&self, error: &RegistryError, parts: &request::Parts) -> String {
        let service = self.inner.options.realm.replace(['"', '\\'], "");
        let basic = format!("Basic realm=\"{service}\"");
        let Some(tokens) = self
            .inner
            .tokens
            .as_ref()
            .filter(|tokens| tokens.options.challenge_bearer)
        else {
            return basic;
        };
        let needs = Route::parse(parts.uri.path()).and_then(|route| Needs::of(route, &parts.method));
        let name;
        let scope = match needs {
            None | Some(Needs::Token) => return basic,
            Some(Needs::Registry) => Scope::Registry,
            Some(Needs::Catalog) => Scope::Catalog,
            Some(Needs::Repository(raw, action)) => match RepositoryName::parse(raw) {
                Ok(valid) => {
                    name = valid;
                    Scope::Repository {
                        name: name.as_str(),
                        action,
                    }
                }
                Err(_) => Scope::Registry,
            },
        };
        let Some(realm) = token_url(tokens, parts) else {
            return basic;
        };
        let mut challenge = format!("Bearer realm=\"{realm}\",service=\"{service}\"");
        if let Some(scope) = token::challenge_scope(scope) {
            challenge.push_str(&format!(",scope=\"{scope}\""));
        }
        // RFC 6750: say why a presented token was not enough.
        let bearer = parts
            .headers
            .get(AUTHORIZATION)
            .is_some_and(|value| matches!(Credentials::parse(value.as_bytes()), Ok(Credentials::Bearer(_))));
        if bearer {
            let reason = match error {
                RegistryError::InsufficientScope => "insufficient_scope",
                _ => "invalid_token",
            };
            challenge.push_str(&format!(",error=\"{reason}\""));
        }
        challenge
    }

    async fn authorize(&self, credentials: &Caller, scope: Scope<'_>) -> Result<(), RegistryError> {
        let Ok(credentials) = credentials else {
            return Err(RegistryError::Unauthorized);
        };
        // Our own tokens are checked here; without the token flow, bearer
        // credentials are the RegistryAuth's to judge.
        if let (Some(Credentials::Bearer(token)), Some(tokens)) = (credentials, &self.inner.tokens) {
            let claims = tokens.verify(token, SystemTime::now()).map_err(|e| {
                tracing::debug!(error = %e, "registry bearer token refused");
                RegistryError::Unauthorized
            })?;
            return if claims.allows(scope) {
                Ok(())
            } else {
                Err(RegistryError::InsufficientScope)
            };
        }
        match self.inner.auth.check(credentials.as_ref(), scope).await {
            Decision::Allow => Ok(()),
            Decision::Unauthenticated => Err(RegistryError::Unauthorized),
            Decision::Deny => Err(RegistryError::Denied),
        }
    }

    async fn dispatch(&self, parts: &request::Parts, body: &mut RequestBody) -> Result<Reply, RegistryError> {
        let route = Route::parse(parts.uri.path())
            .filter(|route| *route != Route::Token || self.inner.tokens.is_some())
            .ok_or(RegistryError::NotFound)?;
        let needs = Needs::of(route, &parts.method).ok_or(RegistryError::MethodNotAllowed)?;
        let credentials = parts
            .headers
            .get(AUTHORIZATION)
            .map(|value| Credentials::parse(value.as_bytes()))
            .transpose();
        let query = Query::parse(parts.uri.query());
        let head = parts.method == Method::HEAD;
        let creds = &credentials;
        // Nothing is looked at before the caller is authorized.
        let name = match needs {
            Needs::Token => return self.issue_token(creds, &query).await,
            Needs::Registry => {
                self.authorize(creds, Scope::Registry).await?;
                None
            }
            Needs::Catalog => {
                self.authorize(creds, Scope::Catalog).await?;
                None
            }
            Needs::Repository(name, action) => {
                let name = RepositoryName::parse(name)?;
                let scope = Scope::Repository {
                    name: name.as_str(),
                    action,
                };
                self.authorize(creds, scope).await?;
                Some(name)
            }
        };
        let method = &parts.method;
        match (route, name) {
            (Route::Base, _) => Ok(Reply::new(StatusCode::OK).json(&json!({}), "application/json")),
            (Route::Catalog, _) => self.catalog(&query).await,
            (Route::Tags(_), Some(name)) => self.tags(&name, &query).await,
            (Route::Manifest(_, reference), Some(name)) => {
                let reference = percent_decode(reference);
                match *method {
                    Method::PUT => self.put_manifest(&name, &reference, &parts.headers, body).await,
                    Method::DELETE => self.delete_manifest(&name, &reference).await,
                    _ => self.get_manifest(&name, &reference, head).await,
                }
            }
            (Route::Blob(_, digest), Some(name)) => {
                let digest = percent_decode(digest);
                if *method == Method::DELETE {
                    let digest = Digest::parse(&digest)?;
                    self.inner.storage.unlink_blob(&name, &digest).await?;
                    Ok(Reply::new(StatusCode::ACCEPTED))
                } else {
                    self.get_blob(&name, &digest, &parts.headers, head).await
                }
            }
            (Route::UploadStart(_), Some(name)) => self.start_upload(&name, &query, creds, body).await,
            (Route::Upload(_, id), Some(name)) => {
                self.upload(&name, id, method, &query, &parts.headers, body).await
            }
            (Route::Referrers(_, digest), Some(name)) => {
                self.referrers(&name, &percent_decode(digest), &query).await
            }
            // `Needs::of` admitted only the pairs above.
            _ => Err(RegistryError::MethodNotAllowed),
        }
    }

    /// `GET /v2/token`: a bearer token for what the caller asks and may do
    /// (see `token.rs`).
    async fn issue_token(&self, credentials: &Caller, query: &Query) -> Result<Reply, RegistryError> {
        let tokens = self.inner.tokens.as_ref().ok_or(RegistryError::NotFound)?;
        let Ok(credentials) = credentials else {
            return Err(RegistryError::Unauthorized);
        };
        // Repeated `scope` parameters, or several in one separated by
        // spaces (OAuth 2), which form encoding may have made `+`.
        let scopes: Vec<&str> = query
            .get_all("scope")
            .flat_map(|value| value.split([' ', '+']))
            .filter(|scope| !scope.is_empty())
            .collect();
        let now = SystemTime::now();
        let lifetime = tokens.options.lifetime;
        let claims = token::grant(
            self.inner.auth.as_ref(),
            credentials.as_ref(),
            &scopes,
            now,
            lifetime,
        )
        .await?;
        tracing::debug!(user = %claims.sub, access = ?claims.access, "registry token issued");
        let token = tokens.sign(&claims);
        let body = json!({
            "token": token,
            "access_token": token,
            "expires_in": lifetime.as_secs(),
            "issued_at": token::rfc3339(now),
        });
        Ok(Reply::new(StatusCode::OK)
            .json(&body, "application/json")
            .header(CACHE_CONTROL, "no-store"))
    }

    async fn catalog(&self, query: &Query) -> Result<Reply, RegistryError> {
        let options = &self.inner.options;
        let all = self.inner.storage.catalog().await?;
        let (page, more) = paginate(all, query, Some(options.max_page_size), options.max_page_size)?;
        let reply = Reply::new(StatusCode::OK).json(&json!({ "repositories": page }), "application/json");
        Ok(with_next_link(reply, "/v2/_catalog", &page, more))
    }

    async fn tags(&self, name: &RepositoryName, query: &Query) -> Result<Reply, RegistryError> {
        let storage = &self.inner.storage;
        if !storage.repository_exists(name).await? {
            return Err(RegistryError::NameUnknown);
        }
        let all = storage.tags(name).await?;
        let (page, more) = paginate(all, query, None, self.inner.options.max_page_size)?;
        let reply = Reply::new(StatusCode::OK).json(
            &json!({ "name": name.as_str(), "tags": page }),
            "application/json",
        );
        Ok(with_next_link(
            reply,
            &format!("/v2/{name}/tags/list"),
            &page,
            more,
        ))
    }

    async fn get_blob(
        &self,
        name: &RepositoryName,
        digest: &str,
        headers: &HeaderMap,
        head: bool,
    ) -> Result<Reply, RegistryError> {
        let digest = Digest::parse(digest)?;
        let storage = &self.inner.storage;
        let size = storage.blob_size(name, &digest).await?;
        let range = requested_range(headers.get(RANGE), size)?;
        let reply = Reply::new(StatusCode::OK)
            .header(CONTENT_DIGEST, digest.to_string())
            .header(CONTENT_TYPE, "application/octet-stream")
            .header(ACCEPT_RANGES, "bytes");
        if head {
            return Ok(reply.header(CONTENT_LENGTH, size.to_string()));
        }
        let reader = storage
            .objects()
            .read(&crate::storage::blob_key(&digest), range.clone())
            .await?
            .ok_or_else(|| RegistryError::BlobUnknown(digest.clone()))?;
        let length = reader.range.end - reader.range.start;
        let mut reply = reply.header(CONTENT_LENGTH, length.to_string());
        if range.is_some() {
            reply.status = StatusCode::PARTIAL_CONTENT;
            let (start, end) = (reader.range.start, reader.range.end.saturating_sub(1));
            reply = reply.header(CONTENT_RANGE, format!("bytes {start}-{end}/{size}"));
        }
        Ok(reply.body(body::stream(reader)))
    }

    async fn start_upload(
        &self,
        name: &RepositoryName,
        query: &Query,
        credentials: &Caller,
        body: &mut RequestBody,
    ) -> Result<Reply, RegistryError> {
        let storage = &self.inner.storage;
        let uploads = &self.inner.uploads;
        if let Some(mount) = query.get("mount") {
            let digest = Digest::parse(mount)?;
            if let Some(from) = query.get("from") {
                // Garbage collection must not delete the blob in between.
                let _pause = self.inner.pause.read().await;
                if self.may_mount_from(from, &digest, credentials).await? {
                    storage.link_blob(name, &digest).await?;
                    return Ok(blob_created(name, &digest));
                }
            }
            // Not mountable: the client uploads instead, as the spec says.
        }
        let monolithic = query.get("digest").map(Digest::parse).transpose()?;
        let session = uploads.start(name).await?;
        let Some(digest) = monolithic else {
            return Ok(upload_reply(StatusCode::ACCEPTED, name, &session.id, 0));
        };
        if let Err(e) = uploads.complete(&session, body, None, &digest).await {
            // Unfinished monolithic uploads cannot be resumed: clean up.
            if let Err(cancel) = uploads.cancel(&session).await
                && !matches!(cancel, RegistryError::BlobUploadUnknown)
            {
                tracing::debug!(error = %cancel, "cleaning up a failed monolithic upload");
            }
            return Err(e);
        }
        Ok(blob_created(name, &digest))
    }

    /// Whether a blob can be mounted from `from`: the caller may pull there
    /// and the blob is in it.
    async fn may_mount_from(
        &self,
        from: &str,
        digest: &Digest,
        credentials: &Caller,
    ) -> Result<bool, RegistryError> {
        let Ok(from) = RepositoryName::parse(from) else {
            return Ok(false);
        };
        let scope = Scope::Repository {
            name: from.as_str(),
            action: Action::Pull,
        };
        if self.authorize(credentials, scope).await.is_err() {
            return Ok(false);
        }
        match self.inner.storage.blob_size(&from, digest).await {
            Ok(_) => Ok(true),
            Err(RegistryError::BlobUnknown(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn upload(
        &self,
        name: &RepositoryName,
        id: &str,
        method: &Method,
        query: &Query,
        headers: &HeaderMap,
        body: &mut RequestBody,
    ) -> Result<Reply, RegistryError> {
        let uploads = &self.inner.uploads;
        let session = uploads.open(name, id).await?;
        let chunk_range = || {
            headers
                .get(CONTENT_RANGE)
                .map(|value| ChunkRange::parse(value.to_str().unwrap_or_default()))
                .transpose()
        };
        match *method {
            Method::GET => {
                let size = uploads.size(&session).await?;
                Ok(upload_reply(StatusCode::NO_CONTENT, name, &session.id, size))
            }
            Method::PATCH => {
                let size = uploads.append(&session, body, chunk_range()?).await?;
                Ok(upload_reply(StatusCode::ACCEPTED, name, &session.id, size))
            }
            Method::PUT => {
                let digest = query
                    .get("digest")
                    .ok_or_else(|| RegistryError::DigestInvalid("the digest parameter is required".into()))?;
                let digest = Digest::parse(digest)?;
                uploads.complete(&session, body, chunk_range()?, &digest).await?;
                Ok(blob_created(name, &digest))
            }
            _ => {
                uploads.cancel(&session).await?;
                Ok(Reply::new(StatusCode::NO_CONTENT))
            }
        }
    }

    async fn get_manifest(
        &self,
        name: &RepositoryName,
        reference: &str,
        head: bool,
    ) -> Result<Reply, RegistryError> {
        let storage = &self.inner.storage;
        let digest = match Reference::parse(reference)? {
            Reference::Tag(tag) => storage
                .tag(name, &tag)
                .await?
                .ok_or(RegistryError::ManifestUnknown)?,
            Reference::Digest(digest) => digest,
        };
        let manifest = storage.manifest(name, &digest).await?;
        let reply = Reply::new(StatusCode::OK)
            .header(CONTENT_TYPE, manifest.media_type)
            .header(CONTENT_DIGEST, manifest.digest.to_string())
            .header(CONTENT_LENGTH, manifest.size.to_string());
        if head {
            return Ok(reply);
        }
        let bytes = storage.manifest_bytes(&digest).await?;
        Ok(reply
            .header(CONTENT_LENGTH, bytes.len().to_string())
            .body(body::full(bytes)))
    }

    async fn put_manifest(
        &self,
        name: &RepositoryName,
        reference: &str,
        headers: &HeaderMap,
        body: &mut RequestBody,
    ) -> Result<Reply, RegistryError> {
        let storage = &self.inner.storage;
        let options = &self.inner.options;
        let reference = Reference::parse(reference)?;
        let limit = options.max_manifest_bytes;
        let too_large = RegistryError::ManifestTooLarge { limit };
        let declared = headers
            .get(CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok()?.parse::<u64>().ok());
        if declared.is_some_and(|length| length > limit as u64) {
            return Err(too_large);
        }
        let bytes = body::read_limited(body, limit, options.body_idle_timeout)
            .await?
            .ok_or(too_large)?;
        let content_type = headers.get(CONTENT_TYPE).and_then(|value| value.to_str().ok());
        let manifest = manifest::parse(&bytes, content_type)?;
        let digest = Digest::of(&bytes);
        if let Reference::Digest(expected) = &reference
            && *expected != digest
        {
            return Err(RegistryError::DigestInvalid(format!(
                "manifest has digest {digest}, not {expected}"
            )));
        }
        // Garbage collection waits until the manifest is stored, so the
        // blobs checked here stay.
        let _pause = self.inner.pause.read().await;
        self.check_references(name, &manifest).await?;

        let referrer = manifest.subject.as_ref().map(|subject| {
            let descriptor = Descriptor {
                media_type: manifest.media_type.to_owned(),
                digest: digest.to_string(),
                size: bytes.len() as u64,
                artifact_type: manifest.artifact_type.clone(),
                annotations: manifest.annotations.clone(),
                urls: None,
            };
            (subject, descriptor)
        });
        let revision = Revision {
            media_type: manifest.media_type.to_owned(),
            subject: manifest.subject.as_ref().map(Digest::to_string),
        };
        let referrer = referrer
            .as_ref()
            .map(|(subject, descriptor)| (*subject, descriptor));
        storage
            .put_manifest(name, &digest, bytes, &revision, referrer)
            .await?;
        if let Reference::Tag(tag) = &reference {
            storage.set_tag(name, tag, &digest).await?;
        }
        let mut reply = Reply::new(StatusCode::CREATED)
            .header(LOCATION, format!("/v2/{name}/manifests/{digest}"))
            .header(CONTENT_DIGEST, digest.to_string());
        if let Some(subject) = &manifest.subject {
            reply = reply.header(OCI_SUBJECT, subject.to_string());
        }
        Ok(reply)
    }

    /// Every blob and child manifest a manifest names must be in the
    /// repository (a subject need not be: referrers may come first). A few
    /// are checked at a time.
    async fn check_references(
        &self,
        name: &RepositoryName,
        manifest: &manifest::Manifest,
    ) -> Result<(), RegistryError> {
        let blobs = manifest.blobs.iter().map(|digest| (digest, true));
        let children = manifest.children.iter().map(|digest| (digest, false));
        let mut pending = FuturesUnordered::new();
        for (digest, is_blob) in blobs.chain(children) {
            if pending.len() >= PARALLEL_CHECKS
                && let Some(checked) = pending.next().await
            {
                checked?;
            }
            pending.push(self.check_reference(name, digest, is_blob));
        }
        while let Some(checked) = pending.next().await {
            checked?;
        }
        Ok(())
    }

    async fn check_reference(
        &self,
        name: &RepositoryName,
        digest: &Digest,
        is_blob: bool,
    ) -> Result<(), RegistryError> {
        let storage = &self.inner.storage;
        let present = if is_blob {
            match storage.blob_size(name, digest).await {
                Ok(_) => true,
                Err(RegistryError::BlobUnknown(_)) => false,
                Err(e) => return Err(e),
            }
        } else {
            storage.has_manifest(name, digest).await?
        };
        if present {
            Ok(())
        } else {
            Err(RegistryError::ManifestBlobUnknown(digest.clone()))
        }
    }

    async fn delete_manifest(&self, name: &RepositoryName, reference: &str) -> Result<Reply, RegistryError> {
        let storage = &self.inner.storage;
        match Reference::parse(reference)? {
            Reference::Tag(tag) => storage.delete_tag(name, &tag).await?,
            Reference::Digest(digest) => storage.delete_manifest(name, &digest).await?,
        }
        Ok(Reply::new(StatusCode::ACCEPTED))
    }

    async fn referrers(
        &self,
        name: &RepositoryName,
        digest: &str,
        query: &Query,
    ) -> Result<Reply, RegistryError> {
        let subject = Digest::parse(digest)?;
        let mut referrers = self.inner.storage.referrers(name, &subject).await?;
        referrers.sort_by(|a, b| a.digest.cmp(&b.digest));
        let filter = query.get("artifactType");
        if let Some(wanted) = filter {
            referrers.retain(|descriptor| descriptor.artifact_type.as_deref() == Some(wanted));
        }
        let index = json!({ "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": referrers });
        let reply = Reply::new(StatusCode::OK).json(&index, OCI_INDEX);
        Ok(match filter {
            Some(_) => reply.header(OCI_FILTERS_APPLIED, "artifactType"),
            None => reply,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_route_from_the_end() {
        assert_eq!(Route::parse("/v2/"), Some(Route::Base));
        assert_eq!(Route::parse("/v2"), Some(Route::Base));
        assert_eq!(Route::parse("/v2/_catalog"), Some(Route::Catalog));
        assert_eq!(Route::parse("/v2/token"), Some(Route::Token));
        assert_eq!(Route::parse("/v2/token/tags/list"), Some(Route::Tags("token")));
        assert_eq!(Route::parse("/v2/a/b/tags/list"), Some(Route::Tags("a/b")));
        assert_eq!(
            Route::parse("/v2/a/b/manifests/v1"),
            Some(Route::Manifest("a/b", "v1"))
        );
        assert_eq!(
            Route::parse("/v2/a/blobs/sha256:x"),
            Some(Route::Blob("a", "sha256:x"))
        );
        assert_eq!(
            Route::parse("/v2/a/b/blobs/uploads/"),
            Some(Route::UploadStart("a/b"))
        );
        assert_eq!(
            Route::parse("/v2/a/blobs/uploads/id"),
            Some(Route::Upload("a", "id"))
        );
        assert_eq!(
            Route::parse("/v2/a/referrers/sha256:x"),
            Some(Route::Referrers("a", "sha256:x"))
        );
        for bad in ["/", "/v1/", "/v2x", "/v2/a", "/v2/a/other/x", "/v2/uploads/x"] {
            assert_eq!(Route::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn queries_decode() {
        let query = Query::parse(Some("digest=sha256%3Aab&from=a%2Fb&n=&x"));
        assert_eq!(query.get("digest"), Some("sha256:ab"));
        assert_eq!(query.get("from"), Some("a/b"));
        assert_eq!(query.get("n"), Some(""));
        assert_eq!(query.get("x"), Some(""));
        assert_eq!(percent_decode("%zz%4%+1"), "%zz%4%+1");
        assert_eq!(percent_decode("a+json%2Bx"), "a+json+x");
    }

    #[test]
    fn ranges_follow_http() {
        let range = |value: &str, size| requested_range(Some(&HeaderValue::from_str(value).unwrap()), size);
        assert_eq!(range("bytes=0-9", 100).unwrap(), Some(0..10));
        assert_eq!(range("bytes=90-200", 100).unwrap(), Some(90..100));
        assert_eq!(range("bytes=10-", 100).unwrap(), Some(10..100));
        assert_eq!(range("bytes=-10", 100).unwrap(), Some(90..100));
        assert_eq!(range("bytes=-200", 100).unwrap(), Some(0..100));
        assert!(matches!(
            range("bytes=100-", 100),
            Err(RegistryError::RangeNotSatisfiable { size: 100 })
        ));
        assert!(matches!(
            range("bytes=-0", 100),
            Err(RegistryError::RangeNotSatisfiable { .. })
        ));
        for ignored in ["bytes=0-1,3-4", "items=0-1", "bytes=5-1", "bytes=x-"] {
            assert_eq!(range(ignored, 100).unwrap(), None, "{ignored}");
        }
        assert_eq!(requested_range(None, 100).unwrap(), None);
    }

    #[test]
    fn pages_follow_last_and_n() {
        let all: Vec<String> = ["a", "b", "c", "d"].map(String::from).to_vec();
        let page = |q: &str| paginate(all.clone(), &Query::parse(Some(q)), None, 3).unwrap();
        assert_eq!(page(""), (all.clone(), false));
        assert_eq!(page("n=2"), (vec!["a".into(), "b".into()], true));
        assert_eq!(page("n=2&last=b"), (vec!["c".into(), "d".into()], false));
        assert_eq!(page("n=10"), (vec!["a".into(), "b".into(), "c".into()], true));
        assert_eq!(page("n=0"), (vec![], false));
        assert!(paginate(all, &Query::parse(Some("n=x")), None, 3).is_err());
    }
}
