//! The router: configuration swaps, listener lifecycle, shutdown.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;
use http::HeaderValue;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::runtime::Handle;
use tokio::sync::{Mutex, Semaphore};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::access_log::AccessLog;
use crate::config::{ListenerKind, RouterConfig};
use crate::drain::{ABORTING, DRAINING, Registry};
use crate::listener::{self, ConnKind};
use crate::metrics::{RouterMetrics, Stats};
use crate::pool::{ClusterRt, EndpointPool};
use crate::routes::RouteTableRt;
use crate::tls;
use crate::workers::Workers;

/// Limits and timeouts of the router itself (the feed decides everything
/// else).
#[derive(Clone, Debug)]
pub struct RouterOptions {
    /// How long an unused pooled upstream connection is kept.
    pub upstream_idle_timeout: Duration,
    /// Most idle pooled connections kept per upstream endpoint.
    pub max_idle_per_endpoint: usize,
    /// Largest request head (HTTP/1.1, at least 8 KiB) or header list
    /// (HTTP/2) accepted; larger requests get 431.
    pub max_header_size: usize,
    /// Most downstream connections open at once; past it, accepting waits.
    pub max_connections: usize,
    /// How long an HTTP/1.1 client may take to send a request head.
    pub header_read_timeout: Duration,
    /// How long a TLS handshake may take.
    pub tls_handshake_timeout: Duration,
    /// Most concurrent streams on one HTTP/2 connection.
    pub max_concurrent_streams: u32,
    /// How long [`Router::shutdown`] lets in-flight requests run before it
    /// cuts the remaining connections.
    pub drain_timeout: Duration,
    /// Worker threads, each running its own single-threaded runtime (like
    /// nginx's worker processes; a connection stays on one worker). 0 runs
    /// everything on the runtime that calls [`Router::apply`] instead.
    pub workers: usize,
    /// Whether workers move plain HTTP/1.1 sockets onto an io_uring each,
    /// which batches the system calls of many connections into one. Falls
    /// back to epoll where the kernel lacks io_uring or forbids it.
    pub io_uring: bool,
}

impl Default for RouterOptions {
    fn default() -> RouterOptions {
        RouterOptions {
            upstream_idle_timeout: Duration::from_secs(60),
            max_idle_per_endpoint: 1024,
            max_header_size: 60 * 1024,
            max_connections: 65_536,
            header_read_timeout: Duration::from_secs(30),
            tls_handshake_timeout: Duration::from_secs(10),
            max_concurrent_streams: 200,
            drain_timeout: Duration::from_secs(10),
            workers: std::thread::available_parallelism().map_or(1, usize::from),
            io_uring: true,
        }
    }
}

/// Why a configuration was refused; the previous one stays in force. The
/// message is one sentence, fit for an xDS NACK.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ApplyError {
    /// Two listeners share a name.
    #[error("listener name {0:?} is used more than once")]
    DuplicateListener(String),
    /// The TLS settings could not be built.
    #[error("listener {listener:?} TLS settings are invalid: {reason}")]
    Tls {
        /// The HTTPS listener.
        listener: String,
        /// What is wrong.
        reason: String,
    },
    /// A listener's address could not be bound.
    #[error("listener {listener:?} cannot listen on {addr}: {reason}")]
    Bind {
        /// The listener.
        listener: String,
        /// The address it asked for.
        addr: SocketAddr,
        /// The operating system's error.
        reason: String,
    },
    /// A route table is inconsistent (duplicate domain, bad status, …).
    #[error("route table {table:?} is invalid: {message}")]
    InvalidRoute {
        /// The route table's name.
        table: String,
        /// What is wrong.
        message: String,
    },
    /// A cluster is unusable.
    #[error("cluster {cluster:?} is invalid: {message}")]
    InvalidCluster {
        /// The cluster's name.
        cluster: String,
        /// What is wrong.
        message: String,
    },
    /// [`Router::shutdown`] has run.
    #[error("the router is shut down")]
    ShutDown,
}

/// The embedded edge router. Cheap to clone (all clones are the same router).
#[derive(Clone)]
pub struct Router {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) options: RouterOptions,
    pub(crate) access_log: Arc<dyn AccessLog>,
    stats: Arc<Stats>,
    snapshot: ArcSwap<Snapshot>,
    control: Mutex<Control>,
    /// Every open connection, for drain and abort.
    pub(crate) conns: Arc<Registry>,
    conn_limit: Arc<Semaphore>,
    pub(crate) http: auto::Builder<TokioExecutor>,
    pub(crate) upstream: hyper::client::conn::http1::Builder,
    next_id: AtomicU64,
    sweeper_started: AtomicBool,
    workers: std::sync::Mutex<Workers>,
    /// The workers' runtimes (empty: the caller's runtime).
    worker_handles: Vec<Handle>,
    /// Upstream pools keep one idle list per worker.
    pool_slots: usize,
}

/// What requests read: the listeners by socket id, immutable.
#[derive(Default)]
struct Snapshot {
    /// By socket id; a short list, scanned.
    listeners: Vec<(u64, ListenerRt)>,
    local_addrs: Vec<(String, SocketAddr)>,
}

impl Snapshot {
    fn listener(&self, id: u64) -> Option<&ListenerRt> {
        self.listeners.iter().find(|(i, _)| *i == id).map(|(_, l)| l)
    }
}

struct ListenerRt {
    kind: KindRt,
    /// The socket's generation (connections of older ones drain).
    generation: u64,
    port_header: HeaderValue,
}

enum KindRt {
    Http(Option<Arc<RouteTableRt>>),
    Https(Option<Arc<RouteTableRt>>, Arc<rustls::ServerConfig>),
    Tcp(Option<Arc<ClusterRt>>, Option<Duration>),
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Family {
    Http,
    Https,
    Tcp,
}

fn family(kind: &ListenerKind) -> Family {
    match kind {
        ListenerKind::Http { .. } => Family::Http,
        ListenerKind::Https { .. } => Family::Https,
        ListenerKind::Tcp { .. } => Family::Tcp,
    }
}

/// What only `apply` and `shutdown` touch, under the lock.
#[derive(Default)]
struct Control {
    sockets: Vec<Socket>,
    pools: HashMap<SocketAddr, Arc<EndpointPool>>,
    round_robin: HashMap<String, Arc<AtomicUsize>>,
    shut_down: bool,
}

struct Socket {
    id: u64,
    name: String,
    /// The address as configured (port 0 stays 0).
    configured: SocketAddr,
    local: SocketAddr,
    family: Family,
    /// Changes with the family; connections of the previous one drain.
    generation: u64,
    /// One accept loop per worker, each on its own copy of the socket.
    accept: Vec<JoinHandle<()>>,
}

impl Socket {
    /// Stops accepting (the socket closes) and drains its connections.
    async fn close(self, conns: &Registry) {
        for accept in &self.accept {
            accept.abort();
        }
        for accept in self.accept {
            let _ = accept.await;
        }
        conns.drain_generation(self.generation);
    }
}

impl Inner {
    /// The route table a request on this listener uses now.
    pub(crate) fn route_table(&self, listener: u64) -> Option<Arc<RouteTableRt>> {
        match &self.snapshot.load().listener(listener)?.kind {
            KindRt::Http(routes) | KindRt::Https(routes, _) => routes.clone(),
            KindRt::Tcp(..) => None,
        }
    }

    /// How a new connection on this listener is served, its generation and
    /// its `X-Forwarded-Port`.
    pub(crate) fn connection_setup(&self, listener: u64) -> Option<(ConnKind, u64, HeaderValue)> {
        let snapshot = self.snapshot.load();
        let rt = snapshot.listener(listener)?;
        let kind = match &rt.kind {
            KindRt::Http(_) => ConnKind::Http,
            KindRt::Https(_, tls) => ConnKind::Https(Arc::clone(tls)),
            KindRt::Tcp(cluster, idle) => ConnKind::Tcp(cluster.clone(), *idle),
        };
        Some((kind, rt.generation, rt.port_header.clone()))
    }
}

/// A listener of the new config and where its socket comes from.
enum Plan {
    Keep(usize),
    /// One copy of the socket per accept loop.
    Bind(Vec<std::net::TcpListener>, SocketAddr),
}

impl Router {
    /// A router with no listeners; [`Router::apply`] gives it some.
    pub fn new(options: RouterOptions, access_log: Arc<dyn AccessLog>) -> Router {
        let mut http = auto::Builder::new(TokioExecutor::new());
        http.http1()
            .timer(TokioTimer::new())
            .header_read_timeout(options.header_read_timeout.min(Duration::from_secs(365 * 86_400)))
            .max_buf_size(options.max_header_size.max(8192));
        http.http2()
            .timer(TokioTimer::new())
            .max_header_list_size(u32::try_from(options.max_header_size).unwrap_or(u32::MAX))
            .max_concurrent_streams(options.max_concurrent_streams);
        let permits = options.max_connections.clamp(1, Semaphore::MAX_PERMITS);
        let workers = Workers::start(options.workers, options.io_uring).unwrap_or_else(|e| {
            warn!(error = %e, "cannot start router workers; using the caller's runtime");
            Workers::empty()
        });
        let worker_handles = workers.handles().to_vec();
        let pool_slots = worker_handles.len().max(1);
        Router {
            inner: Arc::new(Inner {
                options,
                access_log,
                stats: Arc::default(),
                snapshot: ArcSwap::from_pointee(Snapshot::default()),
                control: Mutex::new(Control::default()),
                conns: Arc::new(Registry::default()),
                conn_limit: Arc::new(Semaphore::new(permits)),
                http,
                upstream: hyper::client::conn::http1::Builder::new(),
                next_id: AtomicU64::new(1),
                sweeper_started: AtomicBool::new(false),
                workers: std::sync::Mutex::new(workers),
                worker_handles,
                pool_slots,
            }),
        }
    }

    /// Applies a new config: binds listeners that are new or moved, closes
    /// listeners no longer present (their in-flight requests finish), keeps
    /// the sockets of the others, and swaps route tables and clusters at
    /// once. Validates everything first; on error nothing changes.
    ///
    /// A listener keeps its socket while its name and address stay the same
    /// (or, for a fixed port, its address alone); when its kind changes
    /// between HTTP, HTTPS and TCP, its open connections drain. Certificate
    /// and route changes apply to new connections and requests at once.
    pub async fn apply(&self, config: RouterConfig) -> Result<(), ApplyError> {
        let inner = &self.inner;
        let mut control = inner.control.lock().await;
        if control.shut_down {
            return Err(ApplyError::ShutDown);
        }
        let mut names = HashSet::new();
        for listener in &config.listeners {
            if !names.insert(listener.name.as_str()) {
                return Err(ApplyError::DuplicateListener(listener.name.clone()));
            }
        }

        // Clusters, reusing pools and round-robin counters.
        let options = &inner.options;
        let mut pools = HashMap::new();
        let mut round_robin = HashMap::new();
        let mut clusters = HashMap::with_capacity(config.clusters.len());
        for (name, cluster) in &config.clusters {
            if cluster.connect_timeout.is_zero() {
                return Err(ApplyError::InvalidCluster {
                    cluster: name.clone(),
                    message: "the connect timeout is zero".to_owned(),
                });
            }
            let endpoints = cluster
                .endpoints
                .iter()
                .map(|addr| {
                    let pool: &Arc<EndpointPool> = pools.entry(*addr).or_insert_with(|| {
                        control.pools.get(addr).cloned().unwrap_or_else(|| {
                            Arc::new(EndpointPool::new(
                                *addr,
                                inner.pool_slots,
                                options.max_idle_per_endpoint,
                                options.upstream_idle_timeout,
                            ))
                        })
                    });
                    Arc::clone(pool)
                })
                .collect();
            let next = control.round_robin.get(name).cloned().unwrap_or_default();
            round_robin.insert(name.clone(), Arc::clone(&next));
            clusters.insert(
                name.clone(),
                Arc::new(ClusterRt {
                    connect_timeout: cluster.connect_timeout,
                    endpoints,
                    next,
                }),
            );
        }

        let mut tables = HashMap::with_capacity(config.route_tables.len());
        for (name, table) in &config.route_tables {
            tables.insert(
                name.clone(),
                Arc::new(RouteTableRt::compile(name, table, &clusters, &inner.stats)?),
            );
        }

        let mut kinds = Vec::with_capacity(config.listeners.len());
        for listener in &config.listeners {
            kinds.push(match &listener.kind {
                ListenerKind::Http { routes } => KindRt::Http(tables.get(routes).cloned()),
                ListenerKind::Https { routes, certificates } => KindRt::Https(
                    tables.get(routes).cloned(),
                    tls::server_config(&listener.name, certificates)?,
                ),
                ListenerKind::Tcp {
                    cluster,
                    idle_timeout,
                } => KindRt::Tcp(
                    clusters.get(cluster).cloned(),
                    Some(*idle_timeout).filter(|d| !d.is_zero()),
                ),
            });
        }

        // Sockets: same name and address first, then same fixed address.
        let mut claimed = vec![false; control.sockets.len()];
        let mut plans: Vec<Option<Plan>> = config.listeners.iter().map(|_| None).collect();
        for (plan, listener) in plans.iter_mut().zip(&config.listeners) {
            if let Some(index) =
                control.sockets.iter().enumerate().position(|(i, s)| {
                    !claimed[i] && s.name == listener.name && s.configured == listener.addr
                })
            {
                claimed[index] = true;
                *plan = Some(Plan::Keep(index));
            }
        }
        for (plan, listener) in plans.iter_mut().zip(&config.listeners) {
            if plan.is_some() || listener.addr.port() == 0 {
                continue;
            }
            if let Some(index) = control
                .sockets
                .iter()
                .enumerate()
                .position(|(i, s)| !claimed[i] && s.configured == listener.addr)
            {
                claimed[index] = true;
                *plan = Some(Plan::Keep(index));
            }
        }
        for (plan, listener) in plans.iter_mut().zip(&config.listeners) {
            if plan.is_some() {
                continue;
            }
            let copies = inner.worker_handles.len().max(1);
            let bound = listener::bind(listener.addr).and_then(|socket| {
                let local = socket.local_addr()?;
                let mut sockets = Vec::with_capacity(copies);
                for _ in 1..copies {
                    sockets.push(socket.try_clone()?);
                }
                sockets.push(socket);
                Ok((local, sockets))
            });
            match bound {
                Ok((local, socket)) => *plan = Some(Plan::Bind(socket, local)),
                Err(e) => {
                    return Err(ApplyError::Bind {
                        listener: listener.name.clone(),
                        addr: listener.addr,
                        reason: e.to_string(),
                    });
                }
            }
        }

        // Everything is valid and bound: commit.
        let mut old: Vec<Option<Socket>> = control.sockets.drain(..).map(Some).collect();
        let mut sockets = Vec::with_capacity(config.listeners.len());
        let mut to_start = Vec::new();
        let mut to_drain = Vec::new();
        let mut snapshot = Snapshot::default();
        for ((plan, listener), kind) in plans.into_iter().zip(&config.listeners).zip(kinds) {
            let new_family = family(&listener.kind);
            let socket = match plan {
                Some(Plan::Keep(index)) => {
                    let Some(mut socket) = old.get_mut(index).and_then(Option::take) else {
                        continue;
                    };
                    socket.name.clone_from(&listener.name);
                    if socket.family != new_family {
                        let generation = inner.next_id.fetch_add(1, Ordering::Relaxed);
                        to_drain.push(std::mem::replace(&mut socket.generation, generation));
                        socket.family = new_family;
                    }
                    socket
                }
                Some(Plan::Bind(bound, local)) => {
                    let id = inner.next_id.fetch_add(1, Ordering::Relaxed);
                    to_start.push((id, bound));
                    Socket {
                        id,
                        name: listener.name.clone(),
                        configured: listener.addr,
                        local,
                        family: new_family,
                        generation: inner.next_id.fetch_add(1, Ordering::Relaxed),
                        accept: Vec::new(),
                    }
                }
                None => continue,
            };
            snapshot.local_addrs.push((socket.name.clone(), socket.local));
            snapshot.listeners.push((
                socket.id,
                ListenerRt {
                    kind,
                    generation: socket.generation,
                    port_header: HeaderValue::from(socket.local.port()),
                },
            ));
            sockets.push(socket);
        }
        inner.snapshot.store(Arc::new(snapshot));
        for (id, copies) in to_start {
            let mut tasks = Vec::with_capacity(copies.len());
            for (index, copy) in copies.into_iter().enumerate() {
                let accept =
                    listener::accept_loop(copy, id, Arc::downgrade(inner), Arc::clone(&inner.conn_limit));
                tasks.push(match inner.worker_handles.get(index) {
                    Some(worker) => worker.spawn(accept),
                    None => tokio::spawn(accept),
                });
            }
            if let Some(socket) = sockets.iter_mut().find(|s| s.id == id) {
                socket.accept = tasks;
            }
        }
        for generation in to_drain {
            inner.conns.drain_generation(generation);
        }
        for socket in old.into_iter().flatten() {
            debug!(listener = %socket.name, addr = %socket.local, "closing listener");
            socket.close(&inner.conns).await;
        }
        control.sockets = sockets;
        control.pools = pools;
        control.round_robin = round_robin;
        drop(control);
        inner.stats.prune();
        self.start_sweeper();
        info!(version = %config.version, listeners = config.listeners.len(), "router config applied");
        Ok(())
    }

    /// How many of the router's workers serve plain HTTP/1.1 through an
    /// io_uring (see [`RouterOptions::io_uring`]).
    pub fn io_uring_workers(&self) -> usize {
        self.inner
            .workers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .rings()
    }

    /// The router's request metrics, read when Prometheus scrapes them.
    pub fn metrics(&self) -> RouterMetrics {
        RouterMetrics(Arc::clone(&self.inner.stats))
    }

    /// The actual bound address of each listener, by name (useful with port 0).
    pub fn local_addrs(&self) -> Vec<(String, SocketAddr)> {
        self.inner.snapshot.load().local_addrs.clone()
    }

    /// Stops accepting on every listener, lets in-flight requests finish
    /// (up to [`RouterOptions::drain_timeout`]), then closes what is left.
    /// Later calls to [`Router::apply`] fail.
    pub async fn shutdown(&self) {
        let inner = &self.inner;
        let mut control = inner.control.lock().await;
        control.shut_down = true;
        for socket in control.sockets.drain(..) {
            socket.close(&inner.conns).await;
        }
        inner.conns.raise_all(DRAINING);
        if !inner.conns.wait_empty(inner.options.drain_timeout).await {
            debug!("drain timeout reached; closing remaining connections");
        }
        inner.conns.raise_all(ABORTING);
        inner.conns.wait_empty(Duration::from_secs(1)).await;
        inner.workers.lock().unwrap_or_else(|p| p.into_inner()).stop();
        inner.snapshot.store(Arc::new(Snapshot::default()));
        control.pools.clear();
        control.round_robin.clear();
    }

    /// Closes expired idle upstream connections in the background.
    fn start_sweeper(&self) {
        if self.inner.sweeper_started.swap(true, Ordering::Relaxed) {
            return;
        }
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        let period = (self.inner.options.upstream_idle_timeout / 2)
            .clamp(Duration::from_secs(1), Duration::from_secs(30));
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(period);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                interval.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                let pools: Vec<Arc<EndpointPool>> =
                    inner.control.lock().await.pools.values().cloned().collect();
                drop(inner);
                for pool in pools {
                    pool.sweep();
                }
            }
        });
    }
}
