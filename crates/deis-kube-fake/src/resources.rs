//! The resource types the fake serves, and parsing of API paths into them.

/// One served resource type.
#[derive(Debug)]
pub(crate) struct ResDef {
    /// API group; `""` is the core (legacy) group under `/api`.
    pub(crate) group: &'static str,
    pub(crate) version: &'static str,
    /// Plural resource name, as in the path.
    pub(crate) plural: &'static str,
    pub(crate) singular: &'static str,
    pub(crate) kind: &'static str,
    pub(crate) namespaced: bool,
    /// Whether the type has a `status` subresource (so writes to the main resource keep the
    /// stored status, like the real server).
    pub(crate) status_subresource: bool,
}

macro_rules! res {
    ($group:expr, $version:expr, $plural:expr, $singular:expr, $kind:expr, $ns:expr, $status:expr) => {
        ResDef {
            group: $group,
            version: $version,
            plural: $plural,
            singular: $singular,
            kind: $kind,
            namespaced: $ns,
            status_subresource: $status,
        }
    };
}

/// Every resource type the fake serves. Indices into this table are stable.
pub(crate) static RESOURCES: &[ResDef] = &[
    res!("", "v1", "namespaces", "namespace", "Namespace", false, true),
    res!("", "v1", "nodes", "node", "Node", false, false),
    res!("", "v1", "pods", "pod", "Pod", true, true),
    res!("", "v1", "services", "service", "Service", true, true),
    res!("", "v1", "secrets", "secret", "Secret", true, false),
    res!("", "v1", "configmaps", "configmap", "ConfigMap", true, false),
    res!("", "v1", "events", "event", "Event", true, false),
    res!(
        "",
        "v1",
        "serviceaccounts",
        "serviceaccount",
        "ServiceAccount",
        true,
        false
    ),
    res!(
        "apps",
        "v1",
        "deployments",
        "deployment",
        "Deployment",
        true,
        true
    ),
    res!(
        "apps",
        "v1",
        "replicasets",
        "replicaset",
        "ReplicaSet",
        true,
        true
    ),
    res!(
        "autoscaling",
        "v2",
        "horizontalpodautoscalers",
        "horizontalpodautoscaler",
        "HorizontalPodAutoscaler",
        true,
        true
    ),
    res!(
        "discovery.k8s.io",
        "v1",
        "endpointslices",
        "endpointslice",
        "EndpointSlice",
        true,
        false
    ),
    res!("batch", "v1", "jobs", "job", "Job", true, true),
    res!(
        "policy",
        "v1",
        "poddisruptionbudgets",
        "poddisruptionbudget",
        "PodDisruptionBudget",
        true,
        true
    ),
];

/// Indices of the resource types the controllers touch.
pub(crate) const NAMESPACES: usize = 0;
pub(crate) const NODES: usize = 1;
pub(crate) const PODS: usize = 2;
pub(crate) const SERVICES: usize = 3;
pub(crate) const SECRETS: usize = 4;
pub(crate) const EVENTS: usize = 6;
pub(crate) const DEPLOYMENTS: usize = 8;
pub(crate) const REPLICASETS: usize = 9;
pub(crate) const ENDPOINTSLICES: usize = 11;
pub(crate) const JOBS: usize = 12;

impl ResDef {
    /// `apiVersion` of the objects, e.g. `v1` or `apps/v1`.
    pub(crate) fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The path prefix of the group version, e.g. `/api/v1` or `/apis/apps/v1`.
    #[cfg(test)]
    pub(crate) fn prefix(&self) -> String {
        if self.group.is_empty() {
            format!("/api/{}", self.version)
        } else {
            format!("/apis/{}/{}", self.group, self.version)
        }
    }

    /// The name used in messages, e.g. `deployments.apps` or `pods`.
    pub(crate) fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// The API path of one object.
    #[cfg(test)]
    pub(crate) fn object_path(&self, ns: &str, name: &str) -> String {
        if self.namespaced {
            format!("{}/namespaces/{ns}/{}/{name}", self.prefix(), self.plural)
        } else {
            format!("{}/{}/{name}", self.prefix(), self.plural)
        }
    }
}

/// What an API path addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    /// Index into [`RESOURCES`].
    pub(crate) res: usize,
    /// Namespace from the path; `None` for cluster-scoped types and for all-namespace collections.
    pub(crate) ns: Option<String>,
    /// Object name; `None` for a collection.
    pub(crate) name: Option<String>,
    /// Subresource such as `status`, `scale` or `log`.
    pub(crate) sub: Option<String>,
}

impl Target {
    pub(crate) fn def(&self) -> &'static ResDef {
        &RESOURCES[self.res]
    }
}

/// Why a path could not be resolved.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum PathError {
    /// Not an `/api` or `/apis` resource path, or a group version the fake does not serve.
    NotFound,
    /// A group version that exists but no such resource in it.
    UnknownResource(String),
}

fn find(group: &str, version: &str, plural: &str) -> Option<usize> {
    RESOURCES
        .iter()
        .position(|r| r.group == group && r.version == version && r.plural == plural)
}

/// Whether the fake serves this group version.
pub(crate) fn serves_group_version(group: &str, version: &str) -> bool {
    RESOURCES.iter().any(|r| r.group == group && r.version == version)
}

/// Parses a resource path such as `/apis/apps/v1/namespaces/a/deployments/web/scale`.
pub(crate) fn parse_path(path: &str) -> Result<Target, PathError> {
    let segs: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    let (group, version, rest) = match segs.as_slice() {
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return Err(PathError::NotFound),
    };
    if !serves_group_version(group, version) {
        return Err(PathError::NotFound);
    }
    if rest.iter().any(|s| s.is_empty()) || rest.is_empty() {
        return Err(PathError::NotFound);
    }
    let lookup = |plural: &str| {
        find(group, version, plural).ok_or_else(|| PathError::UnknownResource(plural.to_string()))
    };
    let owned = |s: &str| Some(s.to_string());
    // Namespaced resources under /namespaces/{ns}/{plural}/...
    if rest[0] == "namespaces" && rest.len() >= 3 {
        let res = lookup(rest[2]);
        match res {
            Ok(res) if RESOURCES[res].namespaced => {
                let ns = owned(rest[1]);
                return match &rest[3..] {
                    [] => Ok(Target {
                        res,
                        ns,
                        name: None,
                        sub: None,
                    }),
                    [name] => Ok(Target {
                        res,
                        ns,
                        name: owned(name),
                        sub: None,
                    }),
                    [name, sub] => Ok(Target {
                        res,
                        ns,
                        name: owned(name),
                        sub: owned(sub),
                    }),
                    _ => Err(PathError::NotFound),
                };
            }
            // `/api/v1/namespaces/{name}/status` and `/finalize`: subresources of a Namespace.
            _ if group.is_empty() && rest.len() == 3 && matches!(rest[2], "status" | "finalize") => {
                return Ok(Target {
                    res: NAMESPACES,
                    ns: None,
                    name: owned(rest[1]),
                    sub: owned(rest[2]),
                });
            }
            Ok(_) => return Err(PathError::NotFound),
            Err(e) => return Err(e),
        }
    }
    let res = lookup(rest[0])?;
    match &rest[1..] {
        [] => Ok(Target {
            res,
            ns: None,
            name: None,
            sub: None,
        }),
        // A name without a namespace only addresses cluster-scoped objects.
        [name] if !RESOURCES[res].namespaced => Ok(Target {
            res,
            ns: None,
            name: owned(name),
            sub: None,
        }),
        [name, sub] if !RESOURCES[res].namespaced => Ok(Target {
            res,
            ns: None,
            name: owned(name),
            sub: owned(sub),
        }),
        _ => Err(PathError::NotFound),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        let t = parse_path("/apis/apps/v1/namespaces/a/deployments/web/scale").unwrap();
        assert_eq!(t.def().kind, "Deployment");
        assert_eq!(t.ns.as_deref(), Some("a"));
        assert_eq!(t.name.as_deref(), Some("web"));
        assert_eq!(t.sub.as_deref(), Some("scale"));
        let t = parse_path("/api/v1/namespaces").unwrap();
        assert_eq!((t.res, t.name), (NAMESPACES, None));
        let t = parse_path("/api/v1/namespaces/a").unwrap();
        assert_eq!((t.res, t.name.as_deref()), (NAMESPACES, Some("a")));
        let t = parse_path("/api/v1/namespaces/a/status").unwrap();
        assert_eq!((t.res, t.sub.as_deref()), (NAMESPACES, Some("status")));
        let t = parse_path("/api/v1/pods").unwrap();
        assert_eq!((t.res, t.ns), (PODS, None));
        let t = parse_path("/api/v1/nodes/n1").unwrap();
        assert_eq!((t.res, t.name.as_deref()), (NODES, Some("n1")));
        assert_eq!(
            parse_path("/api/v1/namespaces/a/widgets"),
            Err(PathError::UnknownResource("widgets".into()))
        );
        assert_eq!(
            parse_path("/apis/example.com/v1/things"),
            Err(PathError::NotFound)
        );
        assert_eq!(parse_path("/api/v1/pods/x"), Err(PathError::NotFound));
        let t = parse_path("/apis/discovery.k8s.io/v1/namespaces/a/endpointslices").unwrap();
        assert_eq!(t.res, ENDPOINTSLICES);
        for (i, r) in RESOURCES.iter().enumerate() {
            assert_eq!(parse_path(&r.object_path("ns", "x")).unwrap().res, i);
        }
    }
}
