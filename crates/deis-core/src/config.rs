//! An app's configuration and Deis's rules for changing it.
//!
//! Configs are immutable: every change produces a new [`ConfigData`] merged
//! from the previous one ([`ConfigData::apply`]), and the controller stores it
//! with a new release.

use std::collections::BTreeMap;
use std::sync::LazyLock;
use std::time::Duration;

use regex::Regex;
use serde_json::{Map, Value};

use crate::validate::{self, CONFIG_KEY, CONFIG_KEY_MESSAGE, json_integer, re, shown};
use crate::{Error, Result};

/// Deis's `MEMLIMIT_MATCH` (applied to ASCII input only, see [`memory_limit`]).
static MEMORY: LazyLock<Regex> =
    LazyLock::new(|| re(r"(?i)^(([0-9]+(MB|KB|GB|[BKMG])|0)(/([0-9]+(MB|KB|GB|[BKMG])))?)$"));
/// Deis's `CPUSHARE_MATCH`.
static CPU: LazyLock<Regex> =
    LazyLock::new(|| re(r"^(([-+]?[0-9]*\.?[0-9]+[m]?)(/([-+]?[0-9]*\.?[0-9]+[m]?))?)$"));

/// Message for a bad memory limit (Deis's wording).
pub const MEMORY_MESSAGE: &str =
    "Memory limit format: <number><unit> or <number><unit>/<number><unit>, where unit = B, K, M or G";
/// Message for a bad CPU limit (Deis's wording).
pub const CPU_MESSAGE: &str = "CPU limit format: <value> or <value>/<value>, where value must be a numeric";
/// Message when registry settings exist without a `PORT` (Deis's wording).
pub const REGISTRY_PORT_MESSAGE: &str = "PORT needs to be set in the config when using a private registry";
/// The largest single config value (or registry value), in bytes.
pub const MAX_VALUE_BYTES: usize = 64 * 1024;
/// The largest total of all keys and values in `values`, in bytes.
pub const MAX_VALUES_TOTAL_BYTES: usize = 1024 * 1024;
/// The longest config key, in bytes.
pub const MAX_KEY_BYTES: usize = 1024;
/// The largest serialized healthcheck change, in bytes.
pub const MAX_HEALTHCHECK_BYTES: usize = 64 * 1024;
/// The healthcheck key shared by `web` and `cmd` (and used by the legacy forms).
pub const WEB_CMD: &str = "web/cmd";
/// The two probe names a process type's healthcheck may hold.
pub const PROBES: [&str; 2] = ["livenessProbe", "readinessProbe"];
/// How long a process gets between SIGTERM and SIGKILL when its type has no
/// termination grace period set (Kubernetes' default, as in Hephy).
pub const DEFAULT_GRACE_PERIOD: Duration = Duration::from_secs(30);
/// The longest termination grace period that may be set, in seconds.
pub const MAX_GRACE_PERIOD_SECONDS: u64 = 3600;

/// An application's configuration: env vars, limits, node tags, registry
/// credentials, health checks and termination grace periods.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct ConfigData {
    /// Environment variables.
    pub values: BTreeMap<String, String>,
    /// Memory limits per process type (`512M` or `R/L`).
    pub memory: BTreeMap<String, String>,
    /// CPU limits per process type (`500m` or `R/L`).
    pub cpu: BTreeMap<String, String>,
    /// Node selector labels.
    pub tags: BTreeMap<String, String>,
    /// Private registry settings (`username`, `password`, `hostname`), keys lower-cased.
    pub registry: BTreeMap<String, String>,
    /// {ptype: {"livenessProbe": {...}, "readinessProbe": {...}}}
    pub healthcheck: Map<String, Value>,
    /// Whole seconds between SIGTERM and SIGKILL per process type (Hephy's
    /// `termination_grace_period`); see [`ConfigData::grace_period`].
    /// Configs stored before the field existed load with an empty map.
    #[serde(default)]
    pub termination_grace_period: BTreeMap<String, String>,
}

/// A requested change; a `None` value unsets the key.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ConfigChanges {
    /// Env var changes.
    pub values: BTreeMap<String, Option<String>>,
    /// Memory limit changes per process type.
    pub memory: BTreeMap<String, Option<String>>,
    /// CPU limit changes per process type.
    pub cpu: BTreeMap<String, Option<String>>,
    /// Tag changes.
    pub tags: BTreeMap<String, Option<String>>,
    /// Registry setting changes (keys are lower-cased when applied).
    pub registry: BTreeMap<String, Option<String>>,
    /// A JSON object merged into `healthcheck` per process type and probe; a
    /// null deletes that process type or probe, and a probe given replaces the
    /// old one whole (see [`ConfigData::apply`]).
    pub healthcheck: Option<Value>,
    /// Termination grace period changes per process type (whole seconds).
    pub termination_grace_period: BTreeMap<String, Option<String>>,
}

impl ConfigChanges {
    /// True when the request asks for no change at all.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
            && self.memory.is_empty()
            && self.cpu.is_empty()
            && self.tags.is_empty()
            && self.registry.is_empty()
            && self.healthcheck.is_none()
            && self.termination_grace_period.is_empty()
    }
}

impl ConfigData {
    /// Validates `changes` against Deis's rules and returns the merged config (self is unchanged).
    ///
    /// Order, as in Deis: validate every value that is set (400), then merge
    /// (unsetting a missing key is 422), then migrate legacy `HEALTHCHECK_*`
    /// values, then check that a private registry has a `PORT`.
    ///
    /// Health checks merge per process type and per probe: a probe that is
    /// given replaces the stored probe whole, so switching a probe from
    /// `httpGet` to `tcpSocket` does not leave two handlers behind.
    pub fn apply(&self, changes: &ConfigChanges) -> Result<ConfigData> {
        // Deis reports these per request field: `{"memory": ["…"]}`.
        for (k, v) in &changes.values {
            if let Some(v) = v {
                check_value(k, v).map_err(|e| e.on_field("values"))?;
            }
        }
        for (k, v) in &changes.memory {
            if let Some(v) = v {
                validate::process_type(k)
                    .and_then(|()| memory_limit(v))
                    .map_err(|e| e.on_field("memory"))?;
            }
        }
        for (k, v) in &changes.cpu {
            if let Some(v) = v {
                validate::process_type(k)
                    .and_then(|()| cpu_limit(v))
                    .map_err(|e| e.on_field("cpu"))?;
            }
        }
        for (k, v) in &changes.termination_grace_period {
            if let Some(v) = v {
                validate::process_type(k)
                    .and_then(|()| termination_grace_period(k, v))
                    .map_err(|e| e.on_field("termination_grace_period"))?;
            }
        }
        for (k, v) in &changes.tags {
            if let Some(v) = v {
                validate::label_key(k)
                    .and_then(|()| validate::label_value(v))
                    .map_err(|e| e.on_field("tags"))?;
            }
        }
        // Registry keys are stored lower-cased; lower-case the request too so
        // that unsetting `USERNAME` finds `username`.
        let registry_changes: BTreeMap<String, Option<String>> = changes
            .registry
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
            .collect();
        for (k, v) in &changes.registry {
            if !CONFIG_KEY.is_match(k) || k.len() > MAX_KEY_BYTES {
                return Err(Error::invalid(CONFIG_KEY_MESSAGE).on_field("registry"));
            }
            if let Some(v) = v {
                check_free_text("registry", k, v).map_err(|e| e.on_field("registry"))?;
            }
        }
        let health_change = match &changes.healthcheck {
            Some(hc) => Some(parse_healthcheck_change(hc).map_err(|e| e.on_field("healthcheck"))?),
            None => None,
        };

        let mut new = self.clone();
        merge(&mut new.values, &changes.values, "values")?;
        merge(&mut new.memory, &changes.memory, "memory")?;
        merge(&mut new.cpu, &changes.cpu, "cpu")?;
        merge(
            &mut new.termination_grace_period,
            &changes.termination_grace_period,
            "termination_grace_period",
        )?;
        merge(&mut new.tags, &changes.tags, "tags")?;
        merge(&mut new.registry, &registry_changes, "registry")?;
        // Older rows may hold keys that were never lower-cased.
        new.registry = new
            .registry
            .into_iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .collect();

        if let Some(hc) = health_change {
            // Rewrite a legacy row only when the healthcheck itself changes, so
            // that an unrelated change does not show up as a healthcheck diff.
            new.healthcheck = normalize_legacy(new.healthcheck);
            merge_healthcheck(&mut new.healthcheck, hc)?;
        }
        migrate_legacy_healthcheck(&mut new);

        // Only a change that sets values can push the total over; a row that is
        // already too big (imported data) can still be trimmed.
        let largest_set = changes
            .values
            .iter()
            .filter_map(|(k, v)| v.as_ref().map(|v| (k, v.len())))
            .max_by_key(|(_, n)| *n)
            .map(|(k, _)| k);
        if let Some(culprit) = largest_set {
            let total: usize = new.values.iter().map(|(k, v)| k.len() + v.len()).sum();
            if total > MAX_VALUES_TOTAL_BYTES {
                return Err(Error::invalid(format!(
                    "Setting {culprit} would make the config values exceed the total limit of {MAX_VALUES_TOTAL_BYTES} bytes."
                )));
            }
        }
        if !new.registry.is_empty() && !new.values.contains_key("PORT") {
            return Err(Error::invalid(REGISTRY_PORT_MESSAGE));
        }
        Ok(new)
    }

    /// How long a process of `ptype` gets between SIGTERM and SIGKILL:
    /// its `termination_grace_period`, else [`DEFAULT_GRACE_PERIOD`].
    ///
    /// A stored value that is not a number of seconds (imported data) also
    /// gives the default, and none is longer than [`MAX_GRACE_PERIOD_SECONDS`].
    pub fn grace_period(&self, ptype: &str) -> Duration {
        self.termination_grace_period
            .get(ptype)
            .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
            .map_or(DEFAULT_GRACE_PERIOD, |v| {
                let secs = v.parse::<u64>().unwrap_or(u64::MAX);
                Duration::from_secs(secs.min(MAX_GRACE_PERIOD_SECONDS))
            })
    }

    /// The probes of a process type, falling back to the "web/cmd" key for `web` and `cmd` (Deis).
    pub fn healthcheck_for(&self, ptype: &str) -> Option<&Map<String, Value>> {
        // Legacy rows stored the probes at the top level, meaning web/cmd.
        if PROBES.iter().any(|p| self.healthcheck.contains_key(*p)) {
            return (ptype == "web" || ptype == "cmd").then_some(&self.healthcheck);
        }
        if let Some(probes) = self.healthcheck.get(ptype).and_then(Value::as_object) {
            return Some(probes);
        }
        if ptype == "web" || ptype == "cmd" {
            return self.healthcheck.get(WEB_CMD).and_then(Value::as_object);
        }
        None
    }
}

/// Checks one env var (key and value) with Deis's rules and our size guards.
fn check_value(key: &str, value: &str) -> Result<()> {
    if !CONFIG_KEY.is_match(key) {
        return Err(Error::invalid(CONFIG_KEY_MESSAGE));
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(Error::invalid(format!(
            "Config keys must be at most {MAX_KEY_BYTES} characters long."
        )));
    }
    check_free_text("values", key, value)?;
    if key == "PORT" {
        if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Error::invalid("PORT can only be a numeric value"));
        }
        match value.parse::<u32>() {
            Ok(p) if (1..=65535).contains(&p) => {}
            _ => return Err(Error::invalid("PORT needs to be between 1 and 65535")),
        }
    } else if key == "HEALTHCHECK_URL" {
        check_healthcheck_url(value)?;
    } else if key.starts_with("HEALTHCHECK_")
        && (value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) || value.parse::<i32>().is_err())
    {
        return Err(Error::invalid(format!("{key} can only be a numeric value")));
    }
    Ok(())
}

/// Size and control-character guard for free-form values.
fn check_free_text(attr: &str, key: &str, value: &str) -> Result<()> {
    if value.len() > MAX_VALUE_BYTES {
        return Err(Error::invalid(format!(
            "The {attr} entry {key} is larger than the limit of {MAX_VALUE_BYTES} bytes."
        )));
    }
    if value
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Err(Error::invalid(format!(
            "The {attr} entry {key} contains control characters; only newline, carriage return and tab are allowed."
        )));
    }
    Ok(())
}

/// `HEALTHCHECK_URL` must be a bare path such as `/healthz` (Deis, controller#774).
fn check_healthcheck_url(value: &str) -> Result<()> {
    let after_scheme = value.find("://").map(|i| &value[i + 3..]);
    let after_authority = after_scheme.or_else(|| value.strip_prefix("//"));
    let path = match after_authority {
        Some(rest) => rest.find('/').map_or("", |i| &rest[i..]),
        None => value,
    };
    if path.is_empty() {
        return Err(Error::invalid(
            "HEALTHCHECK_URL is missing a URI path (such as /healthz). Without it no health check can be done",
        ));
    }
    if after_authority.is_some() || !value.starts_with('/') || value.contains('?') || value.contains('#') {
        return Err(Error::invalid(
            "HEALTHCHECK_URL can only be a URI path (such as /healthz) that does not contain other things such as query params",
        ));
    }
    Ok(())
}

/// Validates a memory limit such as `512M`, `1GB` or `256M/1G`.
pub fn memory_limit(v: &str) -> Result<()> {
    // ASCII first: case-insensitive regexes fold e.g. the Kelvin sign onto `K`.
    if !v.is_ascii() || !MEMORY.is_match(v) {
        return Err(Error::invalid(MEMORY_MESSAGE));
    }
    Ok(())
}

/// Validates a CPU limit such as `500m`, `1`, `0.5` or `250m/1`.
pub fn cpu_limit(v: &str) -> Result<()> {
    if !CPU.is_match(v) {
        return Err(Error::invalid(CPU_MESSAGE));
    }
    Ok(())
}

/// Validates the termination grace period of process type `ptype`: whole
/// seconds (`^[0-9]+$`, Hephy's rule without the empty string) up to
/// [`MAX_GRACE_PERIOD_SECONDS`].
pub fn termination_grace_period(ptype: &str, v: &str) -> Result<()> {
    let digits = !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit());
    if !digits || v.parse::<u64>().map_or(true, |n| n > MAX_GRACE_PERIOD_SECONDS) {
        return Err(Error::invalid(format!(
            "The termination grace period for {} must be a whole number of seconds from 0 to {MAX_GRACE_PERIOD_SECONDS}.",
            shown(ptype)
        )));
    }
    Ok(())
}

/// Applies set/unset requests to one map; unsetting a missing key is 422.
fn merge(
    data: &mut BTreeMap<String, String>,
    changes: &BTreeMap<String, Option<String>>,
    attr: &str,
) -> Result<()> {
    for (k, v) in changes {
        match v {
            Some(v) => {
                data.insert(k.clone(), v.clone());
            }
            None => {
                if data.remove(k).is_none() {
                    return Err(Error::unprocessable(format!(
                        "{} does not exist under {attr}",
                        shown(k)
                    )));
                }
            }
        }
    }
    Ok(())
}

/// A validated healthcheck change: per process type, either unset it or
/// set/unset individual probes.
type HealthChange = Vec<(String, Option<Vec<(String, Option<Map<String, Value>>)>>)>;

/// Moves top-level probes (Deis's legacy shape) under `web/cmd`.
fn normalize_legacy(hc: Map<String, Value>) -> Map<String, Value> {
    if PROBES.iter().any(|p| hc.contains_key(*p)) {
        let mut wrapped = Map::new();
        wrapped.insert(WEB_CMD.to_owned(), Value::Object(hc));
        wrapped
    } else {
        hc
    }
}

/// Validates a healthcheck change and turns it into a list of operations.
fn parse_healthcheck_change(hc: &Value) -> Result<HealthChange> {
    if serde_json::to_string(hc).map_or(true, |s| s.len() > MAX_HEALTHCHECK_BYTES) {
        return Err(Error::invalid(format!(
            "The healthcheck settings are larger than the limit of {MAX_HEALTHCHECK_BYTES} bytes."
        )));
    }
    let top = match hc {
        Value::Object(m) => normalize_legacy(m.clone()),
        _ => {
            return Err(Error::invalid(
                "Healthcheck settings must be a JSON object keyed by process type",
            ));
        }
    };
    let mut ops = Vec::with_capacity(top.len());
    for (ptype, probes) in top {
        if ptype != WEB_CMD {
            validate::process_type(&ptype)?;
        }
        match probes {
            Value::Null => ops.push((ptype, None)),
            Value::Object(probes) => {
                let mut probe_ops = Vec::with_capacity(probes.len());
                for (name, probe) in probes {
                    if !PROBES.contains(&name.as_str()) {
                        return Err(Error::invalid(
                            "Healthcheck keys must be either livenessProbe or readinessProbe",
                        ));
                    }
                    let probe = match probe {
                        Value::Null => None,
                        other => Some(validate_probe(&ptype, &name, &other)?),
                    };
                    probe_ops.push((name, probe));
                }
                ops.push((ptype, Some(probe_ops)));
            }
            _ => {
                return Err(Error::invalid(format!(
                    "Invalid healthcheck for process type {ptype}: expected an object with livenessProbe and/or readinessProbe"
                )));
            }
        }
    }
    Ok(ops)
}

/// Applies validated healthcheck operations; unsetting what is not set is 422.
fn merge_healthcheck(data: &mut Map<String, Value>, ops: HealthChange) -> Result<()> {
    for (ptype, probes) in ops {
        let Some(probes) = probes else {
            if data.remove(&ptype).is_none() {
                return Err(Error::unprocessable(format!(
                    "{ptype} does not exist under healthcheck"
                )));
            }
            continue;
        };
        let mut current = match data.remove(&ptype) {
            Some(Value::Object(m)) => m,
            _ => Map::new(),
        };
        for (name, probe) in probes {
            match probe {
                Some(p) => {
                    current.insert(name, Value::Object(p));
                }
                None => {
                    if current.remove(&name).is_none() {
                        return Err(Error::unprocessable(format!(
                            "{ptype}.{name} does not exist under healthcheck"
                        )));
                    }
                }
            }
        }
        // A process type with no probes left is removed rather than kept as `{}`.
        if !current.is_empty() {
            data.insert(ptype, Value::Object(current));
        }
    }
    Ok(())
}

/// Validates one probe against Deis's `PROBE_SCHEMA` plus Kubernetes' rules,
/// and returns it with null members dropped.
fn validate_probe(ptype: &str, probe: &str, v: &Value) -> Result<Map<String, Value>> {
    let bad = |what: String| {
        Error::invalid(format!(
            "Invalid healthcheck for process type {ptype}: {probe}{what}"
        ))
    };
    let Value::Object(obj) = v else {
        return Err(bad(" must be an object".to_owned()));
    };
    let obj = strip_nulls(obj);
    let mut handlers = 0;
    for (k, val) in &obj {
        match k.as_str() {
            "exec" => {
                handlers += 1;
                let Value::Object(e) = val else {
                    return Err(bad(".exec must be an object".to_owned()));
                };
                only_keys(e, &["command"])
                    .map_err(|k| bad(format!(".exec has unknown field {}", shown(&k))))?;
                let ok = e
                    .get("command")
                    .and_then(Value::as_array)
                    .is_some_and(|c| !c.is_empty() && c.iter().all(Value::is_string));
                if !ok {
                    return Err(bad(
                        ".exec.command is required and must be a non-empty list of strings".to_owned(),
                    ));
                }
            }
            "httpGet" => {
                handlers += 1;
                let Value::Object(h) = val else {
                    return Err(bad(".httpGet must be an object".to_owned()));
                };
                only_keys(h, &["path", "port", "host", "scheme", "httpHeaders"])
                    .map_err(|k| bad(format!(".httpGet has unknown field {}", shown(&k))))?;
                check_port(h.get("port")).map_err(|m| bad(format!(".httpGet.port {m}")))?;
                for f in ["path", "host", "scheme"] {
                    if h.get(f).is_some_and(|x| !x.is_string()) {
                        return Err(bad(format!(".httpGet.{f} must be a string")));
                    }
                }
                if let Some(headers) = h.get("httpHeaders") {
                    let ok = headers.as_array().is_some_and(|hs| {
                        hs.iter().all(|hd| {
                            hd.as_object().is_some_and(|o| {
                                o.len() == 2
                                    && o.get("name").is_some_and(Value::is_string)
                                    && o.get("value").is_some_and(Value::is_string)
                            })
                        })
                    });
                    if !ok {
                        return Err(bad(
                            ".httpGet.httpHeaders must be a list of {name, value} string pairs".to_owned(),
                        ));
                    }
                }
            }
            "tcpSocket" => {
                handlers += 1;
                let Value::Object(t) = val else {
                    return Err(bad(".tcpSocket must be an object".to_owned()));
                };
                only_keys(t, &["port", "host"])
                    .map_err(|k| bad(format!(".tcpSocket has unknown field {}", shown(&k))))?;
                check_port(t.get("port")).map_err(|m| bad(format!(".tcpSocket.port {m}")))?;
                if t.get("host").is_some_and(|x| !x.is_string()) {
                    return Err(bad(".tcpSocket.host must be a string".to_owned()));
                }
            }
            "initialDelaySeconds"
            | "timeoutSeconds"
            | "periodSeconds"
            | "successThreshold"
            | "failureThreshold" => {
                let n = json_integer(val)
                    .filter(|n| (0..=i64::from(i32::MAX)).contains(n))
                    .ok_or_else(|| bad(format!(".{k} must be a non-negative integer")))?;
                // Kubernetes allows only 1 for liveness (Deis checks this too).
                if k == "successThreshold" && probe == "livenessProbe" && n != 1 {
                    return Err(bad(".successThreshold can only be 1".to_owned()));
                }
            }
            other => return Err(bad(format!(" has unknown field {}", shown(other)))),
        }
    }
    if handlers != 1 {
        return Err(bad(
            " must have exactly one of exec, httpGet or tcpSocket".to_owned()
        ));
    }
    Ok(obj)
}

/// Checks a probe port: required, an integer 1–65535.
fn check_port(v: Option<&Value>) -> std::result::Result<(), &'static str> {
    match v.map(json_integer) {
        None => Err("is required"),
        Some(Some(p)) if (1..=65535).contains(&p) => Ok(()),
        Some(_) => Err("must be an integer between 1 and 65535"),
    }
}

/// Returns the first key of `m` not in `allowed`.
fn only_keys(m: &Map<String, Value>, allowed: &[&str]) -> std::result::Result<(), String> {
    match m.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(k.clone()),
        None => Ok(()),
    }
}

/// Drops null members at every depth: in a probe that replaces the stored
/// one whole, a null simply means "not set".
fn strip_nulls(m: &Map<String, Value>) -> Map<String, Value> {
    m.iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| {
            let v = match v {
                Value::Object(inner) => Value::Object(strip_nulls(inner)),
                other => other.clone(),
            };
            (k.clone(), v)
        })
        .collect()
}

/// Deis's `_migrate_legacy_healthcheck`: `HEALTHCHECK_URL` and friends become
/// `web/cmd` httpGet probes and are removed from `values`.
///
/// The probes carry no `httpGet.port`; as in Deis, the scheduler fills in the
/// app's port when it builds the pod.
fn migrate_legacy_healthcheck(config: &mut ConfigData) {
    let Some(path) = config.values.get("HEALTHCHECK_URL").cloned() else {
        return;
    };
    let num = |key: &str, default: i64| -> i64 {
        config
            .values
            .get(key)
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap_or(default)
    };
    let timeout = num("HEALTHCHECK_TIMEOUT", 50);
    let delay = num("HEALTHCHECK_INITIAL_DELAY", 50);
    let period = num("HEALTHCHECK_PERIOD_SECONDS", 10);
    let success = num("HEALTHCHECK_SUCCESS_THRESHOLD", 1);
    let failure = num("HEALTHCHECK_FAILURE_THRESHOLD", 3);
    let probe = |success: i64| {
        serde_json::json!({
            "initialDelaySeconds": delay,
            "timeoutSeconds": timeout,
            "periodSeconds": period,
            "successThreshold": success,
            "failureThreshold": failure,
            "httpGet": {"path": path},
        })
    };
    let mut probes = Map::new();
    // Kubernetes refuses a liveness successThreshold other than 1, so only
    // the readiness probe takes HEALTHCHECK_SUCCESS_THRESHOLD.
    probes.insert("livenessProbe".to_owned(), probe(1));
    probes.insert("readinessProbe".to_owned(), probe(success));
    config.healthcheck = normalize_legacy(std::mem::take(&mut config.healthcheck));
    config
        .healthcheck
        .insert(WEB_CMD.to_owned(), Value::Object(probes));
    config.values.retain(|k, _| !k.starts_with("HEALTHCHECK_"));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;
    use serde_json::json;

    fn set(pairs: &[(&str, &str)]) -> BTreeMap<String, Option<String>> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Some((*v).to_owned())))
            .collect()
    }

    fn unset(keys: &[&str]) -> BTreeMap<String, Option<String>> {
        keys.iter().map(|k| ((*k).to_owned(), None)).collect()
    }

    fn values(pairs: &[(&str, &str)]) -> ConfigChanges {
        ConfigChanges {
            values: set(pairs),
            ..Default::default()
        }
    }

    fn health(v: Value) -> ConfigChanges {
        ConfigChanges {
            healthcheck: Some(v),
            ..Default::default()
        }
    }

    fn grace(pairs: &[(&str, Option<&str>)]) -> ConfigChanges {
        ConfigChanges {
            termination_grace_period: pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.map(str::to_owned)))
                .collect(),
            ..Default::default()
        }
    }

    fn err(r: Result<ConfigData>) -> crate::Error {
        match r {
            Ok(c) => panic!("expected an error, got {c:?}"),
            Err(e) => e,
        }
    }

    fn invalid(r: Result<ConfigData>) -> String {
        let e = err(r);
        assert_eq!(e.kind, ErrorKind::InvalidArgument, "{}", e.message);
        e.message
    }

    #[test]
    fn is_empty() {
        assert!(ConfigChanges::default().is_empty());
        assert!(!values(&[("A", "b")]).is_empty());
        assert!(
            !ConfigChanges {
                cpu: unset(&["web"]),
                ..Default::default()
            }
            .is_empty()
        );
        assert!(!health(json!({})).is_empty());
        assert!(!grace(&[("web", None)]).is_empty());
    }

    #[test]
    fn merge_and_unset() {
        let base = ConfigData::default();
        let c1 = base.apply(&values(&[("FOO", "bar"), ("BAZ", "1")])).unwrap();
        assert_eq!(c1.values.get("FOO").map(String::as_str), Some("bar"));
        assert_eq!(base, ConfigData::default(), "apply must not modify self");

        // Setting more keeps the old ones; resetting a key overwrites it.
        let c2 = c1.apply(&values(&[("FOO", "qux"), ("NEW", "x")])).unwrap();
        assert_eq!(c2.values.len(), 3);
        assert_eq!(c2.values["FOO"], "qux");

        // Unset.
        let c3 = c2
            .apply(&ConfigChanges {
                values: unset(&["FOO"]),
                ..Default::default()
            })
            .unwrap();
        assert!(!c3.values.contains_key("FOO"));
        assert_eq!(c3.values.len(), 2);

        // Unsetting a missing key is 422 with Deis's message.
        let e = err(c3.apply(&ConfigChanges {
            values: unset(&["FOO"]),
            ..Default::default()
        }));
        assert_eq!(e.kind, ErrorKind::Unprocessable);
        assert_eq!(e.message, "FOO does not exist under values");

        // Setting and unsetting in one request.
        let mut mixed = values(&[("A", "1")]);
        mixed.values.insert("BAZ".to_owned(), None);
        let c4 = c3.apply(&mixed).unwrap();
        assert!(c4.values.contains_key("A") && !c4.values.contains_key("BAZ"));
    }

    #[test]
    fn unset_missing_in_every_attribute() {
        let base = ConfigData::default();
        let cases: [(ConfigChanges, &str); 7] = [
            (
                ConfigChanges {
                    values: unset(&["K"]),
                    ..Default::default()
                },
                "K does not exist under values",
            ),
            (
                ConfigChanges {
                    memory: unset(&["web"]),
                    ..Default::default()
                },
                "web does not exist under memory",
            ),
            (
                ConfigChanges {
                    cpu: unset(&["web"]),
                    ..Default::default()
                },
                "web does not exist under cpu",
            ),
            (
                ConfigChanges {
                    tags: unset(&["env"]),
                    ..Default::default()
                },
                "env does not exist under tags",
            ),
            (
                ConfigChanges {
                    registry: unset(&["username"]),
                    ..Default::default()
                },
                "username does not exist under registry",
            ),
            (
                health(json!({"web": null})),
                "web does not exist under healthcheck",
            ),
            (
                grace(&[("worker", None)]),
                "worker does not exist under termination_grace_period",
            ),
        ];
        for (change, want) in cases {
            let e = err(base.apply(&change));
            assert_eq!(e.kind, ErrorKind::Unprocessable);
            assert_eq!(e.message, want);
        }
    }

    #[test]
    fn config_keys() {
        let base = ConfigData::default();
        for ok in ["FOO", "foo", "_X", "A1_B2", "__", "a"] {
            assert!(base.apply(&values(&[(ok, "v")])).is_ok(), "{ok}");
        }
        for bad in [
            "123",
            "../../foo",
            "FOO/",
            "FOO-BAR",
            "",
            "1A",
            "FO O",
            "KEY=",
            "ÄÖ",
            "\u{212A}EY",
        ] {
            assert_eq!(
                invalid(base.apply(&values(&[(bad, "v")]))),
                CONFIG_KEY_MESSAGE,
                "{bad}"
            );
        }
        let long = "K".repeat(MAX_KEY_BYTES + 1);
        assert!(invalid(base.apply(&values(&[(&long, "v")]))).contains("1024"));
    }

    #[test]
    fn unicode_and_multiline_values() {
        let base = ConfigData::default();
        let c = base
            .apply(&values(&[
                ("GREETING", "こんにちは 🌍"),
                ("PEM", "-----BEGIN X-----\r\nabc\n-----END X-----\n"),
                ("TABS", "a\tb"),
                ("EMPTY", ""),
                ("SPACES", "  with spaces  "),
            ]))
            .unwrap();
        assert_eq!(c.values["GREETING"], "こんにちは 🌍");
        assert_eq!(c.values["EMPTY"], "");
    }

    #[test]
    fn control_characters_and_sizes() {
        let base = ConfigData::default();
        for bad in ["a\0b", "bell\u{7}", "esc\u{1b}[0m", "del\u{7f}", "c1\u{85}"] {
            let m = invalid(base.apply(&values(&[("K", bad)])));
            assert!(m.contains("K") && m.contains("control characters"), "{m}");
        }
        let big = "x".repeat(MAX_VALUE_BYTES + 1);
        let m = invalid(base.apply(&values(&[("BIG", &big)])));
        assert_eq!(m, "The values entry BIG is larger than the limit of 65536 bytes.");
        assert!(
            base.apply(&values(&[("OK", &"x".repeat(MAX_VALUE_BYTES))]))
                .is_ok()
        );

        // Many values under the per-value limit, over the total.
        let mut c = base;
        let chunk = "y".repeat(60 * 1024);
        for i in 0..17 {
            c = c.apply(&values(&[(&format!("K{i}"), &chunk)])).unwrap();
        }
        let m = invalid(c.apply(&values(&[("LAST", &chunk)])));
        assert_eq!(
            m,
            "Setting LAST would make the config values exceed the total limit of 1048576 bytes."
        );
        // An oversized row can still be trimmed.
        let mut over = c.clone();
        over.values.insert("LAST".to_owned(), chunk.clone());
        let trimmed = over
            .apply(&ConfigChanges {
                values: unset(&["K0"]),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(trimmed.values.len(), 17);
    }

    #[test]
    fn port_rules() {
        let base = ConfigData::default();
        for ok in ["1", "80", "5000", "65535", "08080"] {
            assert!(base.apply(&values(&[("PORT", ok)])).is_ok(), "{ok}");
        }
        for bad in ["dog", "", "-1", "80.5", " 80", "٨٠"] {
            assert_eq!(
                invalid(base.apply(&values(&[("PORT", bad)]))),
                "PORT can only be a numeric value",
                "{bad}"
            );
        }
        for bad in ["0", "99999", "65536", "99999999999999999999999"] {
            assert_eq!(
                invalid(base.apply(&values(&[("PORT", bad)]))),
                "PORT needs to be between 1 and 65535",
                "{bad}"
            );
        }
    }

    #[test]
    fn legacy_healthcheck_values() {
        let base = ConfigData::default();
        let m = invalid(base.apply(&values(&[("HEALTHCHECK_INITIAL_DELAY", "horse")])));
        assert_eq!(m, "HEALTHCHECK_INITIAL_DELAY can only be a numeric value");
        assert!(invalid(base.apply(&values(&[("HEALTHCHECK_FOO", "1.5")]))).contains("numeric"));
        assert!(invalid(base.apply(&values(&[("HEALTHCHECK_TIMEOUT", "99999999999")]))).contains("numeric"));

        let path_only = "HEALTHCHECK_URL can only be a URI path (such as /healthz) that does not contain other things such as query params";
        let missing = "HEALTHCHECK_URL is missing a URI path (such as /healthz). Without it no health check can be done";
        for (url, want) in [
            ("/health?testing=0", path_only),
            ("/health#db", path_only),
            ("http://someurl.com/health/", path_only),
            ("//someurl.com/health", path_only),
            ("health", path_only),
            ("http://someurl.com", missing),
            ("", missing),
        ] {
            assert_eq!(
                invalid(base.apply(&values(&[("HEALTHCHECK_URL", url)]))),
                want,
                "{url}"
            );
        }
    }

    #[test]
    fn legacy_healthcheck_migration() {
        let base = ConfigData::default();
        let c = base
            .apply(&values(&[("HEALTHCHECK_URL", "/health"), ("FOO", "bar")]))
            .unwrap();
        assert!(!c.values.contains_key("HEALTHCHECK_URL"));
        assert_eq!(c.values.len(), 1);
        let defaults = json!({
            "initialDelaySeconds": 50, "timeoutSeconds": 50, "periodSeconds": 10,
            "successThreshold": 1, "failureThreshold": 3, "httpGet": {"path": "/health"}
        });
        assert_eq!(
            Value::Object(c.healthcheck.clone()),
            json!({"web/cmd": {"livenessProbe": defaults, "readinessProbe": defaults}})
        );
        assert_eq!(c.healthcheck_for("web").map(|m| m.len()), Some(2));
        assert_eq!(c.healthcheck_for("cmd").map(|m| m.len()), Some(2));
        assert!(c.healthcheck_for("worker").is_none());

        // All the env vars at once (Deis's second legacy case).
        let c2 = c
            .apply(&values(&[
                ("HEALTHCHECK_URL", "/health"),
                ("HEALTHCHECK_INITIAL_DELAY", "25"),
                ("HEALTHCHECK_TIMEOUT", "10"),
                ("HEALTHCHECK_PERIOD_SECONDS", "5"),
                ("HEALTHCHECK_SUCCESS_THRESHOLD", "2"),
                ("HEALTHCHECK_FAILURE_THRESHOLD", "2"),
            ]))
            .unwrap();
        assert!(c2.values.keys().all(|k| !k.starts_with("HEALTHCHECK_")));
        let probes = c2.healthcheck_for("web").unwrap();
        assert_eq!(
            probes["readinessProbe"],
            json!({"initialDelaySeconds": 25, "timeoutSeconds": 10, "periodSeconds": 5,
                   "successThreshold": 2, "failureThreshold": 2, "httpGet": {"path": "/health"}})
        );
        assert_eq!(probes["livenessProbe"]["successThreshold"], json!(1));
        assert_eq!(probes["livenessProbe"]["timeoutSeconds"], json!(10));

        // Without HEALTHCHECK_URL nothing is migrated (Deis).
        let c3 = base.apply(&values(&[("HEALTHCHECK_TIMEOUT", "5")])).unwrap();
        assert_eq!(c3.values["HEALTHCHECK_TIMEOUT"], "5");
        assert!(c3.healthcheck.is_empty());

        // Migration keeps other process types and rewrites a legacy row first.
        let legacy = ConfigData {
            healthcheck: json!({"livenessProbe": {"tcpSocket": {"port": 1}}})
                .as_object()
                .cloned()
                .unwrap(),
            ..Default::default()
        };
        let c4 = legacy
            .apply(&health(
                json!({"worker": {"livenessProbe": {"tcpSocket": {"port": 2}}}}),
            ))
            .unwrap()
            .apply(&values(&[("HEALTHCHECK_URL", "/up")]))
            .unwrap();
        let mut keys: Vec<&String> = c4.healthcheck.keys().collect();
        keys.sort();
        assert_eq!(keys, ["web/cmd", "worker"]);
        assert_eq!(
            c4.healthcheck["web/cmd"]["livenessProbe"]["httpGet"],
            json!({"path": "/up"})
        );
        let c5 = legacy.apply(&values(&[("HEALTHCHECK_URL", "/up")])).unwrap();
        assert_eq!(c5.healthcheck.keys().collect::<Vec<_>>(), ["web/cmd"]);
    }

    #[test]
    fn memory_table() {
        // Deis's test_memlimit_regex plus test_request_limit_memory.
        for ok in [
            "0/100MB",
            "200GB/100MB",
            "20MB",
            "20gb",
            "0m",
            "1G",
            "512M",
            "1G/2G",
            "3G/4G",
            "0",
            "100B",
            "1k/2kb",
        ] {
            assert!(memory_limit(ok).is_ok(), "{ok}");
        }
        for bad in [
            "20MK",
            "10",
            "20gK",
            "mb",
            "1Z",
            "",
            "1G/",
            "/1G",
            "1G/0",
            "1.5G",
            "-1G",
            "1 G",
            "1\u{212A}",
        ] {
            assert_eq!(memory_limit(bad).unwrap_err().message, MEMORY_MESSAGE, "{bad}");
        }
        let base = ConfigData::default();
        let c = base
            .apply(&ConfigChanges {
                memory: set(&[("web", "1G"), ("worker", "512M")]),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(c.memory["web"], "1G");
        let c = c
            .apply(&ConfigChanges {
                memory: unset(&["worker"]),
                ..Default::default()
            })
            .unwrap();
        assert!(!c.memory.contains_key("worker"));
        assert_eq!(
            invalid(c.apply(&ConfigChanges {
                memory: set(&[("w3&b", "1G")]),
                ..Default::default()
            })),
            validate::PROCESS_TYPE_MESSAGE
        );
        assert_eq!(
            invalid(c.apply(&ConfigChanges {
                memory: set(&[("web", "1Z")]),
                ..Default::default()
            })),
            MEMORY_MESSAGE
        );
    }

    #[test]
    fn termination_grace_periods() {
        let base = ConfigData::default();
        assert_eq!(base.grace_period("web"), DEFAULT_GRACE_PERIOD);
        assert_eq!(DEFAULT_GRACE_PERIOD, Duration::from_secs(30));

        let c = base
            .apply(&grace(&[("web", Some("60")), ("worker", Some("0"))]))
            .unwrap();
        assert_eq!(c.termination_grace_period.len(), 2);
        assert_eq!(c.grace_period("web"), Duration::from_secs(60));
        assert_eq!(c.grace_period("worker"), Duration::ZERO);
        assert_eq!(c.grace_period("clock"), DEFAULT_GRACE_PERIOD);

        // Setting again overwrites; unsetting falls back to the default.
        let c = c
            .apply(&grace(&[("web", Some("3600")), ("worker", None)]))
            .unwrap();
        assert_eq!(c.grace_period("web"), Duration::from_secs(3600));
        assert_eq!(c.grace_period("worker"), DEFAULT_GRACE_PERIOD);
        assert!(!c.termination_grace_period.contains_key("worker"));

        // Other attributes are untouched, and this one is untouched by them.
        let c = c.apply(&values(&[("A", "1")])).unwrap();
        assert_eq!(c.termination_grace_period.len(), 1);

        for bad in [
            "",
            "-1",
            "+5",
            "1.5",
            "30s",
            " 30",
            "3601",
            "99999999999999999999999",
            "３０",
        ] {
            let m = invalid(base.apply(&grace(&[("web", Some(bad))])));
            assert_eq!(
                m, "The termination grace period for web must be a whole number of seconds from 0 to 3600.",
                "{bad:?}"
            );
        }
        assert!(termination_grace_period("web", "0030").is_ok());
        // Keys are process types, checked as for limits.
        for bad in ["Web", "web_1", "-web", "w3&b", ""] {
            assert_eq!(
                invalid(base.apply(&grace(&[(bad, Some("10"))]))),
                validate::PROCESS_TYPE_MESSAGE,
                "{bad:?}"
            );
        }
        // A 400 wins over a 422 in the same request.
        let e = err(base.apply(&grace(&[("web", Some("x")), ("db", None)])));
        assert_eq!(e.kind, ErrorKind::InvalidArgument);

        // Imported rows with odd values still give a usable duration.
        let odd = ConfigData {
            termination_grace_period: [("web", "soon"), ("db", "86400")]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            ..Default::default()
        };
        assert_eq!(odd.grace_period("web"), DEFAULT_GRACE_PERIOD);
        assert_eq!(
            odd.grace_period("db"),
            Duration::from_secs(MAX_GRACE_PERIOD_SECONDS)
        );
    }

    #[test]
    fn cpu_table() {
        // Deis's test_cpushare_regex plus test_request_limit_cpu.
        for ok in [
            "0/2",
            "500m/600m",
            "0.5",
            ".123",
            "1.123",
            "200m",
            "0",
            "1024",
            "512m",
            "1/2",
            "300m/4000m",
            "+1",
            "-1",
        ] {
            assert!(cpu_limit(ok).is_ok(), "{ok}");
        }
        for bad in [
            "20MK", "20gK", "m", ".", "1G", "", "1/", "500M", "1.", "1m/", "abc",
        ] {
            assert_eq!(cpu_limit(bad).unwrap_err().message, CPU_MESSAGE, "{bad}");
        }
        let base = ConfigData::default();
        assert_eq!(
            invalid(base.apply(&ConfigChanges {
                cpu: set(&[("web", "1G")]),
                ..Default::default()
            })),
            CPU_MESSAGE
        );
        assert_eq!(
            invalid(base.apply(&ConfigChanges {
                cpu: set(&[("w3&b", "1")]),
                ..Default::default()
            })),
            validate::PROCESS_TYPE_MESSAGE
        );
        let c = base
            .apply(&ConfigChanges {
                cpu: set(&[("web", "1024"), ("db", "1/2")]),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(c.cpu["db"], "1/2");
    }

    #[test]
    fn tags() {
        let base = ConfigData::default();
        let c = base
            .apply(&ConfigChanges {
                tags: set(&[
                    ("environ", "dev"),
                    ("kubernetes.io/hostname", "node-1"),
                    ("empty", ""),
                ]),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(c.tags.len(), 3);
        for (k, v, want) in [
            ("-bad", "x", "Tag keys must"),
            ("ok", "-bad", "Tag values must"),
            ("ok", "has space", "Tag values must"),
            ("Bad_Prefix.io/x", "y", "Tag key prefixes"),
        ] {
            let m = invalid(base.apply(&ConfigChanges {
                tags: set(&[(k, v)]),
                ..Default::default()
            }));
            assert!(m.starts_with(want), "{k}={v}: {m}");
        }
        let c = c
            .apply(&ConfigChanges {
                tags: unset(&["environ"]),
                ..Default::default()
            })
            .unwrap();
        assert!(!c.tags.contains_key("environ"));
    }

    #[test]
    fn registry() {
        let base = ConfigData::default();
        let reg = ConfigChanges {
            registry: set(&[("USERNAME", "bob"), ("Password", "s3cr3t")]),
            ..Default::default()
        };
        assert_eq!(invalid(base.apply(&reg)), REGISTRY_PORT_MESSAGE);

        let with_port = base.apply(&values(&[("PORT", "5000")])).unwrap();
        let c = with_port.apply(&reg).unwrap();
        assert_eq!(c.registry.keys().collect::<Vec<_>>(), ["password", "username"]);

        // Unsetting uses the lower-cased key too.
        let c2 = c
            .apply(&ConfigChanges {
                registry: unset(&["USERNAME"]),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(c2.registry.len(), 1);

        // Removing PORT while registry info remains is refused.
        let e = invalid(c2.apply(&ConfigChanges {
            values: unset(&["PORT"]),
            ..Default::default()
        }));
        assert_eq!(e, REGISTRY_PORT_MESSAGE);

        // Setting PORT and the registry in one request works.
        let mut both = reg.clone();
        both.values = set(&[("PORT", "80")]);
        assert!(base.apply(&both).is_ok());

        for bad in ["1abc", "user-name", "a/b"] {
            let mut ch = both.clone();
            ch.registry = set(&[(bad, "x")]);
            assert_eq!(invalid(base.apply(&ch)), CONFIG_KEY_MESSAGE, "{bad}");
        }
        let mut ch = both;
        ch.registry = set(&[("password", "a\u{0}b")]);
        assert!(invalid(base.apply(&ch)).contains("control characters"));
    }

    #[test]
    fn healthcheck_set_and_merge() {
        let base = ConfigData::default();
        // Deis's test_config_healthchecks, in the legacy (no ptype) shape.
        let readiness = json!({"readinessProbe": {"httpGet": {"port": 5000}}});
        let c = base.apply(&health(readiness)).unwrap();
        assert_eq!(
            Value::Object(c.healthcheck.clone()),
            json!({"web/cmd": {"readinessProbe": {"httpGet": {"port": 5000}}}})
        );
        let liveness = json!({"livenessProbe": {"httpGet": {"port": 5000}, "successThreshold": 1}});
        let c = c.apply(&health(liveness)).unwrap();
        let probes = c.healthcheck_for("web").unwrap();
        assert_eq!(probes.len(), 2, "readiness is kept when liveness is added");

        // Per-ptype form, all three handlers.
        let c = c
            .apply(&health(json!({
                "worker": {"livenessProbe": {"exec": {"command": ["cat", "/tmp/healthy"]}, "periodSeconds": 5}},
                "db": {"readinessProbe": {"tcpSocket": {"port": 5432}, "initialDelaySeconds": 0}},
                "web": {"readinessProbe": {"httpGet": {"path": "/healthz", "port": 80, "host": "h", "scheme": "HTTPS",
                        "httpHeaders": [{"name": "X-Probe", "value": "1"}]}, "timeoutSeconds": 3, "failureThreshold": 2, "successThreshold": 3}}
            })))
            .unwrap();
        assert!(c.healthcheck_for("worker").is_some());
        assert!(c.healthcheck_for("db").is_some());
        // `web` now has its own entry and no longer falls back to web/cmd.
        assert_eq!(c.healthcheck_for("web").map(|m| m.len()), Some(1));
        assert_eq!(c.healthcheck_for("cmd").map(|m| m.len()), Some(2));

        // A new probe replaces the old one whole: switching handlers works.
        let c = c
            .apply(&health(
                json!({"db": {"readinessProbe": {"httpGet": {"port": 8080}}}}),
            ))
            .unwrap();
        assert_eq!(
            c.healthcheck["db"],
            json!({"readinessProbe": {"httpGet": {"port": 8080}}})
        );

        // Unset one probe, then the last probe removes the process type.
        let c = c
            .apply(&health(json!({"web/cmd": {"livenessProbe": null}})))
            .unwrap();
        assert_eq!(c.healthcheck_for("cmd").map(|m| m.len()), Some(1));
        let c = c
            .apply(&health(json!({"web/cmd": {"readinessProbe": null}})))
            .unwrap();
        assert!(!c.healthcheck.contains_key("web/cmd"));
        let e = err(c.apply(&health(json!({"web/cmd": {"readinessProbe": null}}))));
        assert_eq!(e.kind, ErrorKind::Unprocessable);
        assert_eq!(
            e.message,
            "web/cmd.readinessProbe does not exist under healthcheck"
        );
        let e = err(c.apply(&health(json!({"db": {"livenessProbe": null}}))));
        assert_eq!(e.message, "db.livenessProbe does not exist under healthcheck");

        // Unset a whole process type.
        let c = c.apply(&health(json!({"worker": null}))).unwrap();
        assert!(!c.healthcheck.contains_key("worker"));

        // Nulls inside a probe are dropped.
        let c = c
            .apply(&health(json!({"db": {"livenessProbe": {"tcpSocket": {"port": 1, "host": null}, "periodSeconds": null}}})))
            .unwrap();
        assert_eq!(
            c.healthcheck["db"]["livenessProbe"],
            json!({"tcpSocket": {"port": 1}})
        );

        // Legacy rows with top-level probes are read and merged as web/cmd.
        let legacy = ConfigData {
            healthcheck: json!({"livenessProbe": {"tcpSocket": {"port": 1}}})
                .as_object()
                .cloned()
                .unwrap(),
            ..Default::default()
        };
        assert!(legacy.healthcheck_for("web").is_some());
        assert!(legacy.healthcheck_for("worker").is_none());
        let merged = legacy
            .apply(&health(json!({"readinessProbe": {"tcpSocket": {"port": 2}}})))
            .unwrap();
        assert_eq!(merged.healthcheck_for("web").map(|m| m.len()), Some(2));
        assert_eq!(merged.healthcheck.len(), 1);
        // An unrelated change leaves the legacy shape alone.
        let untouched = legacy.apply(&values(&[("A", "1")])).unwrap();
        assert_eq!(untouched.healthcheck, legacy.healthcheck);
    }

    #[test]
    fn healthcheck_schema() {
        let base = ConfigData::default();
        let cases = [
            // Deis's test_config_healthchecks_validations.
            (
                json!({"livenessProbe": {"httpGet": {"port": "50"}, "initialDelaySeconds": "t"}}),
                "Invalid healthcheck for process type web/cmd: livenessProbe.httpGet.port must be an integer between 1 and 65535",
            ),
            (
                json!({"livenessProbe": {"httpGet": {"path": "/"}, "initialDelaySeconds": 1}}),
                "Invalid healthcheck for process type web/cmd: livenessProbe.httpGet.port is required",
            ),
            (
                json!({"livenessProbe": {"httpGet": {"path": "/", "port": 5000}, "successThreshold": 5}}),
                "Invalid healthcheck for process type web/cmd: livenessProbe.successThreshold can only be 1",
            ),
            // Our own.
            (
                json!({"web": {"fooProbe": {}}}),
                "Healthcheck keys must be either livenessProbe or readinessProbe",
            ),
            (
                json!({"livenessProbe": {"tcpSocket": {"port": 1}}, "other": {}}),
                "Healthcheck keys must be either livenessProbe or readinessProbe",
            ),
            (
                json!({"Web": {"livenessProbe": {"tcpSocket": {"port": 1}}}}),
                validate::PROCESS_TYPE_MESSAGE,
            ),
            (
                json!("nope"),
                "Healthcheck settings must be a JSON object keyed by process type",
            ),
            (
                json!({"web": 5}),
                "Invalid healthcheck for process type web: expected an object with livenessProbe and/or readinessProbe",
            ),
            (
                json!({"web": {"livenessProbe": []}}),
                "Invalid healthcheck for process type web: livenessProbe must be an object",
            ),
            (
                json!({"web": {"livenessProbe": {}}}),
                "Invalid healthcheck for process type web: livenessProbe must have exactly one of exec, httpGet or tcpSocket",
            ),
            (
                json!({"web": {"livenessProbe": {"periodSeconds": 3}}}),
                "Invalid healthcheck for process type web: livenessProbe must have exactly one of exec, httpGet or tcpSocket",
            ),
            (
                json!({"web": {"readinessProbe": {"tcpSocket": {"port": 1}, "httpGet": {"port": 1}}}}),
                "Invalid healthcheck for process type web: readinessProbe must have exactly one of exec, httpGet or tcpSocket",
            ),
            (
                json!({"web": {"readinessProbe": {"exec": {"command": []}}}}),
                "Invalid healthcheck for process type web: readinessProbe.exec.command is required and must be a non-empty list of strings",
            ),
            (
                json!({"web": {"readinessProbe": {"exec": {"command": ["ok", 1]}}}}),
                "Invalid healthcheck for process type web: readinessProbe.exec.command is required and must be a non-empty list of strings",
            ),
            (
                json!({"web": {"readinessProbe": {"exec": {}}}}),
                "Invalid healthcheck for process type web: readinessProbe.exec.command is required and must be a non-empty list of strings",
            ),
            (
                json!({"web": {"readinessProbe": {"exec": "ls"}}}),
                "Invalid healthcheck for process type web: readinessProbe.exec must be an object",
            ),
            (
                json!({"web": {"readinessProbe": {"exec": {"command": ["x"], "shell": true}}}}),
                "Invalid healthcheck for process type web: readinessProbe.exec has unknown field shell",
            ),
            (
                json!({"web": {"readinessProbe": {"tcpSocket": {}}}}),
                "Invalid healthcheck for process type web: readinessProbe.tcpSocket.port is required",
            ),
            (
                json!({"web": {"readinessProbe": {"tcpSocket": {"port": 70000}}}}),
                "Invalid healthcheck for process type web: readinessProbe.tcpSocket.port must be an integer between 1 and 65535",
            ),
            (
                json!({"web": {"readinessProbe": {"tcpSocket": {"port": 1.5}}}}),
                "Invalid healthcheck for process type web: readinessProbe.tcpSocket.port must be an integer between 1 and 65535",
            ),
            (
                json!({"web": {"readinessProbe": {"httpGet": {"port": 1, "path": 5}}}}),
                "Invalid healthcheck for process type web: readinessProbe.httpGet.path must be a string",
            ),
            (
                json!({"web": {"readinessProbe": {"httpGet": {"port": 1, "httpHeaders": [{"name": "x"}]}}}}),
                "Invalid healthcheck for process type web: readinessProbe.httpGet.httpHeaders must be a list of {name, value} string pairs",
            ),
            (
                json!({"web": {"readinessProbe": {"httpGet": {"port": 1, "httpHeaders": {"name": "x", "value": "y"}}}}}),
                "Invalid healthcheck for process type web: readinessProbe.httpGet.httpHeaders must be a list of {name, value} string pairs",
            ),
            (
                json!({"web": {"readinessProbe": {"httpGet": {"port": 1, "query": "x"}}}}),
                "Invalid healthcheck for process type web: readinessProbe.httpGet has unknown field query",
            ),
            (
                json!({"web": {"readinessProbe": {"tcpSocket": {"port": 1}, "timeoutSeconds": -1}}}),
                "Invalid healthcheck for process type web: readinessProbe.timeoutSeconds must be a non-negative integer",
            ),
            (
                json!({"web": {"readinessProbe": {"tcpSocket": {"port": 1}, "periodSeconds": 2.5}}}),
                "Invalid healthcheck for process type web: readinessProbe.periodSeconds must be a non-negative integer",
            ),
            (
                json!({"web": {"readinessProbe": {"tcpSocket": {"port": 1}, "failureThreshold": true}}}),
                "Invalid healthcheck for process type web: readinessProbe.failureThreshold must be a non-negative integer",
            ),
            (
                json!({"web": {"readinessProbe": {"tcpSocket": {"port": 1}, "initialDelaySeconds": 3e10}}}),
                "Invalid healthcheck for process type web: readinessProbe.initialDelaySeconds must be a non-negative integer",
            ),
            (
                json!({"web": {"readinessProbe": {"tcpSocket": {"port": 1}, "bogus": 1}}}),
                "Invalid healthcheck for process type web: readinessProbe has unknown field bogus",
            ),
        ];
        for (change, want) in cases {
            assert_eq!(invalid(base.apply(&health(change.clone()))), want, "{change}");
        }
        // Floats that are whole numbers are integers (protobuf Struct input).
        assert!(
            base.apply(&health(
                json!({"web": {"livenessProbe": {"tcpSocket": {"port": 80.0}, "successThreshold": 1.0}}})
            ))
            .is_ok()
        );
        // Oversized input is refused before any work.
        let big: Vec<String> = (0..20_000).map(|i| format!("arg{i}")).collect();
        let m = invalid(base.apply(&health(
            json!({"web": {"livenessProbe": {"exec": {"command": big}}}}),
        )));
        assert!(m.contains("65536 bytes"), "{m}");
    }

    #[test]
    fn validation_happens_before_merge() {
        // A 400 wins over a 422 in the same request, as in Deis (serializer first).
        let mut ch = values(&[("BAD-KEY", "x")]);
        ch.values.insert("MISSING".to_owned(), None);
        assert_eq!(
            err(ConfigData::default().apply(&ch)).kind,
            ErrorKind::InvalidArgument
        );
    }

    #[test]
    fn serde_round_trip_and_defaults() {
        let c = ConfigData::default().apply(&values(&[("A", "1")])).unwrap();
        let json = serde_json::to_value(&c).unwrap();
        let back: ConfigData = serde_json::from_value(json).unwrap();
        assert_eq!(back, c);
        let partial: ConfigData = serde_json::from_value(json!({"values": {"X": "y"}})).unwrap();
        assert!(partial.memory.is_empty());
        assert!(partial.termination_grace_period.is_empty());

        let c = c.apply(&grace(&[("web", Some("45"))])).unwrap();
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(json["termination_grace_period"], json!({"web": "45"}));
        let back: ConfigData = serde_json::from_value(json).unwrap();
        assert_eq!(back, c);
    }
}
