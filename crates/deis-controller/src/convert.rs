//! Conversions between store records and protobuf messages, and between
//! protobuf `Value`/`Struct` and JSON.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use deis_core::Error;
use deis_proto::v2 as pb;
use deis_store::{Page, PageRequest};
use prost_types::value::Kind;

/// Deis's page size.
pub(crate) const DEFAULT_PAGE_SIZE: i32 = 100;
/// The largest page a client may ask for.
pub(crate) const MAX_PAGE_SIZE: i32 = 10_000;

pub(crate) fn timestamp(t: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: i32::try_from(t.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

pub(crate) fn page_request(limit: i32, offset: i32) -> deis_core::Result<PageRequest> {
    if limit < 0 || offset < 0 {
        return Err(Error::invalid("limit and offset must not be negative."));
    }
    let limit = if limit == 0 {
        DEFAULT_PAGE_SIZE
    } else {
        limit.min(MAX_PAGE_SIZE)
    };
    Ok(PageRequest {
        limit: limit as u64,
        offset: offset as u64,
    })
}

/// `next` and `previous` links of a page, relative to the REST API root.
pub(crate) struct PageLinks {
    pub(crate) count: i32,
    pub(crate) next: Option<String>,
    pub(crate) previous: Option<String>,
}

pub(crate) fn page_links<T>(path: &str, request: PageRequest, page: &Page<T>) -> PageLinks {
    let PageRequest { limit, offset } = request;
    let next =
        (offset + limit < page.count).then(|| format!("{path}?limit={limit}&offset={}", offset + limit));
    let previous = (offset > 0).then(|| {
        let prev = offset.saturating_sub(limit);
        if prev == 0 {
            format!("{path}?limit={limit}")
        } else {
            format!("{path}?limit={limit}&offset={prev}")
        }
    });
    PageLinks {
        count: i32::try_from(page.count).unwrap_or(i32::MAX),
        next,
        previous,
    }
}

/// List responses: the Deis page envelope around converted items.
pub(crate) trait PageResponse<P> {
    fn from_page(links: PageLinks, results: Vec<P>) -> Self;
}

macro_rules! page_responses {
    ($($response:ident<$item:ident>),* $(,)?) => {
        $(impl PageResponse<pb::$item> for pb::$response {
            fn from_page(links: PageLinks, results: Vec<pb::$item>) -> Self {
                pb::$response { count: links.count, next: links.next, previous: links.previous, results }
            }
        })*
    };
}

page_responses!(
    ListUsersResponse<User>,
    ListAdminsResponse<AdminPerm>,
    ListAppsResponse<App>,
    ListBuildsResponse<Build>,
    ListReleasesResponse<Release>,
    ListDomainsResponse<Domain>,
    ListCertsResponse<Certificate>,
    ListKeysResponse<Key>,
);

/// The response for one page of records at REST path `path`.
pub(crate) fn paged<T, P, R: PageResponse<P>>(
    path: &str,
    request: PageRequest,
    page: &Page<T>,
    convert: impl FnMut(&T) -> P,
) -> R {
    R::from_page(
        page_links(path, request, page),
        page.items.iter().map(convert).collect(),
    )
}

pub(crate) fn user(u: &deis_store::User) -> pb::User {
    pb::User {
        username: u.username.clone(),
        email: u.email.clone(),
        first_name: u.first_name.clone(),
        last_name: u.last_name.clone(),
        is_superuser: u.is_superuser,
        is_staff: u.is_staff,
        is_active: u.is_active,
        last_login: u.last_login.map(timestamp),
        date_joined: Some(timestamp(u.date_joined)),
    }
}

pub(crate) fn app(a: &deis_store::App, url: String) -> pb::App {
    pb::App {
        uuid: a.uuid.clone(),
        id: a.name.clone(),
        owner: a.owner.clone(),
        structure: a.structure.clone().into_iter().collect(),
        url,
        created: Some(timestamp(a.created)),
        updated: Some(timestamp(a.updated)),
    }
}

pub(crate) fn config(c: &deis_store::Config) -> pb::Config {
    let d = &c.data;
    let map = |m: &BTreeMap<String, String>| m.clone().into_iter().collect();
    pb::Config {
        uuid: c.uuid.clone(),
        owner: c.owner.clone(),
        app: c.app.clone(),
        values: map(&d.values),
        memory: map(&d.memory),
        cpu: map(&d.cpu),
        tags: map(&d.tags),
        registry: map(&d.registry),
        healthcheck: Some(json_object_to_struct(&d.healthcheck)),
        created: Some(timestamp(c.created)),
        updated: Some(timestamp(c.updated)),
        termination_grace_period: map(&d.termination_grace_period),
    }
}

pub(crate) fn build(b: &deis_store::Build) -> pb::Build {
    pb::Build {
        uuid: b.uuid.clone(),
        owner: b.owner.clone(),
        app: b.app.clone(),
        image: b.image.clone(),
        sha: b.sha.clone(),
        procfile: b.procfile.clone().into_iter().collect(),
        dockerfile: b.dockerfile.clone(),
        created: Some(timestamp(b.created)),
        updated: Some(timestamp(b.updated)),
    }
}

pub(crate) fn release(r: &deis_store::Release) -> pb::Release {
    pb::Release {
        uuid: r.uuid.clone(),
        owner: r.owner.clone(),
        app: r.app.clone(),
        version: r.version,
        summary: r.summary.clone(),
        failed: r.failed,
        config: r.config_uuid.clone(),
        build: r.build_uuid.clone(),
        created: Some(timestamp(r.created)),
        updated: Some(timestamp(r.updated)),
    }
}

pub(crate) fn domain(d: &deis_store::Domain) -> pb::Domain {
    pb::Domain {
        owner: d.owner.clone(),
        app: d.app.clone(),
        domain: d.domain.clone(),
        certificate: d.certificate.clone().unwrap_or_default(),
        created: Some(timestamp(d.created)),
        updated: Some(timestamp(d.updated)),
    }
}

pub(crate) fn certificate(c: &deis_store::Certificate) -> pb::Certificate {
    pb::Certificate {
        name: c.name.clone(),
        owner: c.owner.clone(),
        common_name: c.common_name.clone(),
        san: c.san.clone(),
        fingerprint: c.fingerprint.clone(),
        expires: Some(timestamp(c.expires)),
        starts: Some(timestamp(c.starts)),
        issuer: c.issuer.clone(),
        subject: c.subject.clone(),
        domains: c.domains.clone(),
        created: Some(timestamp(c.created)),
        updated: Some(timestamp(c.updated)),
    }
}

pub(crate) fn key(k: &deis_store::SshKey) -> pb::Key {
    pb::Key {
        uuid: k.uuid.clone(),
        owner: k.owner.clone(),
        id: k.name.clone(),
        public: k.public_key.clone(),
        fingerprint: k.md5_fingerprint.clone(),
        sha256_fingerprint: k.sha256_fingerprint.clone(),
        created: Some(timestamp(k.created)),
        updated: Some(timestamp(k.updated)),
    }
}

pub(crate) fn settings(s: &deis_store::AppSettings) -> pb::AppSettings {
    pb::AppSettings {
        uuid: s.uuid.clone(),
        owner: s.owner.clone(),
        app: s.app.clone(),
        maintenance: s.maintenance,
        routable: s.routable,
        whitelist: s.whitelist.clone(),
        autoscale: s
            .autoscale
            .iter()
            .map(|(k, a)| {
                (
                    k.clone(),
                    pb::Autoscale {
                        min: a.min,
                        max: a.max,
                        cpu_percent: a.cpu_percent,
                    },
                )
            })
            .collect(),
        label: s.label.clone().into_iter().collect(),
        created: Some(timestamp(s.created)),
        updated: Some(timestamp(s.updated)),
    }
}

pub(crate) fn tls(t: &deis_store::Tls) -> pb::Tls {
    pb::Tls {
        uuid: t.uuid.clone(),
        owner: t.owner.clone(),
        app: t.app.clone(),
        https_enforced: t.https_enforced,
        created: Some(timestamp(t.created)),
        updated: Some(timestamp(t.updated)),
    }
}

/// A protobuf `Value` used as a map entry: null unsets, strings, numbers and
/// booleans set (stringified, as Deis does); lists and objects are refused.
pub(crate) fn setting_value(
    attr: &str,
    key: &str,
    value: &prost_types::Value,
) -> deis_core::Result<Option<String>> {
    match &value.kind {
        None | Some(Kind::NullValue(_)) => Ok(None),
        Some(Kind::StringValue(s)) => Ok(Some(s.clone())),
        Some(Kind::BoolValue(b)) => Ok(Some(if *b { "True".into() } else { "False".into() })),
        Some(Kind::NumberValue(n)) => {
            if !n.is_finite() {
                return Err(Error::invalid(format!(
                    "{key} under {attr} must be a finite number."
                )));
            }
            // Integral numbers print without ".0", as Python's str() of an int would.
            Ok(Some(if n.fract() == 0.0 && n.abs() < 1e15 {
                format!("{}", *n as i64)
            } else {
                n.to_string()
            }))
        }
        Some(Kind::ListValue(_) | Kind::StructValue(_)) => Err(Error::invalid(format!(
            "{key} under {attr} must be a string, number or null."
        ))),
    }
}

/// Converts a map of protobuf values into set/unset changes.
pub(crate) fn setting_changes(
    attr: &str,
    map: &std::collections::HashMap<String, prost_types::Value>,
) -> deis_core::Result<BTreeMap<String, Option<String>>> {
    map.iter()
        .map(|(k, v)| Ok((k.clone(), setting_value(attr, k, v)?)))
        .collect()
}

pub(crate) fn value_to_json(value: &prost_types::Value) -> serde_json::Value {
    match &value.kind {
        None | Some(Kind::NullValue(_)) => serde_json::Value::Null,
        Some(Kind::BoolValue(b)) => serde_json::Value::Bool(*b),
        Some(Kind::StringValue(s)) => serde_json::Value::String(s.clone()),
        Some(Kind::NumberValue(n)) => {
            // Whole numbers become JSON integers so integer-typed fields
            // (ports, thresholds) validate as integers.
            if n.fract() == 0.0 && n.abs() < 9.0e15 {
                serde_json::Value::from(*n as i64)
            } else {
                serde_json::Number::from_f64(*n).map_or(serde_json::Value::Null, serde_json::Value::Number)
            }
        }
        Some(Kind::ListValue(list)) => {
            serde_json::Value::Array(list.values.iter().map(value_to_json).collect())
        }
        Some(Kind::StructValue(s)) => serde_json::Value::Object(struct_to_json(s)),
    }
}

pub(crate) fn struct_to_json(s: &prost_types::Struct) -> serde_json::Map<String, serde_json::Value> {
    s.fields
        .iter()
        .map(|(k, v)| (k.clone(), value_to_json(v)))
        .collect()
}

fn json_to_value(value: &serde_json::Value) -> prost_types::Value {
    let kind = match value {
        serde_json::Value::Null => Kind::NullValue(0),
        serde_json::Value::Bool(b) => Kind::BoolValue(*b),
        serde_json::Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or(0.0)),
        serde_json::Value::String(s) => Kind::StringValue(s.clone()),
        serde_json::Value::Array(items) => Kind::ListValue(prost_types::ListValue {
            values: items.iter().map(json_to_value).collect(),
        }),
        serde_json::Value::Object(map) => Kind::StructValue(json_object_to_struct(map)),
    };
    prost_types::Value { kind: Some(kind) }
}

pub(crate) fn json_object_to_struct(map: &serde_json::Map<String, serde_json::Value>) -> prost_types::Struct {
    prost_types::Struct {
        fields: map.iter().map(|(k, v)| (k.clone(), json_to_value(v))).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_stringified_like_deis() {
        let num = prost_types::Value {
            kind: Some(Kind::NumberValue(5000.0)),
        };
        assert_eq!(
            setting_value("values", "PORT", &num).unwrap(),
            Some("5000".into())
        );
        let null = prost_types::Value {
            kind: Some(Kind::NullValue(0)),
        };
        assert_eq!(setting_value("values", "X", &null).unwrap(), None);
        let list = prost_types::Value {
            kind: Some(Kind::ListValue(Default::default())),
        };
        assert!(setting_value("values", "X", &list).is_err());
    }

    #[test]
    fn json_round_trip() {
        let json = serde_json::json!({"web": {"livenessProbe": {"httpGet": {"port": 5000, "path": "/"}, "periodSeconds": 10}}});
        let map = json.as_object().unwrap();
        assert_eq!(&struct_to_json(&json_object_to_struct(map)), map);
    }

    #[test]
    fn page_links_point_both_ways() {
        let page = Page {
            count: 250,
            items: vec![()],
        };
        let links = page_links(
            "/v2/apps",
            PageRequest {
                limit: 100,
                offset: 100,
            },
            &page,
        );
        assert_eq!(links.next.as_deref(), Some("/v2/apps?limit=100&offset=200"));
        assert_eq!(links.previous.as_deref(), Some("/v2/apps?limit=100"));
        let last = page_links(
            "/v2/apps",
            PageRequest {
                limit: 100,
                offset: 200,
            },
            &page,
        );
        assert_eq!(last.next, None);
    }
}
