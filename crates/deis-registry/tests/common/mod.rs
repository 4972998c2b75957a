//! A registry served on loopback with a temporary local object store, and
//! a small HTTP client (hyper's) to talk to it.

#![allow(dead_code, unreachable_pub)] // each test binary uses part of this

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use deis_registry::{Grant, Registry, RegistryAuth, RegistryOptions, StaticAuth};
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

pub type Body = BoxBody<Bytes, std::io::Error>;

pub const USER: (&str, &str) = ("user", "pass");
pub const READER: (&str, &str) = ("reader", "pass");

/// A request a logging test registry received.
#[derive(Debug, Clone)]
pub struct Logged {
    pub method: Method,
    /// Path and query.
    pub target: String,
    /// The `Authorization` scheme (`Basic`, `Bearer`), if any.
    pub scheme: Option<String>,
}

impl Logged {
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or_default()
    }
}

pub struct TestRegistry {
    pub addr: SocketAddr,
    /// The registry being served (for calls that are not HTTP).
    pub registry: Registry,
    pub dir: tempfile::TempDir,
    auth: Arc<dyn RegistryAuth>,
    options: RegistryOptions,
    /// Every request, when served by [`TestRegistry::start_logged`].
    log: Option<Arc<Mutex<Vec<Logged>>>>,
    client: Client<HttpConnector, Body>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

/// `user:pass` may push anywhere, `reader:pass` only pull.
pub fn test_auth() -> StaticAuth {
    StaticAuth::new()
        .with_user(USER.0, USER.1, Grant::ReadWrite)
        .with_user(READER.0, READER.1, Grant::ReadOnly)
}

impl TestRegistry {
    pub async fn start() -> TestRegistry {
        TestRegistry::start_with(test_auth()).await
    }

    pub async fn start_with(auth: StaticAuth) -> TestRegistry {
        TestRegistry::start_in(
            tempfile::tempdir().unwrap(),
            Arc::new(auth),
            RegistryOptions::default(),
            false,
        )
        .await
    }

    /// A registry with these options, served by a loop that logs every
    /// request (see [`TestRegistry::requests`]) before the registry
    /// answers it.
    pub async fn start_logged(auth: Arc<dyn RegistryAuth>, options: RegistryOptions) -> TestRegistry {
        TestRegistry::start_in(tempfile::tempdir().unwrap(), auth, options, true).await
    }

    /// Another registry on this one's store, as a second replica would be.
    pub async fn replica(&self, auth: Arc<dyn RegistryAuth>, options: RegistryOptions) -> TestRegistry {
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(self.store(), dir.path().join("objects")).unwrap();
        TestRegistry::start_in(dir, auth, options, true).await
    }

    /// Stops this registry and starts a new one (new process state, same
    /// store), as after a restart.
    pub async fn restart(mut self) -> TestRegistry {
        self.shut_down().await;
        let logged = self.log.is_some();
        TestRegistry::start_in(self.dir, self.auth, self.options, logged).await
    }

    async fn start_in(
        dir: tempfile::TempDir,
        auth: Arc<dyn RegistryAuth>,
        options: RegistryOptions,
        logged: bool,
    ) -> TestRegistry {
        let objects = deis_objects::Objects::local(&dir.path().join("objects")).unwrap();
        let registry = Registry::with_options(objects, Arc::clone(&auth), options.clone());
        let served = registry.clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let log = logged.then(Arc::default);
        let task = match &log {
            None => tokio::spawn(async move {
                served
                    .serve(listener, async move {
                        let _ = stopped.await;
                    })
                    .await
            }),
            Some(log) => tokio::spawn(serve_logged(served, listener, stopped, Arc::clone(log))),
        };
        TestRegistry {
            addr,
            registry,
            dir,
            auth,
            options,
            log,
            client: Client::builder(TokioExecutor::new()).build_http(),
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// The requests received so far (a logging registry only).
    pub fn requests(&self) -> Vec<Logged> {
        let log = self.log.as_ref().expect("started with start_logged");
        log.lock().unwrap().clone()
    }

    /// Where the object store keeps its files.
    pub fn store(&self) -> std::path::PathBuf {
        self.dir.path().join("objects")
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn req(&self, method: Method, path: &str) -> Req<'_> {
        Req {
            registry: self,
            method,
            path: path.to_owned(),
            auth: Some(USER),
            headers: Vec::new(),
            body: None,
        }
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.req(Method::GET, path).send().await
    }

    /// Uploads a blob monolithically; returns its digest.
    pub async fn push_blob(&self, repository: &str, content: &[u8]) -> String {
        let digest = sha256(content);
        let reply = self
            .req(
                Method::POST,
                &format!("/v2/{repository}/blobs/uploads/?digest={digest}"),
            )
            .body(content.to_vec())
            .send()
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
        digest
    }

    /// Pushes a manifest; returns the reply.
    pub async fn push_manifest(
        &self,
        repository: &str,
        reference: &str,
        media_type: &str,
        manifest: &serde_json::Value,
    ) -> Reply {
        self.req(Method::PUT, &format!("/v2/{repository}/manifests/{reference}"))
            .header("content-type", media_type)
            .body(serde_json::to_vec(manifest).unwrap())
            .send()
            .await
    }

    /// Pushes a config and one layer and an OCI manifest naming them;
    /// returns the manifest's bytes and digest.
    pub async fn push_image(&self, repository: &str, tag: &str) -> (Vec<u8>, String) {
        let config = br#"{"architecture":"amd64","os":"linux"}"#;
        let layer = format!("layer of {repository}:{tag}").into_bytes();
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": deis_registry::OCI_MANIFEST,
            "config": descriptor("application/vnd.oci.image.config.v1+json", &self.push_blob(repository, config).await, config.len()),
            "layers": [descriptor("application/vnd.oci.image.layer.v1.tar", &self.push_blob(repository, &layer).await, layer.len())],
        });
        let reply = self
            .push_manifest(repository, tag, deis_registry::OCI_MANIFEST, &manifest)
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
        let bytes = serde_json::to_vec(&manifest).unwrap();
        let digest = sha256(&bytes);
        (bytes, digest)
    }

    pub async fn stop(mut self) {
        self.shut_down().await;
    }

    async fn shut_down(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }
}

/// Serves `registry` with hyper, logging each request first.
async fn serve_logged(
    registry: Registry,
    listener: tokio::net::TcpListener,
    mut stopped: tokio::sync::oneshot::Receiver<()>,
    log: Arc<Mutex<Vec<Logged>>>,
) -> std::io::Result<()> {
    loop {
        let (stream, _) = tokio::select! {
            _ = &mut stopped => return Ok(()),
            accepted = listener.accept() => accepted?,
        };
        let registry = registry.clone();
        let log = Arc::clone(&log);
        let service = hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
            let scheme = request
                .headers()
                .get("authorization")
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.split(' ').next())
                .map(str::to_owned);
            log.lock().unwrap().push(Logged {
                method: request.method().clone(),
                target: request
                    .uri()
                    .path_and_query()
                    .map(ToString::to_string)
                    .unwrap_or_default(),
                scheme,
            });
            let registry = registry.clone();
            async move { Ok::<_, std::convert::Infallible>(registry.handle(request).await) }
        });
        tokio::spawn(async move {
            let io = hyper_util::rt::TokioIo::new(stream);
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, service)
                .await;
        });
    }
}

pub fn descriptor(media_type: &str, digest: &str, size: usize) -> serde_json::Value {
    serde_json::json!({ "mediaType": media_type, "digest": digest, "size": size })
}

pub fn sha256(bytes: &[u8]) -> String {
    deis_registry::Digest::of(bytes).to_string()
}

pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).map_err(|never| match never {}).boxed()
}

pub struct Req<'a> {
    registry: &'a TestRegistry,
    method: Method,
    path: String,
    auth: Option<(&'static str, &'static str)>,
    headers: Vec<(String, String)>,
    body: Option<Body>,
}

impl Req<'_> {
    pub fn auth(mut self, user: &'static str, password: &'static str) -> Self {
        self.auth = Some((user, password));
        self
    }

    pub fn anonymous(mut self) -> Self {
        self.auth = None;
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn body(mut self, bytes: impl Into<Bytes>) -> Self {
        self.body = Some(full(bytes));
        self
    }

    pub fn stream(mut self, body: Body) -> Self {
        self.body = Some(body);
        self
    }

    pub async fn send(self) -> Reply {
        let response = self.send_streaming().await;
        let (parts, body) = response.into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        Reply {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    }

    /// Sends the request and leaves the response body unread.
    pub async fn send_streaming(self) -> http::Response<hyper::body::Incoming> {
        let mut request = Request::builder()
            .method(self.method)
            .uri(self.registry.url(&self.path));
        if let Some((user, password)) = self.auth {
            use base64::Engine as _;
            let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
            request = request.header("authorization", format!("Basic {encoded}"));
        }
        for (name, value) in &self.headers {
            request = request.header(name, value);
        }
        let request = request
            .body(self.body.unwrap_or_else(|| full(Bytes::new())))
            .unwrap();
        self.registry.client.request(request).await.unwrap()
    }
}

#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap())
            .unwrap_or_default()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.text()))
    }

    /// The spec error code of an error reply.
    pub fn code(&self) -> String {
        let json = self.json();
        json["errors"][0]["code"].as_str().unwrap_or_default().to_owned()
    }

    /// Asserts the status and error code of an error reply.
    pub fn expect_error(&self, status: StatusCode, code: &str) {
        assert_eq!(self.status, status, "{}", self.text());
        assert_eq!(self.code(), code, "{}", self.text());
        assert!(self.json()["errors"][0]["message"].is_string());
    }
}

/// Whether an image can be pulled whole: its manifest and every blob.
pub async fn pullable(registry: &TestRegistry, repository: &str, tag: &str) -> bool {
    let reply = registry.get(&format!("/v2/{repository}/manifests/{tag}")).await;
    if reply.status != StatusCode::OK {
        return false;
    }
    let manifest = reply.json();
    let layers = manifest["layers"].as_array().cloned().unwrap_or_default();
    for descriptor in layers.iter().chain([&manifest["config"]]) {
        let digest = descriptor["digest"].as_str().unwrap();
        let reply = registry.get(&format!("/v2/{repository}/blobs/{digest}")).await;
        if reply.status != StatusCode::OK {
            return false;
        }
    }
    true
}

/// Every file under a directory (empty when it does not exist).
pub fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files
}
