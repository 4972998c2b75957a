//! Input validation with Deis's rules and, where Deis has one, its exact message.
//!
//! Every function returns [`Error::invalid`] (InvalidArgument) on bad input and
//! never panics: these run on untrusted network input.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::LazyLock;

use idna::uts46::{AsciiDenyList, DnsLength, Hyphens, Uts46};
use regex::Regex;

use crate::{Error, Result};

/// Deis's app id rule (`App.id` slug plus `validate_app_id`).
static APP_ID: LazyLock<Regex> = LazyLock::new(|| re(r"^[a-z]([a-z0-9-]*[a-z0-9])?$"));
/// Deis's `PROCTYPE_MATCH`.
static PROCTYPE: LazyLock<Regex> = LazyLock::new(|| re(r"^[a-z0-9]+(-[a-z0-9]+)*$"));
/// Deis's `TAGVAL_MATCH`, spelled with ASCII classes because k8s labels are ASCII
/// (Rust's `\w` and `\d` are Unicode-aware).
static TAGVAL: LazyLock<Regex> = LazyLock::new(|| re(r"^(?:[a-zA-Z0-9][-._a-zA-Z0-9]{0,61})?[a-zA-Z0-9]$"));
/// A lowercase RFC 1123 DNS subdomain, what Kubernetes requires of label-key prefixes.
static DNS_SUBDOMAIN: LazyLock<Regex> =
    LazyLock::new(|| re(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"));
/// Deis's `CONFIGKEY_MATCH` (`^[a-z_]+[a-z0-9_]*$`, case-insensitive), spelled
/// with explicit ASCII classes so Unicode case folding (e.g. the Kelvin sign)
/// cannot sneak non-ASCII names into environment variables.
pub(crate) static CONFIG_KEY: LazyLock<Regex> = LazyLock::new(|| re(r"^[A-Za-z_][A-Za-z0-9_]*$"));
/// Django's username rule, restricted to ASCII.
static USERNAME: LazyLock<Regex> = LazyLock::new(|| re(r"^[A-Za-z0-9_.@+-]+$"));
/// Deis's `validate_label` for certificate names.
static CERT_NAME: LazyLock<Regex> = LazyLock::new(|| re(r"^[a-z0-9-]+$"));
/// The local part of an e-mail address (Django's dot-atom or quoted string).
static EMAIL_USER: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r#"^(?:[-!#$%&'*+/=?^_`{}|~0-9A-Za-z]+(?:\.[-!#$%&'*+/=?^_`{}|~0-9A-Za-z]+)*|"(?:[\x01-\x08\x0b\x0c\x0e-\x1f!#-\[\]-\x7f]|\\[\x01-\x09\x0b\x0c\x0e-\x7f])*")$"#,
    )
});
/// The domain part of an e-mail address once converted to ASCII (Django's rule).
static EMAIL_DOMAIN: LazyLock<Regex> =
    LazyLock::new(|| re(r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+(?:[A-Za-z0-9-]{2,63})$"));

/// Renders user input for an error message: control characters escaped and
/// at most 100 characters, so messages stay one readable line.
pub(crate) fn shown(s: &str) -> String {
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i == 100 {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Compiles a pattern that is a compile-time constant of this module.
pub(crate) fn re(pattern: &str) -> Regex {
    match Regex::new(pattern) {
        Ok(r) => r,
        // The patterns are literals covered by the tests; a typo is a bug, not input.
        Err(e) => panic!("invalid built-in regex {pattern:?}: {e}"),
    }
}

/// Message for an invalid app id (Deis's wording).
pub const APP_ID_MESSAGE: &str = "App name must start with an alphabetic character, cannot end with a hyphen and can only contain a-z (lowercase), 0-9 and hyphens.";
/// Message for an invalid process type (Deis's `PROCTYPE_MISMATCH_MSG`).
pub const PROCESS_TYPE_MESSAGE: &str = "Process types can only contain lowercase alphanumeric characters";
/// Message for an invalid config key (Deis's wording).
pub const CONFIG_KEY_MESSAGE: &str =
    "Config keys must start with a letter or underscore and only contain [A-z0-9_]";
/// The largest replica count a single process type may be scaled to.
pub const MAX_SCALE: i64 = 1000;
/// The longest process type name accepted; `<app>-<ptype>` must still fit k8s names.
pub const MAX_PROCESS_TYPE_LEN: usize = 63;

/// Validates an application id; `reserved` is the configured list of reserved names.
pub fn app_id(id: &str, reserved: &[String]) -> Result<()> {
    if id.chars().count() > 63 {
        return Err(Error::invalid(
            "Ensure this field has no more than 63 characters.",
        ));
    }
    if !APP_ID.is_match(id) {
        return Err(Error::invalid(APP_ID_MESSAGE));
    }
    if reserved.iter().any(|r| r == id) {
        return Err(Error::invalid(format!("{id} is a reserved name.")));
    }
    Ok(())
}

/// Validates a process type name such as `web` or `worker-2`.
pub fn process_type(t: &str) -> Result<()> {
    if !PROCTYPE.is_match(t) {
        return Err(Error::invalid(PROCESS_TYPE_MESSAGE));
    }
    if t.len() > MAX_PROCESS_TYPE_LEN {
        return Err(Error::invalid(format!(
            "Process type names must be {MAX_PROCESS_TYPE_LEN} characters or less."
        )));
    }
    Ok(())
}

/// Validates a Procfile: every type is a valid process type with a non-empty command.
pub fn procfile(p: &BTreeMap<String, String>) -> Result<()> {
    for (ptype, command) in p {
        if command.trim().is_empty() {
            return Err(Error::invalid("Command can't be empty for process type"));
        }
        process_type(ptype)?;
    }
    Ok(())
}

/// Validates a username with Django's rule (ASCII only): 1–150 of letters, digits, `_.@+-`.
pub fn username(u: &str) -> Result<()> {
    if u.is_empty() {
        return Err(Error::invalid("username is a required field"));
    }
    let n = u.chars().count();
    if n > 150 {
        return Err(Error::invalid(format!(
            "Ensure this value has at most 150 characters (it has {n})."
        )));
    }
    if !USERNAME.is_match(u) {
        return Err(Error::invalid(
            "Enter a valid username. This value may contain only letters, numbers, and @/./+/-/_ characters.",
        ));
    }
    Ok(())
}

/// Validates an e-mail address; the empty string is allowed (Django's `blank=True`).
pub fn email(e: &str) -> Result<()> {
    if e.is_empty() {
        return Ok(());
    }
    let invalid = || Error::invalid("Enter a valid email address.");
    // Django's EmailField max_length.
    if e.len() > 254 {
        return Err(Error::invalid(
            "Ensure this field has no more than 254 characters.",
        ));
    }
    let Some((user, domain)) = e.rsplit_once('@') else {
        return Err(invalid());
    };
    if user.is_empty() || user.len() > 64 || !EMAIL_USER.is_match(user) {
        return Err(invalid());
    }
    let ascii_domain = if domain.is_ascii() {
        domain.to_owned()
    } else {
        Uts46::new()
            .to_ascii(
                domain.as_bytes(),
                AsciiDenyList::STD3,
                Hyphens::Check,
                DnsLength::Verify,
            )
            .map_err(|_| invalid())?
            .into_owned()
    };
    let literal = ascii_domain.strip_prefix('[').and_then(|d| d.strip_suffix(']'));
    match literal {
        Some(lit) => {
            let addr = lit.strip_prefix("IPv6:").unwrap_or(lit);
            if addr.parse::<IpAddr>().is_err() {
                return Err(invalid());
            }
        }
        None => {
            let tld_ok = ascii_domain
                .rsplit('.')
                .next()
                .is_some_and(|tld| !tld.ends_with('-') && !tld.starts_with('-'));
            if !EMAIL_DOMAIN.is_match(&ascii_domain) || !tld_ok {
                return Err(invalid());
            }
        }
    }
    Ok(())
}

/// The largest password accepted, in bytes; a guard against hashing huge input.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// Validates a password: non-empty and at most [`MAX_PASSWORD_BYTES`] bytes.
pub fn password(p: &str) -> Result<()> {
    if p.is_empty() {
        return Err(Error::invalid("password is a required field"));
    }
    if p.len() > MAX_PASSWORD_BYTES {
        return Err(Error::invalid(format!(
            "Passwords must be at most {MAX_PASSWORD_BYTES} bytes long."
        )));
    }
    Ok(())
}

/// Validates a custom domain and returns the ACE (punycode, lowercase) form to store.
///
/// Follows Deis's `DomainSerializer.validate_domain`: strip one trailing dot,
/// refuse a bare `*`, allow a leading `*.` wildcard, convert every other label
/// to ACE, refuse an all-digit TLD and anything over 253 characters.
pub fn domain(input: &str) -> Result<String> {
    let value = input.strip_suffix('.').unwrap_or(input);
    if value == "*" {
        return Err(Error::invalid("Hostname can't only be a wildcard"));
    }
    // Bound the work done on absurd input before running IDNA over it; the
    // check on the final form below gives the precise message.
    if value.len() > 4 * 253 {
        return Err(Error::invalid("Hostname must be 253 characters or less."));
    }
    let mut labels: Vec<&str> = value.split('.').collect();
    let wildcard = labels.first() == Some(&"*");
    if wildcard {
        labels.remove(0);
    }
    let mut ace = Vec::with_capacity(labels.len() + 1);
    if wildcard {
        ace.push("*".to_owned());
    }
    for label in &labels {
        match label_to_ace(label) {
            Ok(a) => ace.push(a),
            Err(reason) => {
                return Err(Error::invalid(format!(
                    "Hostname does not look valid, could not convert to ACE {}: {reason}",
                    shown(value)
                )));
            }
        }
    }
    // RFC 3696: the TLD is never all-numeric.
    if ace
        .last()
        .is_some_and(|tld| !tld.is_empty() && tld.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(Error::invalid("Hostname does not look valid."));
    }
    let joined = ace.join(".");
    if joined.len() > 253 {
        return Err(Error::invalid("Hostname must be 253 characters or less."));
    }
    Ok(joined)
}

/// Converts one label to its ACE form, or explains why it cannot be.
fn label_to_ace(label: &str) -> std::result::Result<String, String> {
    if label.is_empty() {
        return Err("Empty Label".to_owned());
    }
    let converted = Uts46::new().to_ascii(
        label.as_bytes(),
        AsciiDenyList::STD3,
        Hyphens::Check,
        DnsLength::Verify,
    );
    match converted {
        // A mapped full stop (e.g. U+3002) would smuggle in an extra label.
        Ok(a) if !a.contains('.') && !a.is_empty() && a.len() <= 63 => Ok(a.into_owned()),
        Ok(_) => Err(format!("Label \"{}\" is not a valid label", shown(label))),
        Err(_) => Err(explain_label(label)),
    }
}

/// A human reason for a label IDNA refused, in the spirit of Python's `idna` errors.
fn explain_label(label: &str) -> String {
    if label.len() > 63 && label.is_ascii() {
        return "Label too long".to_owned();
    }
    if let Some((pos, c)) = label
        .chars()
        .enumerate()
        .find(|(_, c)| c.is_ascii() && !(c.is_ascii_alphanumeric() || *c == '-'))
    {
        return format!(
            "Codepoint U+{:04X} at position {} of \"{}\" not allowed",
            u32::from(c),
            pos + 1,
            shown(label)
        );
    }
    if label.starts_with('-') || label.ends_with('-') {
        return "Label must not start or end with a hyphen".to_owned();
    }
    let lower = label.to_ascii_lowercase();
    if lower.get(2..4) == Some("--") && !lower.starts_with("xn--") {
        return "Label has disallowed hyphens in 3rd and 4th position".to_owned();
    }
    if lower.starts_with("xn--") {
        return "Malformed A-label".to_owned();
    }
    if label.len() > 63 {
        return "Label too long".to_owned();
    }
    format!(
        "Label \"{}\" is not a valid internationalized domain name label",
        shown(label)
    )
}

/// Renders a stored (ACE) domain in Unicode for display; invalid input is returned unchanged.
pub fn domain_to_unicode(ace: &str) -> String {
    let labels: Vec<String> = ace
        .split('.')
        .map(|label| {
            if label.len() > 4 && label.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("xn--")) {
                let (uni, res) =
                    Uts46::new().to_unicode(label.as_bytes(), AsciiDenyList::EMPTY, Hyphens::Allow);
                if res.is_ok() {
                    return uni.into_owned();
                }
            }
            label.to_owned()
        })
        .collect();
    labels.join(".")
}

/// Validates a whitelist entry: an IP address, a network, or an interface
/// (address with prefix, host bits allowed), as Python's `ipaddress` accepts.
pub fn whitelist_address(a: &str) -> Result<()> {
    if whitelist_network(a).is_some() {
        Ok(())
    } else {
        Err(Error::invalid(format!("The address {} is not valid", shown(a))))
    }
}

/// The network a whitelist entry means: `addr`, `addr/prefixlen`, or (IPv4,
/// as Python's `ip_network` accepts) `addr/netmask` or `addr/hostmask`.
pub fn whitelist_network(a: &str) -> Option<ipnet::IpNet> {
    let (addr, prefix) = match a.split_once('/') {
        None => {
            let addr: IpAddr = a.parse().ok()?;
            let max = if addr.is_ipv4() { 32 } else { 128 };
            (addr, max)
        }
        Some((addr, mask)) => {
            let addr: IpAddr = addr.parse().ok()?;
            let max = if addr.is_ipv4() { 32 } else { 128 };
            if !mask.is_empty() && mask.len() <= 3 && mask.bytes().all(|b| b.is_ascii_digit()) {
                let len: u8 = mask.parse().ok()?;
                (len <= max).then_some((addr, len))?
            } else if addr.is_ipv4() {
                let bits = u32::from(mask.parse::<Ipv4Addr>().ok()?);
                let netmask = bits.leading_ones() + bits.trailing_zeros() == 32;
                let hostmask = bits.leading_zeros() + bits.trailing_ones() == 32;
                let len = if netmask {
                    bits.leading_ones()
                } else if hostmask {
                    bits.leading_zeros()
                } else {
                    return None;
                };
                (addr, u8::try_from(len).ok()?)
            } else {
                return None;
            }
        }
    };
    ipnet::IpNet::new(addr, prefix).ok()
}

/// One process type's autoscale settings (a Kubernetes HPA).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Autoscale {
    /// Minimum replicas, at least 1.
    pub min: i32,
    /// Maximum replicas, at least `min`.
    pub max: i32,
    /// Target average CPU utilisation, 1–100.
    pub cpu_percent: i32,
}

/// Validates one process type's autoscale spec `{"min":…, "max":…, "cpu_percent":…}`.
///
/// Integers may arrive as JSON floats with no fractional part (as from a
/// protobuf `Struct`); JSON Schema counts those as integers too.
pub fn autoscale(ptype: &str, spec: &serde_json::Value) -> Result<Autoscale> {
    process_type(ptype)?;
    let Some(obj) = spec.as_object() else {
        return Err(Error::invalid(format!(
            "Autoscale settings for process type {ptype} must be an object with min, max and cpu_percent"
        )));
    };
    let field = |name: &str| -> Result<i64> {
        obj.get(name).and_then(json_integer).ok_or_else(|| {
            Error::invalid(format!(
                "Autoscale settings for process type {ptype}: {name} is required and must be an integer"
            ))
        })
    };
    let (min, max, cpu) = (field("min")?, field("max")?, field("cpu_percent")?);
    if min < 1 {
        return Err(Error::invalid(format!(
            "Autoscale settings for process type {ptype}: min must be at least 1"
        )));
    }
    if max < min {
        return Err(Error::invalid(format!(
            "Autoscale settings for process type {ptype}: max must be greater than or equal to min"
        )));
    }
    if max > MAX_SCALE {
        return Err(Error::invalid(format!(
            "Autoscale settings for process type {ptype}: max cannot be more than {MAX_SCALE}"
        )));
    }
    if !(1..=100).contains(&cpu) {
        return Err(Error::invalid(format!(
            "Autoscale settings for process type {ptype}: cpu_percent must be between 1 and 100"
        )));
    }
    // All three are within 1..=MAX_SCALE or 1..=100 here, so they fit in i32.
    Ok(Autoscale {
        min: i32::try_from(min).unwrap_or(i32::MAX),
        max: i32::try_from(max).unwrap_or(i32::MAX),
        cpu_percent: i32::try_from(cpu).unwrap_or(100),
    })
}

/// A JSON integer: an integral number (floats with no fraction count, booleans do not).
pub(crate) fn json_integer(v: &serde_json::Value) -> Option<i64> {
    let n = v.as_number()?;
    if let Some(i) = n.as_i64() {
        return Some(i);
    }
    let f = n.as_f64()?;
    // 2^53 bounds the floats that represent integers exactly.
    (f.fract() == 0.0 && f.abs() <= 9_007_199_254_740_992.0).then_some(f as i64)
}

/// Validates a certificate name (Deis's `validate_label`, ≤253 characters).
pub fn cert_name(n: &str) -> Result<()> {
    if n.len() > 253 {
        return Err(Error::invalid(
            "Ensure this field has no more than 253 characters.",
        ));
    }
    if !CERT_NAME.is_match(n) {
        return Err(Error::invalid(
            "Can only contain a-z (lowercase), 0-9 and hyphens",
        ));
    }
    Ok(())
}

/// Validates an SSH key id: 1–128 printable characters without whitespace.
pub fn key_id(id: &str) -> Result<()> {
    let n = id.chars().count();
    if n == 0 || n > 128 || id.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Error::invalid(
            "SSH key ids must be 1 to 128 printable characters without spaces",
        ));
    }
    Ok(())
}

/// Validates a requested replica count for `ptype` and returns it as `i32`.
pub fn scale_count(ptype: &str, n: i64) -> Result<i32> {
    if n < 0 {
        return Err(Error::invalid(format!(
            "Invalid scaling format: {ptype} must be greater than or equal to zero"
        )));
    }
    if n > MAX_SCALE {
        return Err(Error::invalid(format!(
            "Invalid scaling format: {ptype} cannot be scaled above {MAX_SCALE}"
        )));
    }
    i32::try_from(n).map_err(|_| {
        Error::invalid(format!(
            "Invalid scaling format: {ptype} cannot be scaled above {MAX_SCALE}"
        ))
    })
}

/// Validates a label or tag key: optional DNS-subdomain `prefix/` plus a 1–63 character name.
pub fn label_key(k: &str) -> Result<()> {
    let (prefix, name) = match k.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, k),
    };
    if let Some(prefix) = prefix {
        if prefix.len() > 253 {
            return Err(Error::invalid("Tag key prefixes must 253 characters or less."));
        }
        if !DNS_SUBDOMAIN.is_match(prefix) || prefix.split('.').any(|l| l.len() > 63) {
            return Err(Error::invalid("Tag key prefixes must be DNS subdomains."));
        }
    }
    if !TAGVAL.is_match(name) {
        return Err(Error::invalid(
            "Tag keys must be alphanumeric or \"-_.\", and 1-63 characters.",
        ));
    }
    Ok(())
}

/// Validates a label or tag value: empty, or 1–63 of alphanumerics and `-_.`.
pub fn label_value(v: &str) -> Result<()> {
    if !v.is_empty() && !TAGVAL.is_match(v) {
        return Err(Error::invalid(
            "Tag values must be alphanumeric or \"-_.\", and 1-63 characters.",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;
    use serde_json::json;

    fn msg<T: std::fmt::Debug>(r: Result<T>) -> String {
        match r {
            Ok(v) => panic!("expected an error, got {v:?}"),
            Err(e) => {
                assert_eq!(e.kind, ErrorKind::InvalidArgument, "{e}");
                e.message
            }
        }
    }

    #[test]
    fn app_ids() {
        let reserved = vec!["deis".to_owned(), "grafana".to_owned()];
        for ok in ["a", "autotest", "my-app-2", "a1", &"a".repeat(63), "x-y-z"] {
            assert!(app_id(ok, &reserved).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "camelCase",
            "123name-starts-with-numbers",
            "name-ends-with-hyphen-",
            "-lead",
            "under_score",
            "dot.ted",
            "spa ce",
            "ünïcödé",
            "аpp", // Cyrillic 'а'
            "UPPER",
        ] {
            assert_eq!(msg(app_id(bad, &reserved)), APP_ID_MESSAGE, "{bad}");
        }
        assert_eq!(
            msg(app_id(&"a".repeat(64), &reserved)),
            "Ensure this field has no more than 63 characters."
        );
        assert_eq!(msg(app_id("deis", &reserved)), "deis is a reserved name.");
        assert_eq!(msg(app_id("grafana", &reserved)), "grafana is a reserved name.");
        assert!(app_id("deis-builder", &reserved).is_ok());
    }

    #[test]
    fn process_types() {
        for ok in ["web", "worker", "cmd", "web-2", "a1-b2-c3", "123"] {
            assert!(process_type(ok).is_ok(), "{ok}");
        }
        for bad in [
            "", "Web", "w3&b", "web_1", "-web", "web-", "we--b", "web/cmd", "wéb", "web ",
        ] {
            assert_eq!(msg(process_type(bad)), PROCESS_TYPE_MESSAGE, "{bad}");
        }
        assert!(msg(process_type(&"a".repeat(64))).contains("63 characters"));
    }

    #[test]
    fn procfiles() {
        let mut p = BTreeMap::new();
        p.insert("web".to_owned(), "bin/web".to_owned());
        p.insert("worker".to_owned(), "bin/worker --queue=x".to_owned());
        assert!(procfile(&p).is_ok());
        assert!(procfile(&BTreeMap::new()).is_ok());

        let mut empty = p.clone();
        empty.insert("clock".to_owned(), "  ".to_owned());
        assert_eq!(msg(procfile(&empty)), "Command can't be empty for process type");

        let mut bad = p;
        bad.insert("Web_1".to_owned(), "x".to_owned());
        assert_eq!(msg(procfile(&bad)), PROCESS_TYPE_MESSAGE);
    }

    #[test]
    fn usernames() {
        for ok in [
            "autotest",
            "a",
            "first.last",
            "me@example.com",
            "a+b-c_d",
            &"u".repeat(150),
        ] {
            assert!(username(ok).is_ok(), "{ok}");
        }
        assert_eq!(msg(username("")), "username is a required field");
        for bad in ["with space", "tab\t", "slash/", "ünï", "semi;colon", "quote'"] {
            assert!(msg(username(bad)).starts_with("Enter a valid username."), "{bad}");
        }
        assert_eq!(
            msg(username(&"u".repeat(151))),
            "Ensure this value has at most 150 characters (it has 151)."
        );
    }

    #[test]
    fn emails() {
        for ok in [
            "",
            "autotest@deis.io",
            "first.last+tag@sub.example.co.uk",
            "x@example.museum",
            "user@bücher.de",
            "o'brien@example.com",
            "user@[127.0.0.1]",
            "user@[IPv6:::1]",
        ] {
            assert!(email(ok).is_ok(), "{ok}");
        }
        for bad in [
            "plain",
            "@example.com",
            "user@",
            "user@localhost",
            "user@exa mple.com",
            "a..b@example.com",
            ".a@example.com",
            "user@example.c",
            "user@-example.com",
            "user@example..com",
            "user@[not-an-ip]",
            "us er@example.com",
        ] {
            assert_eq!(msg(email(bad)), "Enter a valid email address.", "{bad}");
        }
        let long = format!("{}@example.com", "a".repeat(250));
        assert!(msg(email(&long)).contains("254"));
    }

    #[test]
    fn passwords() {
        assert!(password("x").is_ok());
        assert!(password(&"p".repeat(1024)).is_ok());
        assert_eq!(msg(password("")), "password is a required field");
        assert!(msg(password(&"p".repeat(1025))).contains("1024 bytes"));
    }

    #[test]
    fn domains_accepted() {
        // Deis's test_manage_domain list plus §2.4's examples.
        let cases = [
            ("test-domain.example.com", "test-domain.example.com"),
            ("django.paas-sandbox", "django.paas-sandbox"),
            ("django.paas--sandbox", "django.paas--sandbox"),
            ("domain", "domain"),
            ("domain1", "domain1"),
            (
                "not.too.loooooooooooooooooooooooooooooooooooooooooooooooooooooooooooong",
                "not.too.loooooooooooooooooooooooooooooooooooooooooooooooooooooooooooong",
            ),
            ("3com.com", "3com.com"),
            ("3333.xyz", "3333.xyz"),
            ("3333.com", "3333.com"),
            ("w3.example.com", "w3.example.com"),
            ("MYDOMAIN.NET", "mydomain.net"),
            ("autotest.127.0.0.1.xip.io", "autotest.127.0.0.1.xip.io"),
            ("autotest.127.0.0.1.xip.io.", "autotest.127.0.0.1.xip.io"),
            ("*.deis.example.com", "*.deis.example.com"),
            ("*.com", "*.com"),
            ("bücher.de", "xn--bcher-kva.de"),
            ("xn--bcher-kva.de", "xn--bcher-kva.de"),
            ("XN--BCHER-KVA.DE", "xn--bcher-kva.de"),
            ("*.bücher.de", "*.xn--bcher-kva.de"),
            ("例え.テスト", "xn--r8jz45g.xn--zckzah"),
            ("пример.рф", "xn--e1afmkfd.xn--p1ai"),
        ];
        for (input, want) in cases {
            assert_eq!(domain(input).as_deref(), Ok(want), "{input}");
        }
        // 253 characters exactly is fine.
        let max = format!(
            "{}.{}.{}.{}",
            "a".repeat(63),
            "b".repeat(63),
            "c".repeat(63),
            "d".repeat(61)
        );
        assert_eq!(max.len(), 253);
        assert!(domain(&max).is_ok());
    }

    #[test]
    fn domains_rejected() {
        let ace = "Hostname does not look valid, could not convert to ACE";
        for bad in [
            "this_is_an.invalid.domain",
            "too.looooooooooooooooooooooooooooooooooooooooooooooooooooooooooooong",
            "foo.*.bar.com",
            "**.example.com",
            &"a".repeat(300),
            "",
            ".",
            "foo..bar",
            ".foo.com",
            "foo.com..",
            "-foo.com",
            "foo-.com",
            "ab--cd.com",
            "xn--.com",
            "xn--zz-.com",
            "spa ce.com",
            "semi;colon.com",
            "foo/bar.com",
            "exa\u{3002}mple.com",
            "bad\u{0}.com",
        ] {
            let m = msg(domain(bad));
            assert!(m.starts_with(ace), "{bad:?}: {m}");
        }
        assert_eq!(
            msg(domain("this_is_an.invalid.domain")),
            "Hostname does not look valid, could not convert to ACE this_is_an.invalid.domain: Codepoint U+005F at position 5 of \"this_is_an\" not allowed"
        );
        assert!(msg(domain(&"a".repeat(300))).ends_with("Label too long"));
        assert_eq!(
            msg(domain("this-is-an.invalid.1")),
            "Hostname does not look valid."
        );
        assert_eq!(msg(domain("1.2.3.4")), "Hostname does not look valid.");
        assert_eq!(msg(domain("*")), "Hostname can't only be a wildcard");
        assert_eq!(msg(domain("*.")), "Hostname can't only be a wildcard");
        let long = format!(
            "{}.{}.{}.{}",
            "a".repeat(63),
            "b".repeat(63),
            "c".repeat(63),
            "d".repeat(62)
        );
        assert_eq!(msg(domain(&long)), "Hostname must be 253 characters or less.");
    }

    #[test]
    fn unicode_and_ace_are_equivalent() {
        for (uni, ace) in [
            ("bücher.de", "xn--bcher-kva.de"),
            ("例え.テスト", "xn--r8jz45g.xn--zckzah"),
            ("*.bücher.de", "*.xn--bcher-kva.de"),
        ] {
            assert_eq!(domain(uni).as_deref(), Ok(ace));
            assert_eq!(domain(ace).as_deref(), Ok(ace));
            assert_eq!(domain_to_unicode(ace), uni);
        }
        assert_eq!(domain_to_unicode("example.com"), "example.com");
        // Invalid punycode is shown as stored.
        assert_eq!(domain_to_unicode("xn--zz-.com"), "xn--zz-.com");
    }

    #[test]
    fn shown_escapes_and_truncates() {
        assert_eq!(shown("plain"), "plain");
        assert_eq!(shown("a\u{0}b\n"), "a\\u{0}b\\n");
        assert_eq!(shown(&"x".repeat(150)).chars().count(), 101);
        let m = msg(domain("bad\u{0}.com"));
        assert!(!m.chars().any(char::is_control), "{m}");
        let m = msg(whitelist_address(&"9".repeat(5000)));
        assert!(m.len() < 200, "{m}");
    }

    #[test]
    fn whitelist_networks() {
        let net = |a: &str| whitelist_network(a).map(|n| n.to_string());
        assert_eq!(net("1.2.3.4").as_deref(), Some("1.2.3.4/32"));
        assert_eq!(
            net("192.168.1.0/255.255.255.0").as_deref(),
            Some("192.168.1.0/24")
        );
        assert_eq!(net("192.168.1.0/0.0.0.255").as_deref(), Some("192.168.1.0/24"));
        assert_eq!(net("2001:db8::/32").as_deref(), Some("2001:db8::/32"));
        assert_eq!(net("::1").as_deref(), Some("::1/128"));
        assert_eq!(net("1.2.3.4/33"), None);
    }

    #[test]
    fn whitelist() {
        for ok in [
            "1.2.3.4",
            "0.0.0.0/0",
            "10.0.0.0/8",
            "10.1.2.3/8",
            "192.168.1.0/255.255.255.0",
            "192.168.1.0/0.0.0.255",
            "10.0.0.1/32",
            "::1",
            "2001:db8::/32",
            "2001:db8::1/64",
            "::ffff:1.2.3.4",
        ] {
            assert!(whitelist_address(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "1.2.3",
            "0.0.0/0",
            "256.1.1.1",
            "1.2.3.4/33",
            "1.2.3.4/",
            "1.2.3.4/-1",
            "01.2.3.4",
            "1.2.3.4/255.0.255.0",
            "::1/129",
            "::1/ffff::",
            "example.com",
            " 1.2.3.4",
            "1.2.3.4/8/8",
        ] {
            assert_eq!(
                msg(whitelist_address(bad)),
                format!("The address {bad} is not valid"),
                "{bad}"
            );
        }
    }

    #[test]
    fn autoscale_specs() {
        assert_eq!(
            autoscale("web", &json!({"min": 2, "max": 8, "cpu_percent": 40})),
            Ok(Autoscale {
                min: 2,
                max: 8,
                cpu_percent: 40
            })
        );
        // Protobuf Struct numbers arrive as floats.
        assert_eq!(
            autoscale("web", &json!({"min": 1.0, "max": 1.0, "cpu_percent": 100.0})),
            Ok(Autoscale {
                min: 1,
                max: 1,
                cpu_percent: 100
            })
        );
        let cases = [
            (json!("nope"), "must be an object"),
            (json!(null), "must be an object"),
            (json!({"max": 2, "cpu_percent": 50}), "min is required"),
            (json!({"min": 1, "cpu_percent": 50}), "max is required"),
            (json!({"min": 1, "max": 2}), "cpu_percent is required"),
            (
                json!({"min": "1", "max": 2, "cpu_percent": 50}),
                "min is required and must be an integer",
            ),
            (
                json!({"min": 1.5, "max": 2, "cpu_percent": 50}),
                "min is required and must be an integer",
            ),
            (
                json!({"min": true, "max": 2, "cpu_percent": 50}),
                "min is required and must be an integer",
            ),
            (
                json!({"min": 0, "max": 2, "cpu_percent": 50}),
                "min must be at least 1",
            ),
            (
                json!({"min": -3, "max": 2, "cpu_percent": 50}),
                "min must be at least 1",
            ),
            (
                json!({"min": 3, "max": 2, "cpu_percent": 50}),
                "max must be greater than or equal to min",
            ),
            (
                json!({"min": 1, "max": 5000, "cpu_percent": 50}),
                "max cannot be more than 1000",
            ),
            (
                json!({"min": 1, "max": 2, "cpu_percent": 0}),
                "cpu_percent must be between 1 and 100",
            ),
            (
                json!({"min": 1, "max": 2, "cpu_percent": 101}),
                "cpu_percent must be between 1 and 100",
            ),
            (
                json!({"min": 1, "max": 2, "cpu_percent": 1e300}),
                "cpu_percent is required",
            ),
        ];
        for (spec, want) in cases {
            let m = msg(autoscale("web", &spec));
            assert!(m.contains(want), "{spec}: {m}");
            assert!(m.contains("web"), "{m}");
        }
        assert_eq!(
            msg(autoscale("Web", &json!({"min": 1, "max": 1, "cpu_percent": 1}))),
            PROCESS_TYPE_MESSAGE
        );
    }

    #[test]
    fn cert_names() {
        for ok in ["foo", "www-example-com", "a1", &"a".repeat(253)] {
            assert!(cert_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "Foo", "foo.com", "foo_bar", "*.foo", "spa ce"] {
            assert_eq!(
                msg(cert_name(bad)),
                "Can only contain a-z (lowercase), 0-9 and hyphens",
                "{bad}"
            );
        }
        assert!(msg(cert_name(&"a".repeat(254))).contains("253"));
    }

    #[test]
    fn key_ids() {
        for ok in ["mykey", "alice@laptop", "id_rsa.pub", "ключ", &"k".repeat(128)] {
            assert!(key_id(ok).is_ok(), "{ok}");
        }
        for bad in ["", "with space", "tab\tkey", "nl\n", "nul\0", &"k".repeat(129)] {
            assert!(msg(key_id(bad)).starts_with("SSH key ids must be"), "{bad:?}");
        }
    }

    #[test]
    fn scale_counts() {
        assert_eq!(scale_count("web", 0), Ok(0));
        assert_eq!(scale_count("web", 3), Ok(3));
        assert_eq!(scale_count("web", MAX_SCALE), Ok(1000));
        assert_eq!(
            msg(scale_count("web", -1)),
            "Invalid scaling format: web must be greater than or equal to zero"
        );
        assert_eq!(
            msg(scale_count("worker", 1001)),
            "Invalid scaling format: worker cannot be scaled above 1000"
        );
        assert!(msg(scale_count("web", i64::MAX)).starts_with("Invalid scaling format:"));
        assert!(msg(scale_count("web", i64::MIN)).starts_with("Invalid scaling format:"));
    }

    #[test]
    fn label_keys_and_values() {
        for ok in [
            "environ",
            "rack-1",
            "a",
            "A.b_c-D",
            "kubernetes.io/hostname",
            "example.com/tier",
            "deis.io/x",
            &"k".repeat(63),
        ] {
            assert!(label_key(ok).is_ok(), "{ok}");
        }
        let name_msg = "Tag keys must be alphanumeric or \"-_.\", and 1-63 characters.";
        for bad in [
            "",
            "-x",
            "x-",
            "sp ace",
            "ü",
            &"k".repeat(64),
            "a/b/c",
            "example.com/",
        ] {
            assert_eq!(msg(label_key(bad)), name_msg, "{bad}");
        }
        let prefix_msg = "Tag key prefixes must be DNS subdomains.";
        for bad in [
            "/name",
            "Example.com/name",
            "ex_ample.com/name",
            "-ex.com/name",
            "a..b/name",
        ] {
            assert_eq!(msg(label_key(bad)), prefix_msg, "{bad}");
        }
        let long_prefix = format!("{}/name", vec!["a".repeat(60); 5].join("."));
        assert!(msg(label_key(&long_prefix)).contains("253"));

        for ok in ["", "prod", "a.b-c_d", &"v".repeat(63)] {
            assert!(label_value(ok).is_ok(), "{ok}");
        }
        for bad in ["-x", "sp ace", &"v".repeat(64), "a/b"] {
            assert!(msg(label_value(bad)).starts_with("Tag values must be"), "{bad}");
        }
    }
}
