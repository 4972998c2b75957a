//! The routing state as Envoy resources: a pure function, so that what real
//! Envoy and the embedded router receive can be tested without either.
//!
//! Naming: platform resources are prefixed `deis.` (app names cannot
//! contain a dot), so they never collide with an app's own resources. Per
//! app there is a cluster and an endpoint assignment named after the app,
//! and, for proxyless gRPC clients (`xds:///<app>`), an API listener and a
//! route configuration named after the app.

use std::collections::BTreeMap;
use std::time::Duration;

use deis_routing::{AppRoute, MAINTENANCE_PAGE, RouterSettings, RoutingState, TlsCertificate};
use envoy_types::pb::envoy::config::cluster::v3::{Cluster, cluster};
use envoy_types::pb::envoy::config::core::v3::{
    Address, AggregatedConfigSource, ApiVersion, CidrRange, ConfigSource, DataSource, HeaderValue,
    HeaderValueOption, Locality, SocketAddress, TransportSocket, address, config_source, data_source,
    socket_address, transport_socket,
};
use envoy_types::pb::envoy::config::endpoint::v3::{
    ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints, lb_endpoint,
};
use envoy_types::pb::envoy::config::listener::v3::{
    ApiListener, Filter, FilterChain, FilterChainMatch, Listener, ListenerFilter, filter, listener_filter,
};
use envoy_types::pb::envoy::config::rbac::v3::{Permission, Policy, Principal, Rbac as RbacRules};
use envoy_types::pb::envoy::config::rbac::v3::{permission, principal, rbac};
use envoy_types::pb::envoy::config::route::v3::{
    DirectResponseAction, RedirectAction, RetryPolicy, Route, RouteAction, RouteConfiguration, RouteMatch,
    VirtualHost, redirect_action, retry_policy, route, route_action, route_match,
};
use envoy_types::pb::envoy::extensions::filters::http::rbac::v3::{Rbac, RbacPerRoute};
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::listener::tls_inspector::v3::TlsInspector;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, HttpFilter, Rds, http_connection_manager, http_filter,
};
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::{TcpProxy, tcp_proxy};
use envoy_types::pb::envoy::extensions::retry::host::previous_hosts::v3::PreviousHostsPredicate;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    CommonTlsContext, DownstreamTlsContext, TlsCertificate as EnvoyTlsCertificate,
};
use envoy_types::pb::google::protobuf::{Any, BoolValue, Duration as PbDuration, UInt32Value};
use envoy_types::util::pack_any;

/// Type URLs of the four resource types, in make-before-break order.
pub const CLUSTER: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
pub const ENDPOINTS: &str = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";
pub const LISTENER: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";
pub const ROUTES: &str = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";
/// Clusters and endpoints before the listeners and routes that use them.
pub const ORDER: [&str; 4] = [CLUSTER, ENDPOINTS, LISTENER, ROUTES];

/// Names of the platform's own resources.
pub const HTTP: &str = "deis.http";
pub const HTTPS: &str = "deis.https";
pub const BUILDER: &str = "deis.builder";
/// The catch-all virtual host (404, and `/healthz` for load balancers).
pub const DEFAULT_HOST: &str = "deis.default";

const HCM_FILTER: &str = "envoy.filters.network.http_connection_manager";
const RBAC_FILTER: &str = "envoy.filters.http.rbac";
const ROUTER_FILTER: &str = "envoy.filters.http.router";
const TLS_INSPECTOR: &str = "envoy.filters.listener.tls_inspector";
const TCP_PROXY_FILTER: &str = "envoy.filters.network.tcp_proxy";
/// Deis's builder proxy timeouts (`router.deis.io/nginx.{connect,tcp}Timeout`).
const BUILDER_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const BUILDER_IDLE_TIMEOUT: Duration = Duration::from_secs(1200);

/// One translated resource.
#[derive(Clone, Debug, PartialEq)]
pub struct Resource {
    pub name: String,
    pub body: Any,
    /// Sent to wildcard subscribers (Envoy's LDS and CDS). API listeners
    /// and their routes are only sent when named (gRPC clients).
    pub in_wildcard: bool,
    /// Holds private keys or the router's own layout: only for clients that
    /// present the platform's xDS token.
    pub private: bool,
}

/// Every resource of the feed, by type URL and name.
pub type Resources = BTreeMap<&'static str, BTreeMap<String, Resource>>;

fn duration(d: Duration) -> PbDuration {
    PbDuration {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(d.subsec_nanos()).unwrap_or(0),
    }
}

fn ads() -> ConfigSource {
    ConfigSource {
        resource_api_version: ApiVersion::V3 as i32,
        config_source_specifier: Some(config_source::ConfigSourceSpecifier::Ads(
            AggregatedConfigSource {},
        )),
        ..Default::default()
    }
}

fn socket(ip: std::net::IpAddr, port: u16) -> Address {
    Address {
        address: Some(address::Address::SocketAddress(SocketAddress {
            address: ip.to_string(),
            port_specifier: Some(socket_address::PortSpecifier::PortValue(u32::from(port))),
            ..Default::default()
        })),
    }
}

fn inline(text: &str) -> DataSource {
    DataSource {
        specifier: Some(data_source::Specifier::InlineString(text.to_owned())),
        ..Default::default()
    }
}

fn http_filter(name: &str, config: Any) -> HttpFilter {
    HttpFilter {
        name: name.into(),
        config_type: Some(http_filter::ConfigType::TypedConfig(config)),
        ..Default::default()
    }
}

/// The HTTP connection manager of the HTTP and HTTPS listeners: Deis's
/// proxy headers (`X-Forwarded-*`, a request id), WebSocket upgrades,
/// hosts matched without their port, the whitelist filter, the router.
fn edge_connection_manager(stat_prefix: &str, routes: &str) -> HttpConnectionManager {
    HttpConnectionManager {
        stat_prefix: stat_prefix.into(),
        codec_type: http_connection_manager::CodecType::Auto as i32,
        route_specifier: Some(http_connection_manager::RouteSpecifier::Rds(Rds {
            config_source: Some(ads()),
            route_config_name: routes.into(),
        })),
        http_filters: vec![
            // No rules here: each app with a whitelist brings its own.
            http_filter(RBAC_FILTER, pack_any(Rbac::default())),
            http_filter(ROUTER_FILTER, pack_any(Router::default())),
        ],
        use_remote_address: Some(BoolValue { value: true }),
        append_x_forwarded_port: true,
        generate_request_id: Some(BoolValue { value: true }),
        upgrade_configs: vec![http_connection_manager::UpgradeConfig {
            upgrade_type: "websocket".into(),
            ..Default::default()
        }],
        strip_port_mode: Some(http_connection_manager::StripPortMode::StripAnyHostPort(true)),
        ..Default::default()
    }
}

fn connection_manager_filter(hcm: HttpConnectionManager) -> Filter {
    Filter {
        name: HCM_FILTER.into(),
        config_type: Some(filter::ConfigType::TypedConfig(pack_any(hcm))),
    }
}

/// A certificate's chain and key with every server name it is served for.
/// One filter chain per distinct certificate: Envoy refuses two chains that
/// match the same name.
struct ChainGroup<'a> {
    name: String,
    cert: &'a TlsCertificate,
    server_names: Vec<String>,
}

fn certificate_groups<'a>(settings: &'a RouterSettings, state: &'a RoutingState) -> Vec<ChainGroup<'a>> {
    let mut groups: Vec<ChainGroup<'a>> = Vec::new();
    let mut claimed = std::collections::BTreeSet::new();
    let all = state.apps.values().flat_map(|app| app.certificates.iter());
    let platform = settings.platform_certificate.as_ref();
    for cert in all.chain(platform) {
        let names: Vec<String> = if platform.is_some_and(|p| std::ptr::eq(p, cert)) {
            vec![format!("*.{}", settings.platform_domain)]
        } else {
            cert.server_names.clone()
        };
        // A name is served by the first certificate that claims it.
        let names: Vec<String> = names.into_iter().filter(|n| claimed.insert(n.clone())).collect();
        if names.is_empty() {
            continue;
        }
        match groups.iter_mut().find(|g| {
            g.cert.certificate_chain == cert.certificate_chain && g.cert.private_key == cert.private_key
        }) {
            Some(group) => group.server_names.extend(names),
            None => groups.push(ChainGroup {
                name: format!("{}-{}", cert.name, groups.len() + 1),
                cert,
                server_names: names,
            }),
        }
    }
    for group in &mut groups {
        group.server_names.sort();
    }
    groups
}

fn tls_socket(cert: &TlsCertificate) -> TransportSocket {
    let context = DownstreamTlsContext {
        common_tls_context: Some(CommonTlsContext {
            tls_certificates: vec![EnvoyTlsCertificate {
                certificate_chain: Some(inline(&cert.certificate_chain)),
                private_key: Some(inline(&cert.private_key)),
                ..Default::default()
            }],
            alpn_protocols: vec!["h2".into(), "http/1.1".into()],
            ..Default::default()
        }),
        ..Default::default()
    };
    TransportSocket {
        name: "envoy.transport_sockets.tls".into(),
        config_type: Some(transport_socket::ConfigType::TypedConfig(pack_any(context))),
    }
}

fn listeners(settings: &RouterSettings, state: &RoutingState) -> Vec<Resource> {
    let mut out = Vec::new();
    let http = Listener {
        name: HTTP.into(),
        address: Some(socket(settings.bind, settings.http_port)),
        filter_chains: vec![FilterChain {
            filters: vec![connection_manager_filter(edge_connection_manager("http", HTTP))],
            ..Default::default()
        }],
        ..Default::default()
    };
    out.push(private_resource(HTTP, pack_any(http), true));

    let groups = certificate_groups(settings, state);
    if !groups.is_empty() {
        let https = Listener {
            name: HTTPS.into(),
            address: Some(socket(settings.bind, settings.https_port)),
            listener_filters: vec![ListenerFilter {
                name: TLS_INSPECTOR.into(),
                config_type: Some(listener_filter::ConfigType::TypedConfig(pack_any(
                    TlsInspector::default(),
                ))),
                ..Default::default()
            }],
            filter_chains: groups
                .iter()
                .map(|group| FilterChain {
                    name: group.name.clone(),
                    filter_chain_match: Some(FilterChainMatch {
                        server_names: group.server_names.clone(),
                        ..Default::default()
                    }),
                    transport_socket: Some(tls_socket(group.cert)),
                    filters: vec![connection_manager_filter(edge_connection_manager("https", HTTPS))],
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        };
        out.push(private_resource(HTTPS, pack_any(https), true));
    }

    if let Some(builder) = settings.builder {
        let proxy = TcpProxy {
            stat_prefix: "builder".into(),
            cluster_specifier: Some(tcp_proxy::ClusterSpecifier::Cluster(BUILDER.into())),
            idle_timeout: Some(duration(BUILDER_IDLE_TIMEOUT)),
            ..Default::default()
        };
        let listener = Listener {
            name: BUILDER.into(),
            address: Some(socket(settings.bind, builder.port)),
            filter_chains: vec![FilterChain {
                filters: vec![Filter {
                    name: TCP_PROXY_FILTER.into(),
                    config_type: Some(filter::ConfigType::TypedConfig(pack_any(proxy))),
                }],
                ..Default::default()
            }],
            ..Default::default()
        };
        out.push(private_resource(BUILDER, pack_any(listener), true));
    }

    // Proxyless gRPC: `xds:///<app>` resolves through an API listener.
    for name in state.apps.keys() {
        let hcm = HttpConnectionManager {
            stat_prefix: name.clone(),
            route_specifier: Some(http_connection_manager::RouteSpecifier::Rds(Rds {
                config_source: Some(ads()),
                route_config_name: name.clone(),
            })),
            http_filters: vec![http_filter(ROUTER_FILTER, pack_any(Router::default()))],
            ..Default::default()
        };
        let listener = Listener {
            name: name.clone(),
            api_listener: Some(ApiListener {
                api_listener: Some(pack_any(hcm)),
            }),
            ..Default::default()
        };
        out.push(Resource {
            name: name.clone(),
            body: pack_any(listener),
            in_wildcard: false,
            private: false,
        });
    }
    out
}

fn private_resource(name: &str, body: Any, in_wildcard: bool) -> Resource {
    Resource {
        name: name.into(),
        body,
        in_wildcard,
        private: true,
    }
}

fn prefix(path: &str) -> RouteMatch {
    RouteMatch {
        path_specifier: Some(route_match::PathSpecifier::Prefix(path.into())),
        ..Default::default()
    }
}

fn respond(path_match: RouteMatch, status: u32, content_type: &str, body: &str) -> Route {
    Route {
        r#match: Some(path_match),
        action: Some(route::Action::DirectResponse(DirectResponseAction {
            status,
            body: Some(inline(body)),
            ..Default::default()
        })),
        response_headers_to_add: vec![HeaderValueOption {
            header: Some(HeaderValue {
                key: "content-type".into(),
                value: content_type.into(),
                ..Default::default()
            }),
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn forward(settings: &RouterSettings, cluster: &str) -> Route {
    Route {
        r#match: Some(prefix("/")),
        action: Some(route::Action::Route(RouteAction {
            cluster_specifier: Some(route_action::ClusterSpecifier::Cluster(cluster.into())),
            timeout: Some(duration(settings.request_timeout)),
            // A process that went away between two endpoint updates: try
            // another one instead of failing the request.
            retry_policy: Some(RetryPolicy {
                retry_on: "connect-failure,reset-before-request".into(),
                num_retries: Some(UInt32Value { value: 2 }),
                retry_host_predicate: vec![retry_policy::RetryHostPredicate {
                    name: "envoy.retry_host_predicates.previous_hosts".into(),
                    config_type: Some(retry_policy::retry_host_predicate::ConfigType::TypedConfig(
                        pack_any(PreviousHostsPredicate::default()),
                    )),
                }],
                host_selection_retry_max_attempts: 3,
                ..Default::default()
            }),
            ..Default::default()
        })),
        ..Default::default()
    }
}

fn redirect_to_https(settings: &RouterSettings) -> Route {
    Route {
        r#match: Some(prefix("/")),
        action: Some(route::Action::Redirect(RedirectAction {
            scheme_rewrite_specifier: Some(redirect_action::SchemeRewriteSpecifier::SchemeRedirect(
                "https".into(),
            )),
            port_redirect: u32::from(settings.https_port),
            response_code: redirect_action::RedirectResponseCode::MovedPermanently as i32,
            ..Default::default()
        })),
        ..Default::default()
    }
}

/// Only clients from `whitelist` get through (403 otherwise).
fn whitelist_filter(app: &AppRoute) -> Option<(String, Any)> {
    if app.whitelist.is_empty() {
        return None;
    }
    let principals = app
        .whitelist
        .iter()
        .map(|net| Principal {
            identifier: Some(principal::Identifier::DirectRemoteIp(CidrRange {
                address_prefix: net.network().to_string(),
                prefix_len: Some(UInt32Value {
                    value: u32::from(net.prefix_len()),
                }),
            })),
        })
        .collect();
    let policy = Policy {
        permissions: vec![Permission {
            rule: Some(permission::Rule::Any(true)),
        }],
        principals,
        ..Default::default()
    };
    let rules = RbacRules {
        action: rbac::Action::Allow as i32,
        policies: [("whitelist".to_string(), policy)].into(),
        ..Default::default()
    };
    let per_route = RbacPerRoute {
        rbac: Some(Rbac {
            rules: Some(rules),
            ..Default::default()
        }),
    };
    Some((RBAC_FILTER.into(), pack_any(per_route)))
}

fn app_host(settings: &RouterSettings, name: &str, app: &AppRoute, plain_http: bool) -> VirtualHost {
    let mut domains = vec![settings.default_domain(name)];
    domains.extend(app.domains.iter().cloned());
    let route = if plain_http && app.https_only {
        redirect_to_https(settings)
    } else if app.maintenance {
        respond(prefix("/"), 503, "text/html; charset=utf-8", MAINTENANCE_PAGE)
    } else {
        forward(settings, name)
    };
    VirtualHost {
        name: name.into(),
        domains,
        routes: vec![route],
        typed_per_filter_config: whitelist_filter(app).into_iter().collect(),
        ..Default::default()
    }
}

fn default_host() -> VirtualHost {
    let exact = RouteMatch {
        path_specifier: Some(route_match::PathSpecifier::Path("/healthz".into())),
        ..Default::default()
    };
    VirtualHost {
        name: DEFAULT_HOST.into(),
        domains: vec!["*".into()],
        routes: vec![
            respond(exact, 200, "text/plain; charset=utf-8", "OK\n"),
            respond(
                prefix("/"),
                404,
                "text/plain; charset=utf-8",
                "No app answers at this address.\n",
            ),
        ],
        ..Default::default()
    }
}

fn route_configurations(settings: &RouterSettings, state: &RoutingState) -> Vec<Resource> {
    let mut out = Vec::new();
    for (name, plain_http) in [(HTTP, true), (HTTPS, false)] {
        let mut virtual_hosts: Vec<VirtualHost> = state
            .apps
            .iter()
            .map(|(app_name, app)| app_host(settings, app_name, app, plain_http))
            .collect();
        virtual_hosts.push(default_host());
        let config = RouteConfiguration {
            name: name.into(),
            virtual_hosts,
            ..Default::default()
        };
        out.push(private_resource(name, pack_any(config), false));
    }
    for name in state.apps.keys() {
        let config = RouteConfiguration {
            name: name.clone(),
            virtual_hosts: vec![VirtualHost {
                name: name.clone(),
                domains: vec![name.clone()],
                routes: vec![Route {
                    r#match: Some(prefix("")),
                    action: Some(route::Action::Route(RouteAction {
                        cluster_specifier: Some(route_action::ClusterSpecifier::Cluster(name.clone())),
                        ..Default::default()
                    })),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        };
        out.push(Resource {
            name: name.clone(),
            body: pack_any(config),
            in_wildcard: false,
            private: false,
        });
    }
    out
}

fn eds_cluster(name: &str, connect_timeout: Duration) -> Cluster {
    Cluster {
        name: name.into(),
        connect_timeout: Some(duration(connect_timeout)),
        cluster_discovery_type: Some(cluster::ClusterDiscoveryType::Type(
            cluster::DiscoveryType::Eds as i32,
        )),
        eds_cluster_config: Some(cluster::EdsClusterConfig {
            eds_config: Some(ads()),
            ..Default::default()
        }),
        lb_policy: cluster::LbPolicy::RoundRobin as i32,
        ..Default::default()
    }
}

fn load_assignment(name: &str, endpoints: &[std::net::SocketAddr]) -> ClusterLoadAssignment {
    let lb_endpoints: Vec<LbEndpoint> = endpoints
        .iter()
        .map(|addr| LbEndpoint {
            host_identifier: Some(lb_endpoint::HostIdentifier::Endpoint(Endpoint {
                address: Some(socket(addr.ip(), addr.port())),
                ..Default::default()
            })),
            ..Default::default()
        })
        .collect();
    ClusterLoadAssignment {
        cluster_name: name.into(),
        endpoints: if lb_endpoints.is_empty() {
            Vec::new()
        } else {
            // gRPC clients ignore a locality without a weight.
            vec![LocalityLbEndpoints {
                locality: Some(Locality {
                    zone: "local".into(),
                    ..Default::default()
                }),
                lb_endpoints,
                load_balancing_weight: Some(UInt32Value { value: 1 }),
                ..Default::default()
            }]
        },
        ..Default::default()
    }
}

fn clusters(settings: &RouterSettings, state: &RoutingState) -> Vec<Resource> {
    let mut out: Vec<Resource> = state
        .apps
        .keys()
        .map(|name| Resource {
            name: name.clone(),
            body: pack_any(eds_cluster(name, settings.connect_timeout)),
            in_wildcard: true,
            private: false,
        })
        .collect();
    if let Some(builder) = settings.builder {
        let cluster = Cluster {
            name: BUILDER.into(),
            connect_timeout: Some(duration(BUILDER_CONNECT_TIMEOUT)),
            cluster_discovery_type: Some(cluster::ClusterDiscoveryType::Type(
                cluster::DiscoveryType::Static as i32,
            )),
            load_assignment: Some(load_assignment(BUILDER, &[builder.target])),
            ..Default::default()
        };
        out.push(private_resource(BUILDER, pack_any(cluster), true));
    }
    out
}

fn load_assignments(state: &RoutingState) -> Vec<Resource> {
    state
        .apps
        .iter()
        .map(|(name, app)| Resource {
            name: name.clone(),
            body: pack_any(load_assignment(name, &app.endpoints)),
            in_wildcard: false,
            private: false,
        })
        .collect()
}

/// Translates the routing state into every resource of the feed.
pub fn translate(settings: &RouterSettings, state: &RoutingState) -> Resources {
    let mut out = Resources::new();
    for (type_url, resources) in [
        (CLUSTER, clusters(settings, state)),
        (ENDPOINTS, load_assignments(state)),
        (LISTENER, listeners(settings, state)),
        (ROUTES, route_configurations(settings, state)),
    ] {
        out.insert(
            type_url,
            resources.into_iter().map(|r| (r.name.clone(), r)).collect(),
        );
    }
    out
}
