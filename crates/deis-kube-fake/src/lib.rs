//! An in-memory fake Kubernetes API server over plain HTTP/1.1 on loopback, with a small model of
//! the controllers behind it, for testing code built on kube-rs end to end where no real
//! kube-apiserver can run.
//!
//! What it serves:
//! - core v1 `namespaces`, `nodes`, `pods` (with the `log` and `status` subresources),
//!   `services`, `secrets`, `configmaps`, `events`, `serviceaccounts`; `apps/v1` `deployments`
//!   and `replicasets` (with `scale` and `status`); `autoscaling/v2`
//!   `horizontalpodautoscalers`; `discovery.k8s.io/v1` `endpointslices`; `batch/v1` `jobs`;
//!   `policy/v1` `poddisruptionbudgets`;
//! - get, list (label and field selectors, `limit`/`continue`), create, replace, delete,
//!   deletecollection, JSON merge patch (strategic merge patches are treated the same), JSON
//!   patch, server-side apply (simplified, see [`FakeKube`]) and watch (`?watch=true`, from a
//!   resource version, with `timeoutSeconds`; `sendInitialEvents` is honoured too);
//! - `/version`, `/api`, `/apis`, group and resource discovery, `/healthz`, `/livez`, `/readyz`.
//!
//! Behind the API, a few controllers run after every write: Deployment → ReplicaSet → Pod,
//! Service → EndpointSlice, Job → Pod, a scheduler honouring `nodeSelector` against the Nodes
//! added with [`FakeKube::add_node`], and a kubelet that starts pods after a short delay (see
//! [`FakeKube::set_start_delay`]) and can be told to fail them ([`FakeKube::fail_image`],
//! [`FakeKube::never_ready`], [`FakeKube::set_pod_exit`]), or hold them for the test to run
//! and end ([`FakeKube::hold_pods`], [`FakeKube::finish_pod`]).
//!
//! Deliberately left out or simplified:
//! - server-side apply merges lists wholesale and never reports field-manager conflicts (see
//!   [`FakeKube`]); strategic merge patches are plain JSON merge patches;
//! - request bodies are checked for their top-level shape only (no OpenAPI validation), and
//!   `apply-patch+yaml` bodies must be JSON (which kube-rs and client-go send);
//! - deletion is immediate: no finalizers, `deletionTimestamp` or grace periods, and
//!   `propagationPolicy` is ignored (dependents are always deleted, as with `Background`);
//! - no bookmarks besides the initial-events-end one of `sendInitialEvents`, no exec,
//!   port-forward, eviction or log following (`follow=true` returns the log and ends); `attach`
//!   is served over WebSocket with the test playing the container ([`FakeKube::attachment`]);
//! - rollouts surge to the full new replica count at once and scale old ReplicaSets to zero
//!   once the new one is fully available; `paused`, `minReadySeconds` and progress deadlines
//!   are ignored; a Job runs one pod and does not retry; HorizontalPodAutoscalers and
//!   PodDisruptionBudgets are stored but nothing acts on them; no core v1 `Endpoints`.

mod api;
mod attach;
mod controllers;
mod json;
mod resources;
mod selector;
mod store;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tokio::task::{JoinHandle, JoinSet};

pub use crate::attach::{AttachInput, Attachment};
use crate::resources::{NAMESPACES, NODES, PODS, PathError, parse_path};
use crate::store::{ObjKey, State};

/// One request the fake received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// HTTP method, e.g. `PATCH`.
    pub method: String,
    /// Path without the query string, e.g. `/apis/apps/v1/namespaces/a/deployments/a-web`.
    pub path: String,
    /// The raw query string (without `?`), empty if none.
    pub query: String,
    /// The `Content-Type` header, if any, e.g. `application/apply-patch+yaml`.
    pub content_type: Option<String>,
}

impl Recorded {
    /// Whether the request could change state (anything but GET, HEAD and OPTIONS).
    pub fn is_write(&self) -> bool {
        !matches!(self.method.as_str(), "GET" | "HEAD" | "OPTIONS")
    }
}

/// State shared by the server tasks and the [`FakeKube`] handle.
#[derive(Debug)]
pub(crate) struct Shared {
    state: Mutex<State>,
    requests: Mutex<Vec<Recorded>>,
    /// Clients attached to pods, not yet taken by the test.
    attachments: Mutex<Vec<(ObjKey, Attachment)>>,
    attached: Notify,
    /// The latest resource version, for watchers to wait on.
    changed: watch::Sender<u64>,
    /// Wakes the timer task when pod timers were added.
    timers_changed: Notify,
    /// `true` once the server is shutting down.
    shutdown: watch::Sender<bool>,
    addr: SocketAddr,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Shared {
    pub(crate) fn add_attachment(&self, key: ObjKey, attachment: Attachment) {
        lock(&self.attachments).push((key, attachment));
        self.attached.notify_waiters();
    }

    /// Runs `f` on the state without running the controllers.
    pub(crate) fn read<R>(&self, f: impl FnOnce(&State) -> R) -> R {
        f(&lock(&self.state))
    }

    /// Runs `f` on the state, then the controllers, then wakes watchers and the timer task.
    pub(crate) fn write<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let (r, rv) = {
            let mut st = lock(&self.state);
            let r = f(&mut st);
            st.reconcile();
            (r, st.rv)
        };
        self.notify_watchers(rv);
        self.timers_changed.notify_one();
        r
    }

    /// Runs the controllers (firing due pod timers); returns when the next timer is due.
    fn tick(&self) -> Option<tokio::time::Instant> {
        let (next, rv) = {
            let mut st = lock(&self.state);
            st.reconcile();
            (st.next_timer(), st.rv)
        };
        self.notify_watchers(rv);
        next
    }

    fn notify_watchers(&self, rv: u64) {
        self.changed.send_if_modified(|v| {
            if *v == rv {
                false
            } else {
                *v = rv;
                true
            }
        });
    }

    pub(crate) fn record(&self, r: Recorded) {
        lock(&self.requests).push(r);
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    pub(crate) fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }
}

/// A running fake Kubernetes API server. Dropping it stops the server too (without waiting).
///
/// Server-side apply is simplified: maps in the applied configuration are merged into the stored
/// object, while scalars and lists replace the stored value wholesale; fields the same field
/// manager applied before but no longer applies are removed. Conflicts between managers are
/// never reported (every apply behaves as if `force=true`). A `managedFields` entry is kept per
/// manager. An apply (or any write) that leaves the object unchanged is not written: no new
/// `resourceVersion`, no `generation` bump and no watch event.
#[derive(Debug)]
pub struct FakeKube {
    shared: Arc<Shared>,
    url: String,
    tasks: Vec<JoinHandle<()>>,
}

impl FakeKube {
    /// Starts on 127.0.0.1:0 in the current tokio runtime; fails if no
    /// loopback port can be bound.
    pub async fn start() -> std::io::Result<FakeKube> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (changed, _) = watch::channel(0);
        let (shutdown, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            requests: Mutex::new(Vec::new()),
            attachments: Mutex::new(Vec::new()),
            attached: Notify::new(),
            changed,
            timers_changed: Notify::new(),
            shutdown,
            addr,
        });
        let accept = tokio::spawn(accept_loop(listener, shared.clone()));
        let timers = tokio::spawn(timer_loop(shared.clone()));
        Ok(FakeKube {
            url: format!("http://{addr}"),
            shared,
            tasks: vec![accept, timers],
        })
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Every request so far, in order (method, path without query, query string, content type).
    pub fn requests(&self) -> Vec<Recorded> {
        lock(&self.shared.requests).clone()
    }

    /// Forgets the recorded requests.
    pub fn clear_requests(&self) {
        lock(&self.shared.requests).clear();
    }

    /// The stored object at an API path such as "/apis/apps/v1/namespaces/a/deployments/a-web", if any.
    pub fn object(&self, path: &str) -> Option<Value> {
        let target = parse_path(path).ok()?;
        let name = target.name.as_deref()?;
        if target.sub.is_some() {
            return None;
        }
        let key = ObjKey::new(target.res, target.ns.as_deref().unwrap_or_default(), name);
        self.shared.read(|st| st.get(&key).cloned())
    }

    /// All stored objects of a resource collection path, e.g. "/api/v1/namespaces/a/pods"
    /// (or "/api/v1/pods" for every namespace), ordered by namespace and name.
    pub fn list(&self, collection_path: &str) -> Vec<Value> {
        let target = match parse_path(collection_path) {
            Ok(t) if t.name.is_none() => t,
            Ok(_) | Err(PathError::NotFound | PathError::UnknownResource(_)) => return Vec::new(),
        };
        self.shared.read(|st| {
            st.iter(target.res, target.ns.as_deref())
                .map(|(_, v)| v.clone())
                .collect()
        })
    }

    /// The current (latest) resource version.
    pub fn resource_version(&self) -> u64 {
        self.shared.read(|st| st.rv)
    }

    /// Adds a Node with these labels (nodes are cluster-scoped, /api/v1/nodes). Pods are
    /// scheduled round-robin onto the Nodes matching their `nodeSelector`; with no Nodes at all,
    /// pods without a `nodeSelector` still run (on a node named `fake-node`).
    pub fn add_node(&self, name: &str, labels: &[(&str, &str)]) {
        let labels: serde_json::Map<String, Value> =
            labels.iter().map(|(k, v)| ((*k).to_string(), json!(v))).collect();
        let key = ObjKey::new(NODES, "", name);
        let ip = self.shared.read(|st| {
            let existing = st.iter(NODES, None).position(|(k, _)| *k == key);
            let n = existing.unwrap_or_else(|| st.iter(NODES, None).count()) + 2;
            format!("172.18.{}.{}", n / 256, n % 256)
        });
        let node = json!({
            "metadata": {"name": name, "labels": labels},
            "spec": {},
            "status": {
                "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "kubelet is posting ready status"}],
                "addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}],
                "nodeInfo": {
                    "kubeletVersion": "v1.33.0", "architecture": "amd64", "operatingSystem": "linux",
                    "containerRuntimeVersion": "containerd://2.0.0", "kernelVersion": "6.1.0", "osImage": "fake",
                    "bootID": "", "machineID": "", "systemUUID": "", "kubeProxyVersion": "",
                },
            },
        });
        self.shared.write(|st| {
            st.commit(&key, node);
        });
    }

    /// Adds an active Namespace (or keeps the existing one), as a cluster has
    /// for the platform itself before anything runs in it.
    pub fn add_namespace(&self, name: &str) {
        let key = ObjKey::new(NAMESPACES, "", name);
        let namespace = json!({
            "metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name}},
            "spec": {"finalizers": ["kubernetes"]},
            "status": {"phase": "Active"},
        });
        self.shared.write(|st| {
            if st.get(&key).is_none() {
                st.commit(&key, namespace);
            }
        });
    }

    /// Pods whose container image equals `image` never start: they stay Pending with container
    /// state waiting reason "ErrImagePull" (then "ImagePullBackOff"), and a Warning Event
    /// (reason "Failed", message `Failed to pull image "<image>": ...`) is recorded in the pod's namespace.
    pub fn fail_image(&self, image: &str) {
        self.shared.write(|st| {
            st.fail_images.insert(image.to_string());
        });
    }

    /// Pods with a container of this image become Running but never Ready, with a Warning Event
    /// reason "Unhealthy".
    pub fn never_ready(&self, image: &str) {
        self.shared.write(|st| {
            st.never_ready.insert(image.to_string());
        });
    }

    /// What `GET .../pods/<name>/log` returns for pods of this namespace.
    pub fn set_pod_log(&self, namespace: &str, text: &str) {
        self.shared.write(|st| {
            st.pod_logs.insert(namespace.to_string(), text.to_string());
        });
    }

    /// A pod named `pod`, or `pod-...` (as the pods of a Job or ReplicaSet named `pod` are), in
    /// `namespace` terminates after it started (at once if it is already running): with
    /// `restartPolicy` `Never` or `OnFailure`, phase Succeeded (exit 0) or Failed with this exit
    /// code; with `Always` (the default, as in ReplicaSets), it goes into `CrashLoopBackOff` with
    /// the exit code as its last termination state, and a Warning Event reason "BackOff".
    pub fn set_pod_exit(&self, namespace: &str, pod: &str, exit_code: i32) {
        self.shared.write(|st| {
            st.pod_exits
                .push((namespace.to_string(), pod.to_string(), exit_code));
            st.exit_matching_pods(namespace, pod);
        });
    }

    /// Pods named `pod`, or `pod-...`, in `namespace` keep running once started (Job pods
    /// included) until [`FakeKube::finish_pod`] ends them: a test playing the kubelet runs
    /// their command itself.
    pub fn hold_pods(&self, namespace: &str, pod: &str) {
        self.shared.write(|st| {
            st.held.push((namespace.to_string(), pod.to_string()));
        });
    }

    /// Appends `text` to the log of one pod (which then no longer shows its namespace's
    /// [`FakeKube::set_pod_log`] text).
    pub fn append_pod_log(&self, namespace: &str, pod: &str, text: &str) {
        self.shared.write(|st| {
            st.pod_log_of
                .entry(ObjKey::new(PODS, namespace, pod))
                .or_default()
                .push_str(text);
        });
    }

    /// Waits for a client to attach to the pod `pod` in `namespace` (the
    /// `attach` subresource, over WebSocket) and hands the connection over:
    /// the test plays the container. The pod keeps running until
    /// [`Attachment::exit`].
    pub async fn attachment(&self, namespace: &str, pod: &str) -> Attachment {
        let key = ObjKey::new(PODS, namespace, pod);
        loop {
            let waiting = self.shared.attached.notified();
            {
                let mut attachments = lock(&self.shared.attachments);
                if let Some(at) = attachments.iter().position(|(k, _)| *k == key) {
                    return attachments.remove(at).1;
                }
            }
            waiting.await;
        }
    }

    /// Ends a running pod (see [`FakeKube::hold_pods`]) with `exit_code`, its containers'
    /// `terminated.message` set to `message` (what a container writes to its
    /// `terminationMessagePath`).
    pub fn finish_pod(&self, namespace: &str, pod: &str, exit_code: i32, message: Option<&str>) {
        self.shared.write(|st| {
            st.finish_held_pod(&ObjKey::new(PODS, namespace, pod), exit_code, message);
        });
    }

    /// How long after being scheduled a pod's containers start (and how long a Job's pod runs).
    /// The default is a random delay of 0–50 ms per pod; with [`Duration::ZERO`], everything
    /// settles within the API request that caused it.
    pub fn set_start_delay(&self, delay: Duration) {
        self.shared.write(|st| st.start_delay = Some(delay));
    }

    /// How many watch events are kept for watchers resuming from an old resource version
    /// (default 10,000). Older resource versions get a `410 Expired` watch error.
    pub fn set_watch_history_limit(&self, events: usize) {
        self.shared.write(|st| st.history_limit = events.max(1));
    }

    /// Stops the server: no new connections, open connections and watch streams are closed.
    pub async fn shutdown(mut self) {
        self.shared.shutdown.send_replace(true);
        for task in std::mem::take(&mut self.tasks) {
            let _ = task.await;
        }
    }
}

impl Drop for FakeKube {
    fn drop(&mut self) {
        self.shared.shutdown.send_replace(true);
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut shutdown = shared.shutdown_signal();
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let shared = shared.clone();
                conns.spawn(async move {
                    let service = service_fn(move |req| {
                        let shared = shared.clone();
                        async move { Ok::<_, Infallible>(api::handle(shared, req).await) }
                    });
                    if let Err(e) = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .with_upgrades()
                        .await
                    {
                        tracing::debug!("fake kube connection: {e}");
                    }
                });
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            _ = shutdown.wait_for(|stop| *stop) => break,
        }
    }
    conns.shutdown().await;
}

/// Fires pod timers when they are due (the API write path handles the ones already due).
async fn timer_loop(shared: Arc<Shared>) {
    let mut shutdown = shared.shutdown_signal();
    loop {
        let next = shared.tick();
        let sleep = async {
            match next {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = sleep => {}
            _ = shared.timers_changed.notified() => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
    }
}
