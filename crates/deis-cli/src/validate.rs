//! Client-side checks of command arguments, with Deis's regexes and
//! messages, so mistakes are reported before anything is sent.

use std::net::IpAddr;

use anyhow::{Result, bail};
use regex::Regex;

/// Process type rule (Deis `^[a-z0-9]+(-[a-z0-9]+)*$`).
const PROC_TYPE: &str = r"[a-z0-9]+(?:-[a-z0-9]+)*";

fn matches(pattern: &str, text: &str) -> bool {
    Regex::new(pattern).is_ok_and(|re| re.is_match(text))
}

fn captures(pattern: &str, text: &str) -> Option<Vec<String>> {
    let re = Regex::new(pattern).ok()?;
    let caps = re.captures(text)?;
    Some(
        caps.iter()
            .map(|m| m.map(|m| m.as_str().to_owned()).unwrap_or_default())
            .collect(),
    )
}

/// Checks a process type such as `web` or `my-worker`.
pub(crate) fn proc_type(name: &str) -> Result<()> {
    if !matches(&format!("^{PROC_TYPE}$"), name) {
        bail!(
            "invalid process type '{name}': process types can only contain lowercase alphanumeric characters and hyphens"
        );
    }
    Ok(())
}

/// `type=count` for `ps:scale` (regex `^([a-z0-9]+(?:-[a-z0-9]+)*)=([0-9]+)$`).
pub(crate) fn scale_target(arg: &str) -> Result<(String, i32)> {
    let bad = || anyhow::anyhow!("'{arg}' does not match the pattern 'type=num', ex: web=2");
    let caps = captures(&format!("^({PROC_TYPE})=([0-9]+)$"), arg).ok_or_else(bad)?;
    let count = caps[2]
        .parse::<i32>()
        .map_err(|_| anyhow::anyhow!("'{arg}': {} processes is too many", caps[2]))?;
    Ok((caps[1].clone(), count))
}

/// Which resource `limits:*` acts on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LimitKind {
    /// `--memory` (the default).
    Memory,
    /// `--cpu`.
    Cpu,
}

/// `type=limit` or `type=request/limit` for `limits:set`: Deis's client
/// regex, then the controller's rule for the kind, so a memory value with a
/// CPU unit (or the reverse) is caught here.
pub(crate) fn limit(arg: &str, kind: LimitKind) -> Result<(String, String)> {
    const VALUE: &str = r"[0-9]+[bkmgBKMG]{1,2}|[0-9.]{1,5}|[0-9.]{1,5}m?";
    let pattern = format!("^({PROC_TYPE})=(({VALUE})(/({VALUE}))?)$");
    let Some(caps) = captures(&pattern, arg) else {
        bail!(
            "{arg} doesn't fit format type=#unit or type=# or type=#/#\nExamples: web=2G worker=500M db=1G/2G"
        );
    };
    let (ptype, value) = (caps[1].clone(), caps[2].clone());
    match kind {
        LimitKind::Memory => {
            const MEM: &str = "[0-9]+(?:MB|KB|GB|[BKMG])";
            if !matches(&format!("(?i)^(?:{MEM}|0)(?:/{MEM})?$"), &value) {
                bail!(
                    "invalid memory limit '{value}': use <number><unit> or <number><unit>/<number><unit>, where unit = B, K, M or G (e.g. web=512M)"
                );
            }
        }
        LimitKind::Cpu => {
            const CPU: &str = r"[-+]?[0-9]*\.?[0-9]+m?";
            if !matches(&format!("^{CPU}(?:/{CPU})?$"), &value) {
                bail!(
                    "invalid CPU limit '{value}': use a number of CPUs or millicores, optionally request/limit (e.g. web=500m or web=250m/1)"
                );
            }
        }
    }
    Ok((ptype, value))
}

/// The longest termination grace period the controller accepts, in seconds.
pub(crate) const MAX_TIMEOUT_SECONDS: u64 = 3600;

/// `type=seconds` for `timeouts:set` (Hephy's regex
/// `^([a-z0-9]+(?:-[a-z0-9]+)*)=([0-9]+)$`), at most an hour, as the
/// controller requires.
pub(crate) fn timeout(arg: &str) -> Result<(String, String)> {
    let Some(caps) = captures(&format!("^({PROC_TYPE})=([0-9]+)$"), arg) else {
        bail!("{arg} doesn't fit format type=#\nExamples: web=30 worker=300");
    };
    if caps[2].parse::<u64>().map_or(true, |n| n > MAX_TIMEOUT_SECONDS) {
        bail!(
            "invalid timeout '{arg}': the grace period is a whole number of seconds from 0 to {MAX_TIMEOUT_SECONDS}"
        );
    }
    Ok((caps[1].clone(), caps[2].clone()))
}

/// `key=value` for `tags:set`, both parts following Kubernetes label rules
/// (an optional DNS-subdomain prefix before `/` on the key).
pub(crate) fn tag(arg: &str) -> Result<(String, String)> {
    let (key, value) = deis_pair(arg, "rack=1 environment=production")?;
    const NAME: &str = r"^(?:[a-zA-Z0-9][-._a-zA-Z0-9]{0,61})?[a-zA-Z0-9]$";
    const SUBDOMAIN: &str = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";
    let (prefix, name) = match key.rsplit_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key.as_str()),
    };
    if let Some(prefix) = prefix
        && (prefix.len() > 253 || !matches(SUBDOMAIN, prefix))
    {
        bail!("invalid tag key '{key}': the prefix before '/' must be a DNS subdomain");
    }
    if !matches(NAME, name) {
        bail!(
            "invalid tag key '{key}': at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
        );
    }
    if !matches(NAME, &value) {
        bail!(
            "invalid tag value '{value}': at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
        );
    }
    Ok((key, value))
}

/// `key=value` for `labels:set` (Deis: exactly one `=`, both sides non-empty).
pub(crate) fn label(arg: &str) -> Result<(String, String)> {
    deis_pair(arg, "git_repo=https://github.com/deis/workflow team=frontend")
}

fn deis_pair(arg: &str, examples: &str) -> Result<(String, String)> {
    let parts: Vec<&str> = arg.split('=').collect();
    match parts.as_slice() {
        [key, value] if !key.is_empty() && !value.is_empty() => Ok(((*key).to_owned(), (*value).to_owned())),
        _ => bail!("{arg} is invalid, Must be in format key=value\nExamples: {examples}"),
    }
}

/// `username=..` or `password=..` for `registry:set` (the only keys Deis allows).
pub(crate) fn registry_item(arg: &str) -> Result<(String, String)> {
    let Some((key, value)) = arg
        .split_once('=')
        .filter(|(k, v)| !k.is_empty() && !v.is_empty())
    else {
        bail!("{arg} is invalid. Must be in format key=value\nExamples: username=bob password=s3cur3pw1");
    };
    if key != "username" && key != "password" {
        bail!("{key} is invalid. Valid keys are \"username\" or \"password\"");
    }
    Ok((key.to_owned(), value.to_owned()))
}

/// Bounds for `autoscale:set`.
pub(crate) fn autoscale(min: i32, max: i32, cpu_percent: i32) -> Result<()> {
    if min < 1 {
        bail!("--min must be at least 1");
    }
    if max < min {
        bail!("--max ({max}) must be at least --min ({min})");
    }
    if cpu_percent < 1 {
        bail!("--cpu-percent must be a positive percentage");
    }
    Ok(())
}

/// A whitelist entry: an IP address or a network in CIDR notation.
pub(crate) fn address(entry: &str) -> Result<()> {
    let (ip, prefix) = match entry.split_once('/') {
        Some((ip, prefix)) => (ip, Some(prefix)),
        None => (entry, None),
    };
    let Ok(ip) = ip.parse::<IpAddr>() else {
        bail!("The address {entry} is not valid");
    };
    let max = if ip.is_ipv4() { 32 } else { 128 };
    if let Some(prefix) = prefix
        && !prefix.parse::<u8>().is_ok_and(|p| p <= max)
    {
        bail!("The address {entry} is not valid");
    }
    Ok(())
}

/// Splits `a,b,c` into addresses, checking each.
pub(crate) fn addresses(list: &str) -> Result<Vec<String>> {
    let entries: Vec<String> = list
        .split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(str::to_owned)
        .collect();
    if entries.is_empty() {
        bail!("no addresses given; pass them separated by commas, e.g. 10.0.0.1,192.168.0.0/16");
    }
    for entry in &entries {
        address(entry)?;
    }
    Ok(entries)
}

/// `v3` or `3` → 3.
pub(crate) fn release_version(arg: &str) -> Result<i32> {
    let digits = arg.strip_prefix(['v', 'V']).unwrap_or(arg);
    match digits.parse::<i32>() {
        Ok(v) if v >= 1 && digits.chars().all(|c| c.is_ascii_digit()) => Ok(v),
        _ => bail!("'{arg}' is not a release version; use the form v3 (or 3)"),
    }
}

/// Splits a `ps:restart` target into process type and pod name: a pod name
/// (`<app>-<type>-<hash>-<id>`) gives both, anything else is a type.
pub(crate) fn restart_target(target: &str, app: &str) -> (String, String) {
    // Heroku's dyno name, as `deis logs` shows it: web.1.
    if let Some(caps) = captures(&format!("^({PROC_TYPE})\\.([0-9]+)$"), target) {
        return (caps[1].clone(), format!("{app}-{}-{}", caps[1], caps[2]));
    }
    let Some(short) = target.strip_prefix(&format!("{app}-")) else {
        return (target.to_owned(), String::new());
    };
    // A Kubernetes pod (myapp-web-1234567890-abcde) or a local process
    // (myapp-web-1), as `deis ps` shows them.
    let kubernetes = format!("^({PROC_TYPE}?)-[a-z0-9]{{8,10}}-[a-z0-9]{{5}}$");
    let local = format!("^({PROC_TYPE}?)-[0-9]+$");
    match captures(&kubernetes, short).or_else(|| captures(&local, short)) {
        Some(caps) => (caps[1].clone(), target.to_owned()),
        None => (target.to_owned(), String::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(a: &str, b: &str) -> (String, String) {
        (a.to_owned(), b.to_owned())
    }

    #[test]
    fn scale_targets() -> Result<()> {
        assert_eq!(scale_target("web=3")?, ("web".into(), 3));
        assert_eq!(scale_target("my-worker=0")?, ("my-worker".into(), 0));
        for bad in [
            "web",
            "web=",
            "Web=1",
            "web=-1",
            "web=1.5",
            "-web=1",
            "web-=1",
            "web=99999999999",
        ] {
            assert!(scale_target(bad).is_err(), "{bad}");
        }
        let message = scale_target("web")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert_eq!(message, "'web' does not match the pattern 'type=num', ex: web=2");
        Ok(())
    }

    #[test]
    fn memory_limits() -> Result<()> {
        for (arg, value) in [
            ("web=512M", "512M"),
            ("web=1G/2G", "1G/2G"),
            ("db=256MB", "256MB"),
            ("w=0", "0"),
            ("web=1g", "1g"),
        ] {
            assert_eq!(
                limit(arg, LimitKind::Memory)?,
                pair(arg.split('=').next().unwrap_or(""), value)
            );
        }
        for bad in ["web", "web=lots", "Web=1G", "web=1T", "web=1.5", "web=1G/500"] {
            assert!(limit(bad, LimitKind::Memory).is_err(), "{bad}");
        }
        Ok(())
    }

    #[test]
    fn cpu_limits() -> Result<()> {
        for (arg, value) in [
            ("web=1", "1"),
            ("web=500m", "500m"),
            ("web=250m/1", "250m/1"),
            ("web=0.5", "0.5"),
        ] {
            assert_eq!(limit(arg, LimitKind::Cpu)?, pair("web", value));
        }
        for bad in ["web=1G", "web=abc", "web=", "web=1/2G"] {
            assert!(limit(bad, LimitKind::Cpu).is_err(), "{bad}");
        }
        Ok(())
    }

    #[test]
    fn timeouts() -> Result<()> {
        assert_eq!(timeout("web=30")?, pair("web", "30"));
        assert_eq!(timeout("my-worker=0")?, pair("my-worker", "0"));
        assert_eq!(timeout("web=3600")?, pair("web", "3600"));
        for bad in [
            "web",
            "web=",
            "=30",
            "Web=30",
            "web=-1",
            "web=1.5",
            "web=30s",
            "web=3601",
            "web=99999999999999999999999",
            "web=30=1",
        ] {
            assert!(timeout(bad).is_err(), "{bad}");
        }
        let message = timeout("web").err().map(|e| e.to_string()).unwrap_or_default();
        assert_eq!(
            message,
            "web doesn't fit format type=#\nExamples: web=30 worker=300"
        );
        let message = timeout("web=7200")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(message.contains("from 0 to 3600"), "{message}");
        Ok(())
    }

    #[test]
    fn tags() -> Result<()> {
        assert_eq!(tag("rack=1")?, pair("rack", "1"));
        assert_eq!(
            tag("kubernetes.io/hostname=node-1")?,
            pair("kubernetes.io/hostname", "node-1")
        );
        for bad in [
            "rack",
            "rack=",
            "=1",
            "a=b=c",
            "-rack=1",
            "rack=-1",
            "Bad_Prefix!/x=1",
            &format!("{}=1", "a".repeat(64)),
        ] {
            assert!(tag(bad).is_err(), "{bad}");
        }
        Ok(())
    }

    #[test]
    fn labels_and_registry() -> Result<()> {
        assert_eq!(label("team=frontend")?, pair("team", "frontend"));
        assert!(label("team").is_err());
        assert!(label("a=b=c").is_err());
        assert_eq!(registry_item("password=p=w")?, pair("password", "p=w"));
        assert!(registry_item("hostname=x").is_err());
        assert!(registry_item("username=").is_err());
        Ok(())
    }

    #[test]
    fn autoscale_bounds() {
        assert!(autoscale(1, 3, 80).is_ok());
        assert!(autoscale(0, 3, 80).is_err());
        assert!(autoscale(3, 2, 80).is_err());
        assert!(autoscale(1, 1, 0).is_err());
    }

    #[test]
    fn proc_types() {
        assert!(proc_type("web").is_ok());
        assert!(proc_type("my-worker2").is_ok());
        for bad in ["", "Web", "web_1", "-web", "web-"] {
            assert!(proc_type(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn whitelist_addresses() -> Result<()> {
        assert_eq!(addresses("10.0.0.1, 192.168.0.0/16,::1,2001:db8::/32")?.len(), 4);
        for bad in ["", "10.0.0.256", "10.0.0.0/33", "host.example.com", "::1/129"] {
            assert!(addresses(bad).is_err(), "{bad}");
        }
        Ok(())
    }

    #[test]
    fn release_versions() -> Result<()> {
        assert_eq!(release_version("v3")?, 3);
        assert_eq!(release_version("12")?, 12);
        for bad in ["v", "v0", "x3", "v-1", "3.0", "+3"] {
            assert!(release_version(bad).is_err(), "{bad}");
        }
        Ok(())
    }

    #[test]
    fn restart_targets() {
        assert_eq!(restart_target("web", "myapp"), pair("web", ""));
        assert_eq!(restart_target("my-worker", "myapp"), pair("my-worker", ""));
        assert_eq!(
            restart_target("myapp-web-1234567890-abcde", "myapp"),
            pair("web", "myapp-web-1234567890-abcde")
        );
        assert_eq!(
            restart_target("myapp-my-worker-5d8c7f9b4d-x2k9q", "myapp"),
            pair("my-worker", "myapp-my-worker-5d8c7f9b4d-x2k9q")
        );
        assert_eq!(restart_target("myapp-web-2", "myapp"), pair("web", "myapp-web-2"));
        assert_eq!(
            restart_target("myapp-my-worker-10", "myapp"),
            pair("my-worker", "myapp-my-worker-10")
        );
        assert_eq!(restart_target("web.2", "myapp"), pair("web", "myapp-web-2"));
        assert_eq!(restart_target("web-2", "myapp"), pair("web-2", ""));
    }
}
