//! The feed: the current snapshot, rebuilt whenever the routing state
//! changes, and what every connected client has accepted or rejected.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use deis_routing::{RouterSettings, RoutingState};
use tokio::sync::watch;

use crate::snapshot::Snapshot;
use crate::translate::translate;

/// A client's rejection of a config (a NACK).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    /// The version it rejected.
    pub version: String,
    /// Its error message, verbatim.
    pub message: String,
}

/// One connected client, as the feed sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientStatus {
    /// `node.id` from its first request.
    pub node: String,
    /// Whether it speaks incremental (delta) xDS.
    pub delta: bool,
    /// The last version it accepted, by type URL.
    pub accepted: BTreeMap<String, String>,
    /// Outstanding rejections, by type URL (cleared by a later accept).
    pub rejected: BTreeMap<String, Rejection>,
}

/// The feed's shared state; cheap to clone.
#[derive(Clone)]
pub struct Feed {
    inner: Arc<Inner>,
}

struct Inner {
    snapshots: watch::Sender<Arc<Snapshot>>,
    clients: Mutex<HashMap<u64, ClientStatus>>,
    next_client: AtomicU64,
    /// Every ACK and NACK since start, for tests and metrics.
    accepted_total: AtomicU64,
    rejected_total: AtomicU64,
    /// True while no client has an outstanding rejection.
    healthy: watch::Sender<bool>,
}

impl Default for Feed {
    fn default() -> Self {
        Feed::new()
    }
}

impl Feed {
    /// An empty feed (version 0, no resources).
    pub fn new() -> Feed {
        Feed {
            inner: Arc::new(Inner {
                snapshots: watch::channel(Arc::new(Snapshot::default())).0,
                clients: Mutex::new(HashMap::new()),
                next_client: AtomicU64::new(1),
                accepted_total: AtomicU64::new(0),
                rejected_total: AtomicU64::new(0),
                healthy: watch::channel(true).0,
            }),
        }
    }

    /// Rebuilds the snapshot from a routing state; returns the version now
    /// served (unchanged when the state translates to the same resources).
    pub fn update(&self, settings: &RouterSettings, state: &RoutingState) -> u64 {
        let resources = translate(settings, state);
        let mut version = 0;
        self.inner
            .snapshots
            .send_if_modified(|current| match current.next(resources) {
                Some(next) => {
                    version = next.version;
                    *current = Arc::new(next);
                    true
                }
                None => {
                    version = current.version;
                    false
                }
            });
        version
    }

    /// Follows a routing state: every change is translated and pushed to
    /// connected clients at once.
    pub fn follow(
        &self,
        settings: RouterSettings,
        mut states: watch::Receiver<Arc<RoutingState>>,
    ) -> tokio::task::JoinHandle<()> {
        // The first snapshot now rather than on the task: clients that
        // connect from here on never see the empty one.
        let publish = move |feed: &Feed, states: &mut watch::Receiver<Arc<RoutingState>>| {
            let state = states.borrow_and_update().clone();
            let version = feed.update(&settings, &state);
            tracing::debug!(version, apps = state.apps.len(), "xDS snapshot");
        };
        publish(self, &mut states);
        let feed = self.clone();
        tokio::spawn(async move {
            while states.changed().await.is_ok() {
                publish(&feed, &mut states);
            }
        })
    }

    /// The snapshot served now.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.inner.snapshots.borrow().clone()
    }

    /// Snapshot changes.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Snapshot>> {
        self.inner.snapshots.subscribe()
    }

    /// Every connected client.
    pub fn clients(&self) -> Vec<ClientStatus> {
        let clients = self.inner.clients.lock().unwrap_or_else(|p| p.into_inner());
        let mut list: Vec<ClientStatus> = clients.values().cloned().collect();
        list.sort_by(|a, b| a.node.cmp(&b.node));
        list
    }

    /// `true` while no connected client rejects its config.
    pub fn health(&self) -> watch::Receiver<bool> {
        self.inner.healthy.subscribe()
    }

    /// How many responses clients accepted and rejected since start.
    pub fn acknowledgements(&self) -> (u64, u64) {
        (
            self.inner.accepted_total.load(Ordering::Relaxed),
            self.inner.rejected_total.load(Ordering::Relaxed),
        )
    }

    pub(crate) fn count_acknowledgement(&self, accepted: bool) {
        let counter = if accepted {
            &self.inner.accepted_total
        } else {
            &self.inner.rejected_total
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn connect(&self, delta: bool) -> u64 {
        let id = self.inner.next_client.fetch_add(1, Ordering::Relaxed);
        self.with_client(id, |c| c.delta = delta);
        id
    }

    pub(crate) fn disconnect(&self, id: u64) {
        self.inner
            .clients
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
        self.refresh_health();
    }

    pub(crate) fn with_client(&self, id: u64, change: impl FnOnce(&mut ClientStatus)) {
        {
            let mut clients = self.inner.clients.lock().unwrap_or_else(|p| p.into_inner());
            change(clients.entry(id).or_default());
        }
        self.refresh_health();
    }

    fn refresh_health(&self) {
        let healthy = self
            .inner
            .clients
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .all(|c| c.rejected.is_empty());
        self.inner.healthy.send_if_modified(|h| {
            let changed = *h != healthy;
            *h = healthy;
            changed
        });
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use deis_routing::AppRoute;

    use super::*;

    #[tokio::test]
    async fn following_publishes_the_first_snapshot_at_once_then_every_change() {
        let feed = Feed::new();
        let (states, following) = watch::channel(Arc::new(RoutingState::default()));
        let task = feed.follow(RouterSettings::local(), following);
        // Before the task has run: a client connecting now gets listeners.
        assert_eq!(feed.snapshot().version, 1);

        let mut snapshots = feed.subscribe();
        let mut state = RoutingState::default();
        let route = AppRoute {
            endpoints: vec![SocketAddr::from(([127, 0, 0, 1], 5000))],
            ..Default::default()
        };
        state.apps.insert("alpha".into(), route);
        states.send(Arc::new(state)).unwrap();
        snapshots.changed().await.unwrap();
        assert_eq!(feed.snapshot().version, 2);
        drop(states);
        task.await.unwrap();
    }
}
