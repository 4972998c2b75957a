//! The routing state: every routable app's domains, certificates and
//! settings (from the store) joined with its ready endpoints (from the
//! scheduler). Rebuilt whenever a handler changes something routing depends
//! on and whenever the endpoints change — event-driven, never polled.

use std::collections::BTreeMap;
use std::sync::Arc;

use deis_routing::{AppRoute, RoutingState, TlsCertificate};
use deis_scheduler::AppEndpoints;
use deis_store::{RoutingInputs, RoutingRecord};
use tokio::sync::watch;

use crate::Controller;

/// A network no client connects from (the unspecified address).
const NOBODY: ipnet::Ipv4Net = ipnet::Ipv4Net::new_assert(std::net::Ipv4Addr::UNSPECIFIED, 32);

/// The routing state of every app.
pub(crate) fn build(inputs: &RoutingInputs, endpoints: &AppEndpoints) -> RoutingState {
    let apps = inputs
        .apps
        .iter()
        .filter(|record| record.routable)
        .map(|record| (record.app.clone(), app_route(record, inputs, endpoints)))
        .collect();
    RoutingState { apps }
}

fn app_route(record: &RoutingRecord, inputs: &RoutingInputs, endpoints: &AppEndpoints) -> AppRoute {
    // One entry per certificate, with every domain of the app it serves.
    let mut certificates: BTreeMap<&str, TlsCertificate> = BTreeMap::new();
    for domain in &record.domains {
        let Some(id) = domain.certificate.as_deref() else {
            continue;
        };
        let Some(cert) = inputs.certificates.get(id) else {
            continue;
        };
        certificates
            .entry(id)
            .or_insert_with(|| TlsCertificate {
                name: cert.name.clone(),
                server_names: Vec::new(),
                certificate_chain: cert.certificate.clone(),
                private_key: cert.private_key.clone(),
            })
            .server_names
            .push(domain.domain.clone());
    }
    // Entries were validated on the way in; one that no longer parses is
    // left out with a warning (an app left with none allows nobody).
    let mut whitelist = Vec::new();
    for entry in &record.whitelist {
        match deis_core::validate::whitelist_network(entry) {
            Some(net) => whitelist.push(net),
            None => tracing::warn!(app = %record.app, entry, "skipping an unreadable whitelist entry"),
        }
    }
    if whitelist.is_empty() && !record.whitelist.is_empty() {
        whitelist.push(ipnet::IpNet::V4(NOBODY));
    }
    AppRoute {
        domains: record.domains.iter().map(|d| d.domain.clone()).collect(),
        certificates: certificates.into_values().collect(),
        https_only: record.https_enforced,
        maintenance: record.maintenance,
        whitelist,
        endpoints: endpoints
            .get(&record.app)
            .map(|e| e.iter().map(|e| e.addr).collect())
            .unwrap_or_default(),
    }
}

/// Where routing-relevant changes are announced and the state is kept.
pub(crate) struct Routing {
    changes: watch::Sender<u64>,
    state: watch::Sender<Arc<RoutingState>>,
    started: std::sync::Once,
}

impl Routing {
    pub(crate) fn new() -> Routing {
        Routing {
            changes: watch::channel(0).0,
            state: watch::channel(Arc::new(RoutingState::default())).0,
            started: std::sync::Once::new(),
        }
    }
}

impl Controller {
    /// Announces a change that may affect routing (domains, certificates,
    /// settings, apps).
    pub(crate) fn routing_changed(&self) {
        self.inner.routing.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// The routing state, kept current from now on. The first call starts
    /// the task that maintains it.
    pub fn routing_state(&self) -> watch::Receiver<Arc<RoutingState>> {
        let routing = &self.inner.routing;
        routing.started.call_once(|| {
            let controller = self.clone();
            tokio::spawn(async move { controller.maintain_routing().await });
        });
        routing.state.subscribe()
    }

    async fn maintain_routing(self) {
        let mut changes = self.inner.routing.changes.subscribe();
        let mut endpoints = self.inner.scheduler.endpoints();
        let mut inputs: Option<RoutingInputs> = None;
        let mut reread = true;
        loop {
            // Endpoint changes alone need no database read.
            if reread {
                changes.borrow_and_update();
                match self.inner.store.routing_inputs().await {
                    Ok(fresh) => inputs = Some(fresh),
                    Err(err) => {
                        tracing::error!(error = %err, "cannot read the routing state; keeping the last one")
                    }
                }
            }
            let current = endpoints.borrow_and_update().clone();
            if let Some(inputs) = &inputs {
                let state = build(inputs, &current);
                self.inner.routing.state.send_if_modified(|old| {
                    if **old == state {
                        false
                    } else {
                        *old = Arc::new(state);
                        true
                    }
                });
            }
            tokio::select! {
                changed = changes.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    reread = true;
                }
                changed = endpoints.changed() => {
                    if changed.is_err() {
                        // The runtime is gone: keep serving the last state.
                        std::future::pending::<()>().await;
                    }
                    reread = inputs.is_none();
                }
            }
        }
    }
}
