//! Versioned snapshots of the feed. Every resource carries the version of
//! the snapshot in which its content last changed, so a stream sends only
//! what changed (and delta clients learn per-resource versions).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use envoy_types::pb::google::protobuf::Any;

use crate::translate::{Resource, Resources};

/// One resource at a version.
#[derive(Clone, Debug, PartialEq)]
pub struct Versioned {
    pub resource: Resource,
    /// The snapshot version in which its content last changed.
    pub version: u64,
}

/// The whole feed at one version.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snapshot {
    /// Grows by one with every change; 0 is the empty feed.
    pub version: u64,
    by_type: BTreeMap<&'static str, BTreeMap<String, Versioned>>,
}

/// What a client subscribed to, for one resource type.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Subscription {
    /// Every resource meant for wildcard subscribers.
    pub wildcard: bool,
    /// These by name (in addition).
    pub names: BTreeSet<String>,
}

impl Subscription {
    /// A subscription from resource names as xDS sends them: `*` (or, on a
    /// stream's first request, no names at all) means wildcard.
    pub fn from_names<'a>(names: impl IntoIterator<Item = &'a String>, first: bool) -> Subscription {
        let mut subscription = Subscription::default();
        for name in names {
            if name == "*" {
                subscription.wildcard = true;
            } else {
                subscription.names.insert(name.clone());
            }
        }
        if first && subscription.names.is_empty() {
            subscription.wildcard = true;
        }
        subscription
    }
}

impl Snapshot {
    /// The snapshot after `self` with `resources`, or `None` when nothing
    /// changed (no version is spent on a no-op).
    pub fn next(&self, resources: Resources) -> Option<Snapshot> {
        let version = self.version + 1;
        let mut changed = false;
        let mut by_type = BTreeMap::new();
        for (type_url, items) in resources {
            let previous = self.by_type.get(type_url);
            changed |= previous.map_or(0, BTreeMap::len) != items.len();
            let items: BTreeMap<String, Versioned> = items
                .into_iter()
                .map(|(name, resource)| {
                    let kept = previous
                        .and_then(|p| p.get(&name))
                        .filter(|old| old.resource == resource)
                        .map(|old| old.version);
                    changed |= kept.is_none();
                    let versioned = Versioned {
                        resource,
                        version: kept.unwrap_or(version),
                    };
                    (name, versioned)
                })
                .collect();
            by_type.insert(type_url, items);
        }
        changed |= self.by_type.keys().any(|t| !by_type.contains_key(t));
        changed.then_some(Snapshot { version, by_type })
    }

    /// The resources of `type_url` a client with `subscription` gets;
    /// private ones only when `trusted`.
    pub fn select(
        &self,
        type_url: &str,
        subscription: &Subscription,
        trusted: bool,
    ) -> BTreeMap<&str, &Versioned> {
        let Some(items) = self.by_type.get(type_url) else {
            return BTreeMap::new();
        };
        items
            .iter()
            .filter(|(name, v)| {
                (trusted || !v.resource.private)
                    && ((subscription.wildcard && v.resource.in_wildcard)
                        || subscription.names.contains(*name))
            })
            .map(|(name, v)| (name.as_str(), v))
            .collect()
    }

    /// Every resource of a type (for tests and diagnostics).
    pub fn resources(&self, type_url: &str) -> impl Iterator<Item = (&str, &Any)> {
        self.by_type
            .get(type_url)
            .into_iter()
            .flatten()
            .map(|(name, v)| (name.as_str(), &v.resource.body))
    }
}

/// A shared, swappable snapshot.
pub type SharedSnapshot = Arc<Snapshot>;
