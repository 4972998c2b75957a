//! Release summary strings (Deis's `Release.save`, deis-v2.md §3.3).

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::ConfigData;

/// Summary of release v1: `"<owner> created initial release"`.
pub fn initial_release(owner: &str) -> String {
    format!("{owner} created initial release")
}

/// Summary of a new build: `"<user> deployed <sha[:7]>"`, or the image when there is no sha.
pub fn build_deployed(user: &str, sha: &str, image: &str) -> String {
    if sha.is_empty() {
        format!("{user} deployed {image}")
    } else {
        let short: String = sha.chars().take(7).collect();
        format!("{user} deployed {short}")
    }
}

/// Summary of a config change, or `None` when nothing differs.
///
/// Parts, in Deis's order: values, limits, tags, registry, healthchecks, then
/// Hephy's termination grace periods (`"<user> changed termination grace
/// period for web, worker"`, naming every process type added, changed or
/// removed). Deis glued the limits part on without a separator (a bug); here
/// every part is joined with `" and "`.
pub fn config_change(user: &str, old: &ConfigData, new: &ConfigData) -> Option<String> {
    let mut parts = Vec::new();

    if let Some(changes) = describe(&diff(&old.values, &new.values), "") {
        parts.push(format!("{user} {changes}"));
    }

    let mut limits = Vec::new();
    if old.memory != new.memory {
        limits.push("memory");
    }
    if old.cpu != new.cpu {
        limits.push("cpu");
    }
    if !limits.is_empty() {
        parts.push(format!("{user} changed limits for {}", limits.join(", ")));
    }

    if let Some(changes) = describe(&diff(&old.tags, &new.tags), "tag ") {
        parts.push(format!("{user} {changes}"));
    }
    if let Some(changes) = describe(&diff(&old.registry, &new.registry), "registry info ") {
        parts.push(format!("{user} {changes}"));
    }
    let health = json_diff(&old.healthcheck, &new.healthcheck);
    let health = Diff {
        added: health.added.into_iter().map(default_name).collect(),
        changed: health.changed.into_iter().map(default_name).collect(),
        deleted: health.deleted.into_iter().map(default_name).collect(),
    };
    if let Some(changes) = describe(&health, "healthcheck info for proc type ") {
        parts.push(format!("{user} {changes}"));
    }
    let grace = diff(&old.termination_grace_period, &new.termination_grace_period);
    let mut types: Vec<String> = [grace.added, grace.changed, grace.deleted].concat();
    if !types.is_empty() {
        types.sort();
        parts.push(format!(
            "{user} changed termination grace period for {}",
            types.join(", ")
        ));
    }

    (!parts.is_empty()).then(|| join(&parts))
}

/// Summary of a rollback: `"<user> rolled back to v<N>"`.
pub fn rolled_back(user: &str, version: i32) -> String {
    format!("{user} rolled back to v{version}")
}

/// The 409 message for a change that changes nothing.
pub fn changed_nothing(user: &str) -> String {
    format!("{user} changed nothing - release stopped")
}

/// Summary of a release whose build failed to deploy (Deis's preset summary).
pub fn build_failed(user: &str, build_uuid: &str) -> String {
    let short: String = build_uuid.chars().take(7).collect();
    format!("{user} deployed {short} which failed")
}

/// Summary of a release whose config failed to deploy (Deis's preset summary).
pub fn config_failed(user: &str) -> String {
    format!("{user} deployed a config that failed")
}

/// Summary of a rollback that failed to deploy (Deis's preset summary).
pub fn rollback_failed(user: &str) -> String {
    format!("{user} performed roll back to a release that failed")
}

/// Joins summary parts with `" and "`.
pub fn join(parts: &[String]) -> String {
    parts.join(" and ")
}

/// Keys added, changed and deleted between two maps (Deis's `dict_diff`).
struct Diff {
    added: Vec<String>,
    changed: Vec<String>,
    deleted: Vec<String>,
}

fn diff(old: &BTreeMap<String, String>, new: &BTreeMap<String, String>) -> Diff {
    Diff {
        added: new.keys().filter(|k| !old.contains_key(*k)).cloned().collect(),
        changed: new
            .iter()
            .filter(|(k, v)| old.get(*k).is_some_and(|o| o != *v))
            .map(|(k, _)| k.clone())
            .collect(),
        deleted: old.keys().filter(|k| !new.contains_key(*k)).cloned().collect(),
    }
}

fn json_diff(old: &Map<String, Value>, new: &Map<String, Value>) -> Diff {
    // Sorted so the summary does not depend on the map's iteration order.
    let mut d = Diff {
        added: new.keys().filter(|k| !old.contains_key(*k)).cloned().collect(),
        changed: new
            .iter()
            .filter(|(k, v)| old.get(*k).is_some_and(|o| o != *v))
            .map(|(k, _)| k.clone())
            .collect(),
        deleted: old.keys().filter(|k| !new.contains_key(*k)).cloned().collect(),
    };
    d.added.sort();
    d.changed.sort();
    d.deleted.sort();
    d
}

/// Deis renders the empty healthcheck key as `default`.
fn default_name(k: String) -> String {
    if k.is_empty() { "default".to_owned() } else { k }
}

/// `"added A, B, changed C, deleted D"` with `noun` after each verb, or `None`.
fn describe(d: &Diff, noun: &str) -> Option<String> {
    let mut out = Vec::new();
    for (verb, keys) in [
        ("added", &d.added),
        ("changed", &d.changed),
        ("deleted", &d.deleted),
    ] {
        if !keys.is_empty() {
            out.push(format!("{verb} {noun}{}", keys.join(", ")));
        }
    }
    (!out.is_empty()).then(|| out.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn fixed_strings() {
        assert_eq!(initial_release("autotest"), "autotest created initial release");
        assert_eq!(
            build_deployed("alice", "e6ec1ad1fa9fbfb6a1e0d3de2e0d1e8a7a2cd1f1", "ignored"),
            "alice deployed e6ec1ad"
        );
        assert_eq!(build_deployed("alice", "abc", "img"), "alice deployed abc");
        assert_eq!(
            build_deployed("alice", "", "quay.io/deis/example:latest"),
            "alice deployed quay.io/deis/example:latest"
        );
        assert_eq!(rolled_back("bob", 3), "bob rolled back to v3");
        assert_eq!(changed_nothing("bob"), "bob changed nothing - release stopped");
        assert_eq!(
            build_failed("bob", "0123456789abcdef"),
            "bob deployed 0123456 which failed"
        );
        assert_eq!(config_failed("bob"), "bob deployed a config that failed");
        assert_eq!(
            rollback_failed("bob"),
            "bob performed roll back to a release that failed"
        );
        assert_eq!(join(&[]), "");
        assert_eq!(join(&["a".to_owned()]), "a");
        assert_eq!(join(&["a".to_owned(), "b".to_owned()]), "a and b");
    }

    #[test]
    fn nothing_changed() {
        let c = ConfigData {
            values: map(&[("A", "1")]),
            ..Default::default()
        };
        assert_eq!(config_change("alice", &c, &c.clone()), None);
        assert_eq!(
            config_change("alice", &ConfigData::default(), &ConfigData::default()),
            None
        );
    }

    #[test]
    fn values_diff() {
        let old = ConfigData {
            values: map(&[("BAZ", "1"), ("QUX", "x"), ("SAME", "s")]),
            ..Default::default()
        };
        let new = ConfigData {
            values: map(&[("FOO", "f"), ("BAR", "b"), ("BAZ", "2"), ("SAME", "s")]),
            ..Default::default()
        };
        assert_eq!(
            config_change("alice", &old, &new).as_deref(),
            Some("alice added BAR, FOO, changed BAZ, deleted QUX")
        );
        let only_deleted = ConfigData::default();
        assert_eq!(
            config_change("alice", &old, &only_deleted).as_deref(),
            Some("alice deleted BAZ, QUX, SAME")
        );
    }

    #[test]
    fn every_part() {
        let old = ConfigData {
            tags: map(&[("env", "dev"), ("old", "x")]),
            registry: map(&[("username", "a")]),
            healthcheck: json!({"web": {"livenessProbe": {"tcpSocket": {"port": 1}}}, "gone": {}})
                .as_object()
                .cloned()
                .unwrap_or_default(),
            ..Default::default()
        };
        let new = ConfigData {
            values: map(&[("NEW", "1")]),
            memory: map(&[("web", "1G")]),
            cpu: map(&[("web", "1")]),
            tags: map(&[("env", "prod"), ("rack", "1")]),
            registry: map(&[("username", "b"), ("password", "p")]),
            healthcheck: json!({"web": {"livenessProbe": {"tcpSocket": {"port": 2}}}, "": {}, "web/cmd": {}})
                .as_object()
                .cloned()
                .unwrap_or_default(),
            termination_grace_period: map(&[("web", "60")]),
        };
        assert_eq!(
            config_change("alice", &old, &new).as_deref(),
            Some(
                "alice added NEW and alice changed limits for memory, cpu \
                 and alice added tag rack, changed tag env, deleted tag old \
                 and alice added registry info password, changed registry info username \
                 and alice added healthcheck info for proc type default, web/cmd, \
                 changed healthcheck info for proc type web, deleted healthcheck info for proc type gone \
                 and alice changed termination grace period for web"
            )
        );
    }

    #[test]
    fn limits_alone() {
        let old = ConfigData::default();
        let new = ConfigData {
            cpu: map(&[("web", "500m")]),
            ..Default::default()
        };
        assert_eq!(
            config_change("bob", &old, &new).as_deref(),
            Some("bob changed limits for cpu")
        );
        let new = ConfigData {
            memory: map(&[("web", "1G")]),
            ..Default::default()
        };
        assert_eq!(
            config_change("bob", &new, &old).as_deref(),
            Some("bob changed limits for memory")
        );
    }

    #[test]
    fn termination_grace_period_alone() {
        let old = ConfigData {
            termination_grace_period: map(&[("web", "60"), ("db", "10"), ("same", "5")]),
            ..Default::default()
        };
        let new = ConfigData {
            termination_grace_period: map(&[("web", "90"), ("worker", "0"), ("same", "5")]),
            ..Default::default()
        };
        // Added, changed and removed types are all "changed", sorted.
        assert_eq!(
            config_change("bob", &old, &new).as_deref(),
            Some("bob changed termination grace period for db, web, worker")
        );
        let one = ConfigData {
            termination_grace_period: map(&[("web", "60")]),
            ..Default::default()
        };
        assert_eq!(
            config_change("bob", &ConfigData::default(), &one).as_deref(),
            Some("bob changed termination grace period for web")
        );
        assert_eq!(
            config_change("bob", &one, &ConfigData::default()).as_deref(),
            Some("bob changed termination grace period for web")
        );
        // The same value again is no change.
        assert_eq!(config_change("bob", &old, &old.clone()), None);
        // Joined with the other parts.
        let both = ConfigData {
            values: map(&[("A", "1")]),
            termination_grace_period: map(&[("web", "60")]),
            ..Default::default()
        };
        assert_eq!(
            config_change("bob", &ConfigData::default(), &both).as_deref(),
            Some("bob added A and bob changed termination grace period for web")
        );
    }

    #[test]
    fn build_and_config_join() {
        let old = ConfigData::default();
        let new = ConfigData {
            values: map(&[("A", "1")]),
            ..Default::default()
        };
        let parts = vec![
            build_deployed("alice", "1234567890", ""),
            config_change("alice", &old, &new).unwrap_or_default(),
        ];
        assert_eq!(join(&parts), "alice deployed 1234567 and alice added A");
    }
}
