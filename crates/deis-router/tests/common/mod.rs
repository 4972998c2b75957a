//! Real parts for the router's tests: a small hyper upstream, an HTTP/1.1
//! client on real sockets, config builders, certificates made by openssl.
#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::error::Error as StdError;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use deis_router::config::{
    Cluster, Listener, ListenerKind, PathMatch, Route, RouteAction, RouteTable, RouterConfig, VirtualHost,
};
use deis_router::{AccessEntry, AccessLog, Router, RouterOptions};
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub type BoxError = Box<dyn StdError + Send + Sync>;
pub type TestBody = BoxBody<Bytes, BoxError>;

pub fn full(body: impl Into<Bytes>) -> TestBody {
    Full::new(body.into()).map_err(|never| match never {}).boxed()
}

/// A test upstream: answers `upstream=<name>` plus the request headers it
/// saw; `/slow` waits 2 s, `/echo` streams the request body back, `/ws`
/// switches protocols and echoes bytes.
pub struct Upstream {
    pub addr: SocketAddr,
    pub name: String,
    pub requests: Arc<AtomicUsize>,
    pub connections: Arc<AtomicUsize>,
}

pub async fn upstream(name: &str) -> Upstream {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let requests = Arc::new(AtomicUsize::new(0));
    let connections = Arc::new(AtomicUsize::new(0));
    let (name_c, requests_c, connections_c) = (name.to_owned(), requests.clone(), connections.clone());
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            connections_c.fetch_add(1, Ordering::SeqCst);
            let name = name_c.clone();
            let requests = requests_c.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| {
                    requests.fetch_add(1, Ordering::SeqCst);
                    upstream_handle(name.clone(), req)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .with_upgrades()
                    .await;
            });
        }
    });
    Upstream {
        addr,
        name: name.to_owned(),
        requests,
        connections,
    }
}

/// What the test upstream answers to `/big`: larger than any socket or
/// proxy buffer, and not one byte repeated in place.
pub fn big_body() -> Vec<u8> {
    (0..3 * 1024 * 1024 + 7).map(|i: u32| (i % 251) as u8).collect()
}

async fn upstream_handle(name: String, mut req: Request<Incoming>) -> Result<Response<TestBody>, Infallible> {
    match req.uri().path() {
        "/slow" => {
            tokio::time::sleep(Duration::from_secs(2)).await;
            Ok(Response::new(full("slow")))
        }
        "/echo" => Ok(Response::new(req.into_body().map_err(BoxError::from).boxed())),
        "/big" => Ok(Response::new(full(big_body()))),
        "/ws" => {
            let on_upgrade = hyper::upgrade::on(&mut req);
            tokio::spawn(async move {
                if let Ok(upgraded) = on_upgrade.await {
                    let mut io = TokioIo::new(upgraded);
                    let mut buf = [0u8; 1024];
                    loop {
                        match io.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => {
                                if io.write_all(&buf[..n]).await.is_err() {
                                    return;
                                }
                            }
                        }
                    }
                }
            });
            let mut response = Response::new(Empty::new().map_err(|never| match never {}).boxed());
            *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
            response
                .headers_mut()
                .insert("upgrade", "websocket".parse().unwrap());
            response
                .headers_mut()
                .insert("connection", "Upgrade".parse().unwrap());
            response
                .headers_mut()
                .insert("sec-websocket-accept", "test".parse().unwrap());
            Ok(response)
        }
        _ => {
            let mut text = format!("upstream={name}\npath={}\n", req.uri());
            for (key, value) in req.headers() {
                text.push_str(&format!("{key}: {}\n", String::from_utf8_lossy(value.as_bytes())));
            }
            let mut response = Response::new(full(text));
            response.headers_mut().insert("x-upstream", name.parse().unwrap());
            response
                .headers_mut()
                .insert("keep-alive", "timeout=5".parse().unwrap());
            Ok(response)
        }
    }
}

/// Asserts that nothing serves `addr` any more. A connect is refused,
/// except while a process that another test forked at that moment still
/// holds the closed listener (until it execs): then the connection is
/// reset without a byte of response.
pub async fn assert_not_served(addr: SocketAddr, what: &str) {
    let Ok(mut stream) = TcpStream::connect(addr).await else {
        return;
    };
    let _ = stream.write_all(b"GET / HTTP/1.1\r\nHost: app\r\n\r\n").await;
    let mut answer = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut answer)).await;
    assert!(
        matches!(read, Ok(Ok(0) | Err(_))),
        "{what}: {addr} is still served: {read:?}"
    );
}

/// An address nothing listens on (bound, then closed).
pub async fn refused_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

/// A response read in full.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
    pub raw: Bytes,
}

impl Reply {
    /// The value the upstream saw for a request header (from its echo).
    pub fn seen(&self, header: &str) -> Vec<String> {
        let prefix = format!("{header}: ");
        self.body
            .lines()
            .filter_map(|l| l.strip_prefix(&prefix))
            .map(str::to_owned)
            .collect()
    }

    pub fn upstream(&self) -> Option<String> {
        self.body
            .lines()
            .find_map(|l| l.strip_prefix("upstream="))
            .map(str::to_owned)
    }
}

/// An HTTP/1.1 keep-alive client connection.
pub struct Client {
    sender: hyper::client::conn::http1::SendRequest<TestBody>,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).await.unwrap();
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(async move {
            let _ = conn.with_upgrades().await;
        });
        Client { sender }
    }

    pub async fn try_get(
        &mut self,
        host: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<Reply, BoxError> {
        let mut builder = Request::get(path).header("host", host);
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        self.send(builder.body(full(Bytes::new()))?).await
    }

    pub async fn get(&mut self, host: &str, path: &str) -> Reply {
        self.try_get(host, path, &[]).await.unwrap()
    }

    pub async fn send(&mut self, req: Request<TestBody>) -> Result<Reply, BoxError> {
        self.sender.ready().await?;
        let response = self.sender.send_request(req).await?;
        let (head, body) = response.into_parts();
        let body = body.collect().await?.to_bytes();
        Ok(Reply {
            status: head.status,
            headers: head.headers,
            body: String::from_utf8_lossy(&body).into_owned(),
            raw: body,
        })
    }
}

/// One request on a fresh connection.
pub async fn get(addr: SocketAddr, host: &str, path: &str) -> Reply {
    Client::connect(addr).await.get(host, path).await
}

pub async fn get_with(addr: SocketAddr, host: &str, path: &str, headers: &[(&str, &str)]) -> Reply {
    Client::connect(addr)
        .await
        .try_get(host, path, headers)
        .await
        .unwrap()
}

/// Access log entries, kept for assertions.
#[derive(Default)]
pub struct Recorded(pub Mutex<Vec<AccessEntry>>);

impl AccessLog for Recorded {
    fn log(&self, entry: &AccessEntry) {
        self.0.lock().unwrap().push(entry.clone());
    }
}

/// Worker threads of the routers tests build (fixed, so results do not
/// depend on the machine's core count).
pub const WORKERS: usize = 2;

/// The options the tests' routers start with.
pub fn options() -> RouterOptions {
    RouterOptions {
        workers: WORKERS,
        ..RouterOptions::default()
    }
}

pub fn router() -> (Router, Arc<Recorded>) {
    router_with(options())
}

pub fn router_with(options: RouterOptions) -> (Router, Arc<Recorded>) {
    let log = Arc::new(Recorded::default());
    (Router::new(options, log.clone()), log)
}

pub fn addr_of(router: &Router, name: &str) -> SocketAddr {
    router
        .local_addrs()
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, a)| a)
        .expect("listener bound")
}

// ---- config builders ----

pub fn any_port() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

pub fn http_listener(name: &str, routes: &str) -> Listener {
    Listener {
        name: name.into(),
        addr: any_port(),
        kind: ListenerKind::Http {
            routes: routes.into(),
        },
    }
}

pub fn cluster(name: &str, endpoints: &[SocketAddr]) -> (String, Arc<Cluster>) {
    (
        name.to_owned(),
        Arc::new(Cluster {
            name: name.into(),
            connect_timeout: Duration::from_secs(1),
            endpoints: endpoints.to_vec(),
        }),
    )
}

pub fn forward(cluster: &str) -> RouteAction {
    RouteAction::Forward {
        cluster: cluster.into(),
        timeout: Some(Duration::from_secs(15)),
        retries: 0,
    }
}

pub fn prefix(path: &str, action: RouteAction) -> Route {
    Route {
        path: PathMatch::Prefix(path.into()),
        action,
    }
}

pub fn vhost(name: &str, domains: &[&str], routes: Vec<Route>) -> VirtualHost {
    VirtualHost {
        name: name.into(),
        domains: domains.iter().map(|d| d.to_string()).collect(),
        allow: None,
        routes,
    }
}

pub fn respond(status: u16, body: &str) -> RouteAction {
    RouteAction::Respond {
        status,
        content_type: Some("text/plain".into()),
        body: Bytes::from(body.to_owned()),
    }
}

/// One HTTP listener `http` on table `main` with these virtual hosts.
pub fn http_config(vhosts: Vec<VirtualHost>, clusters: Vec<(String, Arc<Cluster>)>) -> RouterConfig {
    RouterConfig {
        version: "test".into(),
        listeners: vec![http_listener("http", "main")],
        route_tables: HashMap::from([(
            "main".to_owned(),
            Arc::new(RouteTable {
                virtual_hosts: vhosts,
            }),
        )]),
        clusters: clusters.into_iter().collect(),
    }
}

/// A router serving `config`, and its `http` listener's address.
/// One app, `app`, at `domains`, forwarding everything to `upstream`.
pub fn one_app(domains: &[&str], upstream: SocketAddr) -> RouterConfig {
    http_config(
        vec![vhost("app", domains, vec![prefix("/", forward("web"))])],
        vec![cluster("web", &[upstream])],
    )
}

pub async fn serve(config: RouterConfig) -> (Router, Arc<Recorded>, SocketAddr) {
    serve_with(options(), config).await
}

/// [`serve`] with these options.
pub async fn serve_with(options: RouterOptions, config: RouterConfig) -> (Router, Arc<Recorded>, SocketAddr) {
    let (router, log) = router_with(options);
    router.apply(config).await.unwrap();
    let addr = addr_of(&router, "http");
    (router, log, addr)
}

// ---- TLS and curl ----

/// A self-signed certificate and key (PEM) for `name`, made by openssl.
pub fn self_signed(dir: &Path, name: &str) -> (String, String) {
    let file = name.replace('*', "star");
    let cert = dir.join(format!("{file}.crt"));
    let key = dir.join(format!("{file}.key"));
    let status = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
        ])
        .arg("-subj")
        .arg(format!("/CN={name}"))
        .arg("-addext")
        .arg(format!("subjectAltName=DNS:{name}"))
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl runs");
    assert!(
        status.status.success(),
        "openssl failed: {}",
        String::from_utf8_lossy(&status.stderr)
    );
    (
        std::fs::read_to_string(cert).unwrap(),
        std::fs::read_to_string(key).unwrap(),
    )
}

/// Runs curl (off the runtime's threads) and returns (exit code, stdout, stderr).
pub async fn curl(args: Vec<String>) -> (i32, String, String) {
    tokio::task::spawn_blocking(move || {
        let out = Command::new("curl")
            .args(["-sS", "--max-time", "10"])
            .args(&args)
            .output()
            .expect("curl runs");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    })
    .await
    .unwrap()
}
