//! The router's own configuration: an immutable snapshot of listeners,
//! route tables and clusters, replaced whole on every update. The xDS client
//! (`xds.rs`) builds it from Envoy resources, so the embedded router applies
//! exactly the semantics real Envoy applies to the same feed; tests build it
//! directly.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ipnet::IpNet;

/// Everything the router serves, at one version of the feed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RouterConfig {
    /// The feed's version(s) this was built from, for logs.
    pub version: String,
    /// Sockets to listen on.
    pub listeners: Vec<Listener>,
    /// Route tables by name (listeners refer to them).
    pub route_tables: HashMap<String, Arc<RouteTable>>,
    /// Upstream clusters by name (routes and TCP listeners refer to them).
    pub clusters: HashMap<String, Arc<Cluster>>,
}

/// One listening socket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listener {
    /// Unique name (`http`, `https`, `builder`).
    pub name: String,
    /// Where to listen.
    pub addr: SocketAddr,
    /// What it speaks.
    pub kind: ListenerKind,
}

/// What a listener speaks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListenerKind {
    /// Plain HTTP/1.1 and HTTP/2 (prior knowledge), routed by `routes`.
    Http {
        /// Name of the route table.
        routes: String,
    },
    /// TLS (certificate chosen by SNI), then HTTP/1.1 or HTTP/2 by ALPN.
    Https {
        /// Name of the route table.
        routes: String,
        /// Certificates by server name. A handshake whose SNI matches none
        /// (or that sends no SNI) is refused. A certificate that cannot be
        /// served (unparsable, or a key that is not its own) is skipped
        /// with a warning; the others are still served.
        certificates: Vec<SniCertificate>,
    },
    /// Raw TCP, proxied byte for byte to an endpoint of `cluster`.
    Tcp {
        /// Name of the cluster.
        cluster: String,
        /// Closes the proxied connection after this long without traffic.
        idle_timeout: Duration,
    },
}

/// A certificate and the server names it is served for.
#[derive(Clone, PartialEq, Eq)]
pub struct SniCertificate {
    /// Exact names (`www.example.com`) or wildcards (`*.example.com`,
    /// matching one or more leading labels, as Envoy's `server_names`).
    pub server_names: Vec<String>,
    /// PEM certificate chain, leaf first.
    pub certificate_chain: String,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub private_key: String,
}

impl std::fmt::Debug for SniCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SniCertificate")
            .field("server_names", &self.server_names)
            .finish_non_exhaustive()
    }
}

/// Virtual hosts, matched on the request's host (port ignored) the way
/// Envoy matches them: an exact domain first, then the longest `*.suffix`
/// wildcard, then the longest `prefix.*` wildcard, then `*`. A host that
/// matches nothing gets 404.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RouteTable {
    pub virtual_hosts: Vec<VirtualHost>,
}

/// The routes of a set of domains (in practice: one app).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VirtualHost {
    /// Its name; the app name for app hosts. Shown in access logs.
    pub name: String,
    /// Lower-case domains: exact, `*.suffix`, `prefix.*` or `*`.
    pub domains: Vec<String>,
    /// When set, only clients whose address is in one of these networks
    /// are served; others get 403 (checked before any route).
    pub allow: Option<Vec<IpNet>>,
    /// Tried in order; the first match wins. No match gets 404.
    pub routes: Vec<Route>,
}

/// One route.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    pub path: PathMatch,
    pub action: RouteAction,
}

/// How a route matches the request path (query string excluded).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathMatch {
    /// The path starts with this (`/` matches everything).
    Prefix(String),
    /// The path is exactly this.
    Exact(String),
}

/// What a matched route does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RouteAction {
    /// Proxy to an endpoint of `cluster`.
    Forward {
        cluster: String,
        /// The whole exchange (until the response headers arrive) may take
        /// this long; then 504. `None`: no limit.
        timeout: Option<Duration>,
        /// When a connection to an endpoint cannot be made, try up to this
        /// many other endpoints before answering 503.
        retries: u32,
    },
    /// Answer with a redirect to the same host and path (and query).
    Redirect {
        /// New scheme (`https`), or keep the request's.
        scheme: Option<String>,
        /// New port; a scheme's default port (80 for http, 443 for https)
        /// is left out of the Location. `None`: drop the port.
        port: Option<u16>,
        /// 301, 302, 307 or 308.
        status: u16,
    },
    /// Answer directly.
    Respond {
        status: u16,
        content_type: Option<String>,
        body: Bytes,
    },
}

/// A set of interchangeable upstream endpoints.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cluster {
    pub name: String,
    /// How long a TCP connect to one endpoint may take.
    pub connect_timeout: Duration,
    /// The endpoints, balanced round-robin. Empty: every request gets 503.
    pub endpoints: Vec<SocketAddr>,
}
