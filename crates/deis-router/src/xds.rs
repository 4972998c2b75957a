//! The router as an xDS client: it subscribes to the platform's feed over
//! ADS like any Envoy (wildcard listeners and clusters, then the routes and
//! endpoints they name), turns the Envoy resources it understands into a
//! [`RouterConfig`], and ACKs what it applied or NACKs, with a one-sentence
//! reason, what it could not (keeping its last good config).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use envoy_types::pb::envoy::config::cluster::v3::{Cluster as EnvoyCluster, cluster};
use envoy_types::pb::envoy::config::core::v3::{
    Address, DataSource, Node, address, data_source, socket_address, transport_socket,
};
use envoy_types::pb::envoy::config::endpoint::v3::{ClusterLoadAssignment, lb_endpoint};
use envoy_types::pb::envoy::config::listener::v3::{Listener as EnvoyListener, filter};
use envoy_types::pb::envoy::config::rbac::v3::{principal, rbac};
use envoy_types::pb::envoy::config::route::v3::{
    RouteConfiguration, redirect_action, route, route_action, route_match,
};
use envoy_types::pb::envoy::extensions::filters::http::rbac::v3::RbacPerRoute;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, http_connection_manager,
};
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::{TcpProxy, tcp_proxy};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::DownstreamTlsContext;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use envoy_types::pb::google::protobuf::{Any, Duration as PbDuration};
use envoy_types::pb::google::rpc::Status as RpcStatus;
use ipnet::IpNet;
use prost::Message;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::Router;
use crate::config::{
    Cluster, Listener, ListenerKind, PathMatch, Route, RouteAction, RouteTable, RouterConfig, SniCertificate,
    VirtualHost,
};

const CLUSTER: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
const ENDPOINTS: &str = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";
const LISTENER: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";
const ROUTES: &str = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";
const RBAC_FILTER: &str = "envoy.filters.http.rbac";
/// Envoy's default per-route timeout, when a route names none.
const DEFAULT_ROUTE_TIMEOUT: Duration = Duration::from_secs(15);

/// Where the feed is and how to present ourselves.
#[derive(Clone, Debug)]
pub struct XdsOptions {
    /// `http://host:port` of the ADS server.
    pub endpoint: String,
    /// The feed's token (sent as `authorization: token <token>`).
    pub token: String,
    /// Our node id, shown in the feed's logs and health.
    pub node_id: String,
}

/// A resource the router cannot use, in one sentence.
type Rejected = String;

fn duration(d: Option<&PbDuration>) -> Option<Duration> {
    let d = d?;
    let secs = u64::try_from(d.seconds).ok()?;
    let nanos = u32::try_from(d.nanos).ok()?;
    Some(Duration::new(secs, nanos))
}

fn socket_addr(address: Option<&Address>) -> Result<SocketAddr, Rejected> {
    let Some(address::Address::SocketAddress(socket)) = address.and_then(|a| a.address.as_ref()) else {
        return Err("only socket addresses are supported".into());
    };
    let ip: IpAddr = socket
        .address
        .parse()
        .map_err(|_| format!("{:?} is not an IP address", socket.address))?;
    let Some(socket_address::PortSpecifier::PortValue(port)) = socket.port_specifier else {
        return Err("named ports are not supported".into());
    };
    let port = u16::try_from(port).map_err(|_| format!("port {port} is out of range"))?;
    Ok(SocketAddr::new(ip, port))
}

fn inline(source: Option<&DataSource>, what: &str) -> Result<String, Rejected> {
    match source.and_then(|s| s.specifier.as_ref()) {
        Some(data_source::Specifier::InlineString(text)) => Ok(text.clone()),
        Some(data_source::Specifier::InlineBytes(bytes)) => {
            String::from_utf8(bytes.clone()).map_err(|_| format!("the {what} is not text"))
        }
        _ => Err(format!("the {what} must be inline")),
    }
}

fn unpack<M: Message + Default>(any: &Any, what: &str) -> Result<M, Rejected> {
    M::decode(any.value.as_slice()).map_err(|e| format!("cannot decode the {what}: {e}"))
}

/// A listener, and the route table it needs (if any).
fn listener(l: &EnvoyListener) -> Result<Option<Listener>, Rejected> {
    if l.api_listener.is_some() {
        // For proxyless gRPC clients, not for a proxy.
        return Ok(None);
    }
    let addr = socket_addr(l.address.as_ref()).map_err(|e| format!("listener {}: {e}", l.name))?;
    let mut routes: Option<String> = None;
    let mut certificates = Vec::new();
    let mut tcp = None;
    for chain in &l.filter_chains {
        for f in &chain.filters {
            let Some(filter::ConfigType::TypedConfig(config)) = &f.config_type else {
                return Err(format!(
                    "listener {}: filter {} has no typed config",
                    l.name, f.name
                ));
            };
            if config.type_url.ends_with("HttpConnectionManager") {
                let hcm: HttpConnectionManager = unpack(config, "HTTP connection manager")?;
                let Some(http_connection_manager::RouteSpecifier::Rds(rds)) = hcm.route_specifier else {
                    return Err(format!(
                        "listener {}: only RDS route configurations are supported",
                        l.name
                    ));
                };
                if routes.as_ref().is_some_and(|r| *r != rds.route_config_name) {
                    return Err(format!(
                        "listener {}: filter chains with different route configurations are not supported",
                        l.name
                    ));
                }
                routes = Some(rds.route_config_name);
            } else if config.type_url.ends_with("TcpProxy") {
                let proxy: TcpProxy = unpack(config, "TCP proxy")?;
                let Some(tcp_proxy::ClusterSpecifier::Cluster(cluster)) = proxy.cluster_specifier else {
                    return Err(format!(
                        "listener {}: the TCP proxy must name one cluster",
                        l.name
                    ));
                };
                let idle = duration(proxy.idle_timeout.as_ref()).unwrap_or(Duration::from_secs(3600));
                tcp = Some((cluster, idle));
            } else {
                return Err(format!(
                    "listener {}: network filter {} is not supported",
                    l.name, f.name
                ));
            }
        }
        if let Some(socket) = &chain.transport_socket {
            let Some(transport_socket::ConfigType::TypedConfig(config)) = &socket.config_type else {
                return Err(format!(
                    "listener {}: the transport socket has no typed config",
                    l.name
                ));
            };
            let tls: DownstreamTlsContext = unpack(config, "TLS context")?;
            let Some(certificate) = tls
                .common_tls_context
                .as_ref()
                .and_then(|c| c.tls_certificates.first())
            else {
                return Err(format!(
                    "listener {}: a TLS filter chain has no certificate",
                    l.name
                ));
            };
            certificates.push(SniCertificate {
                server_names: chain
                    .filter_chain_match
                    .as_ref()
                    .map(|m| m.server_names.iter().map(|n| n.to_ascii_lowercase()).collect())
                    .unwrap_or_default(),
                certificate_chain: inline(certificate.certificate_chain.as_ref(), "certificate chain")?,
                private_key: inline(certificate.private_key.as_ref(), "private key")?,
            });
        }
    }
    let kind = match (routes, tcp) {
        (Some(_), Some(_)) => return Err(format!("listener {}: mixes HTTP and TCP proxying", l.name)),
        (Some(routes), None) if certificates.is_empty() => ListenerKind::Http { routes },
        (Some(routes), None) => ListenerKind::Https { routes, certificates },
        (None, Some((cluster, idle_timeout))) => ListenerKind::Tcp {
            cluster,
            idle_timeout,
        },
        (None, None) => return Err(format!("listener {} has no filters the router supports", l.name)),
    };
    Ok(Some(Listener {
        name: l.name.clone(),
        addr,
        kind,
    }))
}

fn allow_list(config: &HashMap<String, Any>) -> Result<Option<Vec<IpNet>>, Rejected> {
    let Some(any) = config.get(RBAC_FILTER) else {
        return Ok(None);
    };
    let per_route: RbacPerRoute = unpack(any, "RBAC per-route config")?;
    let Some(rules) = per_route.rbac.and_then(|r| r.rules) else {
        return Ok(None);
    };
    if rules.action != rbac::Action::Allow as i32 {
        return Err("only ALLOW RBAC rules are supported".into());
    }
    let mut nets = Vec::new();
    for policy in rules.policies.values() {
        for p in &policy.principals {
            match &p.identifier {
                Some(principal::Identifier::DirectRemoteIp(cidr) | principal::Identifier::RemoteIp(cidr)) => {
                    let ip: IpAddr = cidr
                        .address_prefix
                        .parse()
                        .map_err(|_| format!("{:?} is not an IP address", cidr.address_prefix))?;
                    let len = cidr
                        .prefix_len
                        .as_ref()
                        .map_or(if ip.is_ipv4() { 32 } else { 128 }, |v| v.value);
                    let len = u8::try_from(len).map_err(|_| "a prefix length is out of range".to_string())?;
                    nets.push(IpNet::new(ip, len).map_err(|_| format!("{ip}/{len} is not a network"))?);
                }
                _ => return Err("only IP principals are supported in RBAC rules".into()),
            }
        }
    }
    Ok(Some(nets))
}

fn route_table(config: &RouteConfiguration) -> Result<RouteTable, Rejected> {
    let mut virtual_hosts = Vec::new();
    for vh in &config.virtual_hosts {
        let mut routes = Vec::new();
        for r in &vh.routes {
            let path = match r.r#match.as_ref().and_then(|m| m.path_specifier.as_ref()) {
                Some(route_match::PathSpecifier::Prefix(p)) => PathMatch::Prefix(p.clone()),
                Some(route_match::PathSpecifier::Path(p)) => PathMatch::Exact(p.clone()),
                _ => {
                    return Err(format!(
                        "route config {}: only prefix and path matches are supported",
                        config.name
                    ));
                }
            };
            let action = match &r.action {
                Some(route::Action::Route(a)) => {
                    let Some(route_action::ClusterSpecifier::Cluster(cluster)) = &a.cluster_specifier else {
                        return Err(format!(
                            "route config {}: a route must name one cluster",
                            config.name
                        ));
                    };
                    let timeout = match duration(a.timeout.as_ref()) {
                        Some(d) if d.is_zero() => None,
                        Some(d) => Some(d),
                        None => Some(DEFAULT_ROUTE_TIMEOUT),
                    };
                    let retries = a
                        .retry_policy
                        .as_ref()
                        .filter(|p| p.retry_on.split(',').any(|c| c.trim() == "connect-failure"))
                        .map_or(0, |p| p.num_retries.as_ref().map_or(1, |n| n.value));
                    RouteAction::Forward {
                        cluster: cluster.clone(),
                        timeout,
                        retries,
                    }
                }
                Some(route::Action::Redirect(redirect)) => RouteAction::Redirect {
                    scheme: match &redirect.scheme_rewrite_specifier {
                        Some(redirect_action::SchemeRewriteSpecifier::SchemeRedirect(s)) => Some(s.clone()),
                        Some(redirect_action::SchemeRewriteSpecifier::HttpsRedirect(true)) => {
                            Some("https".into())
                        }
                        _ => None,
                    },
                    port: u16::try_from(redirect.port_redirect).ok().filter(|p| *p != 0),
                    status: match redirect_action::RedirectResponseCode::try_from(redirect.response_code) {
                        Ok(redirect_action::RedirectResponseCode::Found) => 302,
                        Ok(redirect_action::RedirectResponseCode::SeeOther) => 303,
                        Ok(redirect_action::RedirectResponseCode::TemporaryRedirect) => 307,
                        Ok(redirect_action::RedirectResponseCode::PermanentRedirect) => 308,
                        _ => 301,
                    },
                },
                Some(route::Action::DirectResponse(direct)) => RouteAction::Respond {
                    status: u16::try_from(direct.status)
                        .ok()
                        .filter(|s| (100..=599).contains(s))
                        .ok_or_else(|| {
                            format!(
                                "route config {}: status {} is invalid",
                                config.name, direct.status
                            )
                        })?,
                    content_type: r
                        .response_headers_to_add
                        .iter()
                        .filter_map(|h| h.header.as_ref())
                        .find(|h| h.key.eq_ignore_ascii_case("content-type"))
                        .map(|h| h.value.clone()),
                    body: match &direct.body {
                        Some(body) => Bytes::from(inline(Some(body), "response body")?),
                        None => Bytes::new(),
                    },
                },
                _ => return Err(format!("route config {}: unsupported route action", config.name)),
            };
            routes.push(Route { path, action });
        }
        virtual_hosts.push(VirtualHost {
            name: vh.name.clone(),
            domains: vh.domains.iter().map(|d| d.to_ascii_lowercase()).collect(),
            allow: allow_list(&vh.typed_per_filter_config)
                .map_err(|e| format!("virtual host {}: {e}", vh.name))?,
            routes,
        });
    }
    Ok(RouteTable { virtual_hosts })
}

fn endpoints(assignment: &ClusterLoadAssignment) -> Result<Vec<SocketAddr>, Rejected> {
    let mut out = Vec::new();
    for locality in &assignment.endpoints {
        for lb in &locality.lb_endpoints {
            if let Some(lb_endpoint::HostIdentifier::Endpoint(endpoint)) = &lb.host_identifier {
                out.push(socket_addr(endpoint.address.as_ref())?);
            }
        }
    }
    Ok(out)
}

/// A cluster: its connect timeout and, for static clusters, its endpoints.
struct ClusterSpec {
    connect_timeout: Duration,
    eds: bool,
    static_endpoints: Vec<SocketAddr>,
}

fn cluster_spec(c: &EnvoyCluster) -> Result<ClusterSpec, Rejected> {
    let kind = match c.cluster_discovery_type {
        Some(cluster::ClusterDiscoveryType::Type(t)) => cluster::DiscoveryType::try_from(t).ok(),
        _ => None,
    };
    let eds = match kind {
        Some(cluster::DiscoveryType::Eds) => true,
        Some(cluster::DiscoveryType::Static) => false,
        _ => {
            return Err(format!(
                "cluster {}: only EDS and STATIC clusters are supported",
                c.name
            ));
        }
    };
    Ok(ClusterSpec {
        connect_timeout: duration(c.connect_timeout.as_ref()).unwrap_or(Duration::from_secs(5)),
        eds,
        static_endpoints: match &c.load_assignment {
            Some(assignment) if !eds => {
                endpoints(assignment).map_err(|e| format!("cluster {}: {e}", c.name))?
            }
            _ => Vec::new(),
        },
    })
}

/// What the client holds of each type, decoded and checked.
#[derive(Default)]
struct Held {
    listeners: BTreeMap<String, Option<Listener>>,
    routes: BTreeMap<String, RouteTable>,
    clusters: BTreeMap<String, ClusterSpec>,
    endpoints: BTreeMap<String, Vec<SocketAddr>>,
    versions: BTreeMap<&'static str, String>,
}

impl Held {
    /// Route configurations the listeners need.
    fn route_names(&self) -> BTreeSet<String> {
        self.listeners
            .values()
            .flatten()
            .filter_map(|l| match &l.kind {
                ListenerKind::Http { routes } | ListenerKind::Https { routes, .. } => Some(routes.clone()),
                ListenerKind::Tcp { .. } => None,
            })
            .collect()
    }

    /// Clusters whose endpoints come from EDS.
    fn eds_names(&self) -> BTreeSet<String> {
        self.clusters
            .iter()
            .filter(|(_, c)| c.eds)
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// The router config, once every route table and endpoint set that is
    /// named has arrived (Envoy's warming).
    fn config(&self) -> Option<RouterConfig> {
        if self.route_names().iter().any(|n| !self.routes.contains_key(n))
            || self.eds_names().iter().any(|n| !self.endpoints.contains_key(n))
        {
            return None;
        }
        Some(RouterConfig {
            version: self
                .versions
                .iter()
                .map(|(t, v)| format!("{}={v}", t.rsplit('.').next().unwrap_or(t)))
                .collect::<Vec<_>>()
                .join(","),
            listeners: self.listeners.values().flatten().cloned().collect(),
            route_tables: self
                .routes
                .iter()
                .map(|(n, t)| (n.clone(), Arc::new(t.clone())))
                .collect(),
            clusters: self
                .clusters
                .iter()
                .map(|(name, spec)| {
                    let endpoints = if spec.eds {
                        self.endpoints.get(name).cloned().unwrap_or_default()
                    } else {
                        spec.static_endpoints.clone()
                    };
                    let cluster = Cluster {
                        name: name.clone(),
                        connect_timeout: spec.connect_timeout,
                        endpoints,
                    };
                    (name.clone(), Arc::new(cluster))
                })
                .collect(),
        })
    }

    /// Takes in one response; returns what it replaced (to undo it).
    fn absorb(&mut self, response: &DiscoveryResponse) -> Result<Held, Rejected> {
        let mut previous = Held::default();
        match response.type_url.as_str() {
            LISTENER => {
                let mut next = BTreeMap::new();
                for any in &response.resources {
                    let l: EnvoyListener = unpack(any, "listener")?;
                    next.insert(l.name.clone(), listener(&l)?);
                }
                previous.listeners = std::mem::replace(&mut self.listeners, next);
            }
            ROUTES => {
                let mut next = BTreeMap::new();
                for any in &response.resources {
                    let r: RouteConfiguration = unpack(any, "route configuration")?;
                    next.insert(r.name.clone(), route_table(&r)?);
                }
                previous.routes = std::mem::replace(&mut self.routes, next);
            }
            CLUSTER => {
                let mut next = BTreeMap::new();
                for any in &response.resources {
                    let c: EnvoyCluster = unpack(any, "cluster")?;
                    next.insert(c.name.clone(), cluster_spec(&c)?);
                }
                previous.clusters = std::mem::replace(&mut self.clusters, next);
            }
            ENDPOINTS => {
                let mut next = BTreeMap::new();
                for any in &response.resources {
                    let a: ClusterLoadAssignment = unpack(any, "cluster load assignment")?;
                    let found = endpoints(&a).map_err(|e| format!("endpoints of {}: {e}", a.cluster_name))?;
                    next.insert(a.cluster_name.clone(), found);
                }
                previous.endpoints = std::mem::replace(&mut self.endpoints, next);
            }
            other => return Err(format!("resource type {other} is not supported")),
        }
        Ok(previous)
    }

    fn undo(&mut self, type_url: &str, previous: Held) {
        match type_url {
            LISTENER => self.listeners = previous.listeners,
            ROUTES => self.routes = previous.routes,
            CLUSTER => self.clusters = previous.clusters,
            ENDPOINTS => self.endpoints = previous.endpoints,
            _ => {}
        }
    }
}

fn type_key(type_url: &str) -> Option<&'static str> {
    [CLUSTER, ENDPOINTS, LISTENER, ROUTES]
        .into_iter()
        .find(|t| *t == type_url)
}

/// One ADS session; returns when the stream ends.
async fn session(router: &Router, options: &XdsOptions) -> Result<(), String> {
    let mut client = AggregatedDiscoveryServiceClient::connect(options.endpoint.clone())
        .await
        .map_err(|e| format!("cannot reach the routing feed at {}: {e}", options.endpoint))?
        .max_decoding_message_size(usize::MAX);
    let (requests, rx) = mpsc::channel::<DiscoveryRequest>(16);
    let mut call = tonic::Request::new(ReceiverStream::new(rx));
    let header = format!("token {}", options.token)
        .parse()
        .map_err(|_| "the xDS token is not a valid header value".to_string())?;
    call.metadata_mut().insert("authorization", header);
    let mut responses = client
        .stream_aggregated_resources(call)
        .await
        .map_err(|s| format!("the routing feed refused the stream: {}", s.message()))?
        .into_inner();
    let node = Node {
        id: options.node_id.clone(),
        cluster: "deis-router".into(),
        ..Default::default()
    };
    let send =
        |type_url: &str, names: &BTreeSet<String>, version: String, nonce: String, error: Option<String>| {
            DiscoveryRequest {
                node: Some(node.clone()),
                type_url: type_url.to_owned(),
                resource_names: names.iter().cloned().collect(),
                version_info: version,
                response_nonce: nonce,
                error_detail: error.map(|message| RpcStatus {
                    code: 3,
                    message,
                    details: Vec::new(),
                }),
                ..Default::default()
            }
        };
    let gone = |_| "the routing feed closed the stream".to_string();
    let none = BTreeSet::new();
    requests
        .send(send(CLUSTER, &none, String::new(), String::new(), None))
        .await
        .map_err(gone)?;
    requests
        .send(send(LISTENER, &none, String::new(), String::new(), None))
        .await
        .map_err(gone)?;
    let mut held = Held::default();
    let mut subscribed: HashMap<&'static str, BTreeSet<String>> = HashMap::new();
    loop {
        let response = match responses.message().await {
            Ok(Some(r)) => r,
            Ok(None) => return Ok(()),
            Err(status) => return Err(format!("the routing feed stream failed: {}", status.message())),
        };
        let Some(type_url) = type_key(&response.type_url) else {
            continue;
        };
        let names = match type_url {
            ENDPOINTS | ROUTES => subscribed.get(type_url).cloned().unwrap_or_default(),
            _ => BTreeSet::new(),
        };
        let outcome = match held.absorb(&response) {
            Err(reason) => Err(reason),
            Ok(previous) => {
                held.versions.insert(type_url, response.version_info.clone());
                match held.config() {
                    None => Ok(()),
                    Some(config) => match router.apply(config).await {
                        Ok(()) => Ok(()),
                        Err(err) => {
                            held.undo(type_url, previous);
                            Err(err.to_string())
                        }
                    },
                }
            }
        };
        let accepted_version = held.versions.get(type_url).cloned().unwrap_or_default();
        let ack = match outcome {
            Ok(()) => send(
                type_url,
                &names,
                response.version_info.clone(),
                response.nonce.clone(),
                None,
            ),
            Err(reason) => {
                tracing::warn!(type_url, version = %response.version_info, %reason, "rejected a routing update");
                send(
                    type_url,
                    &names,
                    accepted_version,
                    response.nonce.clone(),
                    Some(reason),
                )
            }
        };
        requests.send(ack).await.map_err(gone)?;
        // Follow what the listeners and clusters name.
        for (dependent, wanted) in [(ROUTES, held.route_names()), (ENDPOINTS, held.eds_names())] {
            if subscribed.get(dependent) != Some(&wanted) {
                let version = held.versions.get(dependent).cloned().unwrap_or_default();
                requests
                    .send(send(dependent, &wanted, version, String::new(), None))
                    .await
                    .map_err(gone)?;
                subscribed.insert(dependent, wanted);
            }
        }
    }
}

/// Follows the feed for as long as the process runs, reconnecting with
/// backoff; the router keeps its last good config while disconnected.
pub async fn follow(router: Router, options: XdsOptions) {
    let mut backoff = Duration::from_millis(200);
    loop {
        match session(&router, &options).await {
            Ok(()) => backoff = Duration::from_millis(200),
            Err(reason) => tracing::warn!(%reason, "routing feed unavailable; retrying"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}
