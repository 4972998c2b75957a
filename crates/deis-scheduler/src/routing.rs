//! The endpoints a runtime publishes: where each app's routable processes
//! listen once they are ready. The router consumes this (together with the
//! controller's domains, certificates and settings).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

/// One ready process the router may send traffic to.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Endpoint {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its name (`myapp-web-1`).
    pub process: String,
    /// The release it runs (`v3`).
    pub release: String,
}

/// Ready endpoints by app. An app that is not listed has none.
pub type AppEndpoints = BTreeMap<String, Vec<Endpoint>>;

/// The current endpoints, replaced whole on every change.
pub type EndpointsWatch = tokio::sync::watch::Receiver<Arc<AppEndpoints>>;
