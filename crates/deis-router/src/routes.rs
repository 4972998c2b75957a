//! Route tables compiled for lookup: virtual hosts indexed by domain the way
//! Envoy matches them, routes with their clusters already resolved.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, StatusCode};
use ipnet::IpNet;

use crate::config::{PathMatch, RouteAction, RouteTable};
use crate::metrics::{Stats, VhostStats};
use crate::pool::ClusterRt;
use crate::router::ApplyError;

/// A route table ready for per-request lookup.
pub(crate) struct RouteTableRt {
    exact: HashMap<Box<str>, usize>,
    /// `*.suffix` wildcards keyed by the suffix (with its dot), grouped by
    /// suffix length, longest first.
    suffixes: Vec<(usize, HashMap<Box<str>, usize>)>,
    /// `prefix.*` wildcards keyed by the prefix (with its dot), longest first.
    prefixes: Vec<(usize, HashMap<Box<str>, usize>)>,
    any: Option<usize>,
    vhosts: Vec<VhostRt>,
}

pub(crate) struct VhostRt {
    pub(crate) name: Arc<str>,
    /// Its request metrics (kept across configurations).
    pub(crate) stats: Arc<VhostStats>,
    allow: Option<Vec<IpNet>>,
    routes: Vec<RouteRt>,
}

struct RouteRt {
    path: PathMatch,
    action: ActionRt,
}

pub(crate) enum ActionRt {
    Forward {
        /// `None`: the configuration has no such cluster (503).
        cluster: Option<Arc<ClusterRt>>,
        /// `None` or zero: no limit (zero disables it, as in Envoy).
        timeout: Option<Duration>,
        retries: u32,
    },
    Redirect {
        scheme: Option<Box<str>>,
        port: Option<u16>,
        status: StatusCode,
    },
    Respond {
        status: StatusCode,
        content_type: Option<HeaderValue>,
        body: Bytes,
    },
}

impl RouteTableRt {
    /// Compiles and validates a table; `clusters` resolves forward targets,
    /// `stats` the virtual hosts' metrics.
    pub(crate) fn compile(
        name: &str,
        table: &RouteTable,
        clusters: &HashMap<String, Arc<ClusterRt>>,
        stats: &Stats,
    ) -> Result<RouteTableRt, ApplyError> {
        let invalid = |message: String| ApplyError::InvalidRoute {
            table: name.to_owned(),
            message,
        };
        let mut exact = HashMap::new();
        let mut suffixes: HashMap<usize, HashMap<Box<str>, usize>> = HashMap::new();
        let mut prefixes: HashMap<usize, HashMap<Box<str>, usize>> = HashMap::new();
        let mut any = None;
        let mut seen: HashMap<String, &str> = HashMap::new();
        let mut vhosts = Vec::with_capacity(table.virtual_hosts.len());
        for (index, vhost) in table.virtual_hosts.iter().enumerate() {
            for domain in &vhost.domains {
                let domain = domain.trim().to_ascii_lowercase();
                match seen.entry(domain.clone()) {
                    Entry::Occupied(first) => {
                        return Err(invalid(format!(
                            "domain {domain:?} appears in virtual hosts {:?} and {:?}",
                            first.get(),
                            vhost.name
                        )));
                    }
                    Entry::Vacant(slot) => {
                        slot.insert(&vhost.name);
                    }
                }
                if domain == "*" {
                    any = Some(index);
                } else if let Some(suffix) = domain.strip_prefix('*') {
                    suffixes
                        .entry(suffix.len())
                        .or_default()
                        .insert(suffix.into(), index);
                } else if let Some(prefix) = domain.strip_suffix('*') {
                    prefixes
                        .entry(prefix.len())
                        .or_default()
                        .insert(prefix.into(), index);
                } else {
                    exact.insert(domain.into_boxed_str(), index);
                }
            }
            let mut routes = Vec::with_capacity(vhost.routes.len());
            for route in &vhost.routes {
                let action = match &route.action {
                    RouteAction::Forward {
                        cluster,
                        timeout,
                        retries,
                    } => ActionRt::Forward {
                        cluster: clusters.get(cluster).cloned(),
                        timeout: timeout.filter(|t| !t.is_zero()),
                        retries: *retries,
                    },
                    RouteAction::Redirect { scheme, port, status } => {
                        if !matches!(status, 301 | 302 | 303 | 307 | 308) {
                            return Err(invalid(format!(
                                "virtual host {:?} redirects with status {status}, which is not a redirect status",
                                vhost.name
                            )));
                        }
                        if let Some(scheme) = scheme
                            && !valid_scheme(scheme)
                        {
                            return Err(invalid(format!(
                                "virtual host {:?} redirects to the invalid scheme {scheme:?}",
                                vhost.name
                            )));
                        }
                        ActionRt::Redirect {
                            scheme: scheme.as_deref().map(|s| s.to_ascii_lowercase().into_boxed_str()),
                            port: *port,
                            status: StatusCode::from_u16(*status)
                                .map_err(|_| invalid(format!("bad redirect status {status}")))?,
                        }
                    }
                    RouteAction::Respond {
                        status,
                        content_type,
                        body,
                    } => {
                        let status = StatusCode::from_u16(*status)
                            .ok()
                            .filter(|s| (200..600).contains(&s.as_u16()))
                            .ok_or_else(|| {
                                invalid(format!(
                                    "virtual host {:?} responds with status {status}, outside 200 to 599",
                                    vhost.name
                                ))
                            })?;
                        let content_type = match content_type {
                            Some(ct) => Some(HeaderValue::from_str(ct).map_err(|_| {
                                invalid(format!(
                                    "virtual host {:?} responds with the invalid content type {ct:?}",
                                    vhost.name
                                ))
                            })?),
                            None => None,
                        };
                        ActionRt::Respond {
                            status,
                            content_type,
                            body: body.clone(),
                        }
                    }
                };
                routes.push(RouteRt {
                    path: route.path.clone(),
                    action,
                });
            }
            let name: Arc<str> = Arc::from(vhost.name.as_str());
            vhosts.push(VhostRt {
                stats: stats.vhost(&name),
                name,
                allow: vhost.allow.clone(),
                routes,
            });
        }
        let by_length_desc = |map: HashMap<usize, HashMap<Box<str>, usize>>| {
            let mut groups: Vec<_> = map.into_iter().collect();
            groups.sort_by_key(|group| std::cmp::Reverse(group.0));
            groups
        };
        Ok(RouteTableRt {
            exact,
            suffixes: by_length_desc(suffixes),
            prefixes: by_length_desc(prefixes),
            any,
            vhosts,
        })
    }

    /// The virtual host for a lower-case host without port: exact, then the
    /// longest `*.suffix`, then the longest `prefix.*`, then `*`. A wildcard
    /// never matches an empty remainder.
    pub(crate) fn find(&self, host: &str) -> Option<&VhostRt> {
        let index = self
            .exact
            .get(host)
            .copied()
            .or_else(|| {
                self.suffixes.iter().find_map(|(len, map)| {
                    let start = host.len().checked_sub(*len).filter(|s| *s > 0)?;
                    map.get(host.get(start..)?).copied()
                })
            })
            .or_else(|| {
                self.prefixes.iter().find_map(|(len, map)| {
                    if host.len() <= *len {
                        return None;
                    }
                    map.get(host.get(..*len)?).copied()
                })
            })
            .or(self.any)?;
        self.vhosts.get(index)
    }
}

impl VhostRt {
    /// Whether the client may use this virtual host (`allow` unset: anyone).
    pub(crate) fn allows(&self, client: IpAddr) -> bool {
        match &self.allow {
            None => true,
            Some(networks) => networks.iter().any(|net| net.contains(&client)),
        }
    }

    /// The first route whose path matches (query excluded).
    pub(crate) fn route(&self, path: &str) -> Option<&ActionRt> {
        self.routes
            .iter()
            .find(|route| match &route.path {
                PathMatch::Prefix(prefix) => path.starts_with(prefix.as_str()),
                PathMatch::Exact(exact) => path == exact,
            })
            .map(|route| &route.action)
    }
}

fn valid_scheme(scheme: &str) -> bool {
    let mut bytes = scheme.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Route, VirtualHost};

    fn vhost(name: &str, domains: &[&str]) -> VirtualHost {
        VirtualHost {
            name: name.into(),
            domains: domains.iter().map(|d| d.to_string()).collect(),
            allow: None,
            routes: vec![Route {
                path: PathMatch::Prefix("/".into()),
                action: RouteAction::Respond {
                    status: 200,
                    content_type: None,
                    body: Bytes::new(),
                },
            }],
        }
    }

    fn table(vhosts: Vec<VirtualHost>) -> RouteTableRt {
        RouteTableRt::compile(
            "t",
            &RouteTable {
                virtual_hosts: vhosts,
            },
            &HashMap::new(),
            &Stats::default(),
        )
        .unwrap()
    }

    fn name(t: &RouteTableRt, host: &str) -> Option<String> {
        t.find(host).map(|v| v.name.to_string())
    }

    #[test]
    fn envoy_domain_order() {
        let t = table(vec![
            vhost("any", &["*"]),
            vhost("prefix", &["www.*"]),
            vhost("short", &["*.com"]),
            vhost("long", &["*.example.com"]),
            vhost("exact", &["a.example.com"]),
        ]);
        assert_eq!(name(&t, "a.example.com").as_deref(), Some("exact"));
        assert_eq!(name(&t, "b.example.com").as_deref(), Some("long"));
        assert_eq!(name(&t, "x.y.example.com").as_deref(), Some("long"));
        assert_eq!(name(&t, "example.com").as_deref(), Some("short"));
        assert_eq!(name(&t, "www.example.org").as_deref(), Some("prefix"));
        assert_eq!(name(&t, "www.example.com").as_deref(), Some("long"));
        assert_eq!(name(&t, "other").as_deref(), Some("any"));
        assert_eq!(name(&t, ".com").as_deref(), Some("any"));
    }

    #[test]
    fn no_match_without_star() {
        let t = table(vec![vhost("a", &["a.example.com", "*.a.example.com"])]);
        assert!(t.find("b.example.com").is_none());
        assert!(t.find("").is_none());
        assert!(t.find(".a.example.com").is_none());
    }

    #[test]
    fn duplicate_domain_rejected() {
        let result = RouteTableRt::compile(
            "t",
            &RouteTable {
                virtual_hosts: vec![vhost("a", &["x"]), vhost("b", &["X"])],
            },
            &HashMap::new(),
            &Stats::default(),
        );
        assert!(matches!(result, Err(ApplyError::InvalidRoute { .. })));
    }
}
