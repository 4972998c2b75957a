//! The HTTP layer: routing, the verbs, patches, subresources, discovery and watch streams.

use std::collections::HashMap;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::json::{apply_merge, fields_v1, int_at, json_patch, map_path, merge_patch, meta_mut, str_at};
use crate::resources::{
    DEPLOYMENTS, NAMESPACES, PODS, REPLICASETS, RESOURCES, ResDef, SERVICES, Target, parse_path,
    serves_group_version,
};
use crate::selector::{FieldSelector, LabelSelector};
use crate::store::{EvType, HistEvent, ObjKey, State, now_ts, random_suffix};
use crate::{Recorded, Shared};

/// A response body: a complete buffer, or a stream of chunks (watch).
#[derive(Debug)]
pub(crate) enum Body {
    Full(Option<Bytes>),
    Stream(mpsc::Receiver<Bytes>),
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            Body::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            Body::Stream(rx) => rx.poll_recv(cx).map(|chunk| chunk.map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, Body::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Body::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            Body::Full(None) => SizeHint::with_exact(0),
            Body::Stream(_) => SizeHint::default(),
        }
    }
}

/// An error answered as a Kubernetes `Status`.
#[derive(Debug)]
pub(crate) struct ApiError {
    code: StatusCode,
    reason: &'static str,
    message: String,
    details: Option<Value>,
}

fn details(def: &ResDef, name: &str) -> Value {
    json!({"name": name, "group": def.group, "kind": def.plural})
}

impl ApiError {
    fn new(code: StatusCode, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    fn with_details(mut self, d: Value) -> Self {
        self.details = Some(d);
        self
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BadRequest", message)
    }

    fn path_not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            "the server could not find the requested resource",
        )
    }

    pub(crate) fn not_found(def: &ResDef, name: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("{} \"{name}\" not found", def.qualified()),
        )
        .with_details(details(def, name))
    }

    fn already_exists(def: &ResDef, name: &str) -> Self {
        Self::new(
            StatusCode::CONFLICT,
            "AlreadyExists",
            format!("{} \"{name}\" already exists", def.qualified()),
        )
        .with_details(details(def, name))
    }

    fn conflict(def: &ResDef, name: &str) -> Self {
        Self::new(
            StatusCode::CONFLICT,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
                def.qualified()
            ),
        )
        .with_details(details(def, name))
    }

    fn invalid(def: &ResDef, name: &str, message: &str) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid",
            format!("{} \"{name}\" is invalid: {message}", def.kind),
        )
        .with_details(details(def, name))
    }

    fn method_not_allowed(method: &Method) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            format!("the server does not allow this method on the requested resource ({method})"),
        )
    }

    fn status_json(&self) -> Value {
        let mut s = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code.as_u16(),
        });
        if let Some(d) = &self.details {
            s["details"] = d.clone();
        }
        s
    }

    pub(crate) fn into_response(self) -> Response<Body> {
        json_response(self.code, &self.status_json())
    }
}

fn response(code: StatusCode, content_type: &'static str, body: Body) -> Response<Body> {
    let mut r = Response::new(body);
    *r.status_mut() = code;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, http::HeaderValue::from_static(content_type));
    r
}

fn json_response(code: StatusCode, v: &Value) -> Response<Body> {
    response(
        code,
        "application/json",
        Body::Full(Some(Bytes::from(v.to_string()))),
    )
}

fn text_response(code: StatusCode, text: String) -> Response<Body> {
    response(
        code,
        "text/plain; charset=utf-8",
        Body::Full(Some(Bytes::from(text))),
    )
}

/// The query string.
struct Params(HashMap<String, String>);

impl Params {
    fn parse(query: &str) -> Self {
        Self(form_urlencoded::parse(query.as_bytes()).into_owned().collect())
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str).filter(|s| !s.is_empty())
    }

    fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), Some("true" | "1"))
    }

    fn dry_run(&self) -> bool {
        self.get("dryRun") == Some("All")
    }

    fn number(&self, key: &str) -> Result<Option<u64>, ApiError> {
        self.get(key)
            .map(|s| {
                s.parse::<u64>()
                    .map_err(|_| ApiError::bad_request(format!("invalid {key}: {s:?}")))
            })
            .transpose()
    }

    fn selectors(&self) -> Result<(LabelSelector, FieldSelector), ApiError> {
        let labels = LabelSelector::parse(self.get("labelSelector").unwrap_or_default())
            .map_err(|e| ApiError::bad_request(format!("invalid labelSelector: {e}")))?;
        let fields = FieldSelector::parse(self.get("fieldSelector").unwrap_or_default())
            .map_err(|e| ApiError::bad_request(format!("invalid fieldSelector: {e}")))?;
        Ok((labels, fields))
    }
}

/// Answers one request.
pub(crate) async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Response<Body> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or_default().to_string();
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    shared.record(Recorded {
        method: method.to_string(),
        path: path.clone(),
        query: query.clone(),
        content_type: content_type.clone(),
    });
    if method == Method::GET && crate::attach::is_upgrade(&req) {
        let attached = match parse_path(&path) {
            Ok(Target {
                res: PODS,
                ns: Some(ns),
                name: Some(name),
                sub: Some(sub),
                ..
            }) if sub == "attach" => crate::attach::upgrade(shared, ObjKey::new(PODS, &ns, &name), req),
            _ => Err(ApiError::bad_request(format!(
                "{path} cannot be upgraded to a WebSocket"
            ))),
        };
        return attached.unwrap_or_else(ApiError::into_response);
    }
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return ApiError::bad_request(format!("reading the request body: {e}")).into_response(),
    };
    let params = Params::parse(&query);
    match route(&shared, &method, &path, &params, content_type.as_deref(), &body) {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!(%method, %path, code = e.code.as_u16(), message = %e.message, "fake kube error");
            e.into_response()
        }
    }
}

fn route(
    shared: &Arc<Shared>,
    method: &Method,
    path: &str,
    params: &Params,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<Response<Body>, ApiError> {
    if let Some(r) = discovery(shared, method, path)? {
        return Ok(r);
    }
    let target = parse_path(path).map_err(|_| ApiError::path_not_found())?;
    let def = target.def();
    let dry = params.dry_run();
    let Some(name) = target.name.clone() else {
        return match *method {
            Method::GET if params.flag("watch") => watch(shared, target, params),
            Method::GET => Ok(json_response(
                StatusCode::OK,
                &shared.read(|st| st.list_objects(&target, params))?,
            )),
            Method::POST if def.namespaced && target.ns.is_none() => {
                Err(ApiError::method_not_allowed(method))
            }
            Method::POST => {
                let obj = parse_object(body)?;
                let created = shared.write(|st| st.create_object(&target, None, obj, dry, None))?;
                Ok(json_response(StatusCode::CREATED, &created))
            }
            Method::DELETE if def.namespaced && target.ns.is_none() => {
                Err(ApiError::method_not_allowed(method))
            }
            Method::DELETE => Ok(json_response(
                StatusCode::OK,
                &shared.write(|st| st.delete_collection(&target, params))?,
            )),
            _ => Err(ApiError::method_not_allowed(method)),
        };
    };
    let key = ObjKey::new(target.res, target.ns.as_deref().unwrap_or_default(), &name);
    let ok = |v: Value| Ok(json_response(StatusCode::OK, &v));
    match target.sub.as_deref() {
        None | Some("status") if *method == Method::GET => ok(shared.read(|st| st.get_object(&key))?),
        None => match *method {
            Method::PUT => {
                let obj = parse_object(body)?;
                ok(shared.write(|st| st.replace_object(&key, obj, dry))?)
            }
            Method::PATCH => {
                let kind = PatchKind::from_content_type(content_type)?;
                let patch = parse_json(body, kind)?;
                let (code, v) =
                    shared.write(|st| st.patch_object(&target, &key, kind, patch, params, dry))?;
                Ok(json_response(code, &v))
            }
            Method::DELETE => {
                let mut deleted =
                    shared.write(|st| st.delete(&key).ok_or_else(|| ApiError::not_found(def, &name)))?;
                if target.res == NAMESPACES {
                    map_path(&mut deleted, &["status"]).insert("phase".into(), json!("Terminating"));
                }
                ok(deleted)
            }
            _ => Err(ApiError::method_not_allowed(method)),
        },
        Some("status") if def.status_subresource => match *method {
            Method::PUT => {
                let obj = parse_object(body)?;
                ok(shared.write(|st| st.write_status(&key, Some(obj), None, dry))?)
            }
            Method::PATCH => {
                let kind = PatchKind::from_content_type(content_type)?;
                let patch = parse_json(body, kind)?;
                ok(shared.write(|st| st.write_status(&key, None, Some((kind, patch)), dry))?)
            }
            _ => Err(ApiError::method_not_allowed(method)),
        },
        Some("scale") if matches!(target.res, DEPLOYMENTS | REPLICASETS) => match *method {
            Method::GET => ok(shared.read(|st| st.get_object(&key).map(|o| scale_of(&o)))?),
            Method::PUT => {
                let obj = parse_object(body)?;
                ok(shared.write(|st| st.write_scale(&key, Some(obj), None, dry))?)
            }
            Method::PATCH => {
                let kind = PatchKind::from_content_type(content_type)?;
                let patch = parse_json(body, kind)?;
                ok(shared.write(|st| st.write_scale(&key, None, Some((kind, patch)), dry))?)
            }
            _ => Err(ApiError::method_not_allowed(method)),
        },
        Some("log") if target.res == PODS => match *method {
            Method::GET => Ok(text_response(
                StatusCode::OK,
                shared.read(|st| st.pod_log(&key, params))?,
            )),
            _ => Err(ApiError::method_not_allowed(method)),
        },
        Some(_) => Err(ApiError::path_not_found()),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PatchKind {
    Merge,
    Json,
    Apply,
}

impl PatchKind {
    fn from_content_type(ct: Option<&str>) -> Result<Self, ApiError> {
        let ct = ct
            .unwrap_or_default()
            .split(';')
            .next()
            .unwrap_or_default()
            .trim();
        match ct {
            "application/merge-patch+json" | "application/strategic-merge-patch+json" => Ok(Self::Merge),
            "application/json-patch+json" => Ok(Self::Json),
            "application/apply-patch+yaml" => Ok(Self::Apply),
            other => Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "UnsupportedMediaType",
                format!(
                    "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got {other:?})"
                ),
            )),
        }
    }
}

/// Parses a request body as JSON. Apply patches are declared YAML
/// (`application/apply-patch+yaml`), but kube-rs (like client-go) sends JSON, which is valid
/// YAML; only the JSON subset of YAML is accepted here.
fn parse_json(body: &[u8], kind: PatchKind) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        let extra = if kind == PatchKind::Apply {
            " (this fake accepts apply patches in JSON only)"
        } else {
            ""
        };
        ApiError::bad_request(format!("error decoding the request body as JSON: {e}{extra}"))
    })
}

fn parse_object(body: &[u8]) -> Result<Value, ApiError> {
    let v = parse_json(body, PatchKind::Merge)?;
    if !v.is_object() {
        return Err(ApiError::bad_request("the request body must be a JSON object"));
    }
    Ok(v)
}

fn check_kind(def: &ResDef, obj: &Value) -> Result<(), ApiError> {
    let kind = str_at(obj, "/kind");
    if !kind.is_empty() && kind != def.kind {
        return Err(ApiError::bad_request(format!(
            "the kind of the object ({kind}) does not match the resource ({})",
            def.kind
        )));
    }
    Ok(())
}

/// Rejects bodies of a shape the real server could not decode (it answers those with 400 too),
/// so that the controllers only ever see objects where objects belong.
fn check_shape(obj: &Value) -> Result<(), ApiError> {
    let bad = |field: &str, want: &str| {
        Err(ApiError::bad_request(format!(
            "invalid body: {field} must be {want}"
        )))
    };
    if !obj.is_object() {
        return bad("the body", "a JSON object");
    }
    for field in ["metadata", "spec", "status"] {
        if !matches!(obj.get(field), None | Some(Value::Null | Value::Object(_))) {
            return bad(field, "an object");
        }
    }
    for field in ["labels", "annotations"] {
        match obj.pointer(&format!("/metadata/{field}")) {
            None | Some(Value::Null) => {}
            Some(Value::Object(m)) if m.values().all(Value::is_string) => {}
            Some(_) => return bad(&format!("metadata.{field}"), "a map of strings"),
        }
    }
    for field in ["name", "namespace", "generateName", "resourceVersion"] {
        if !matches!(
            obj.pointer(&format!("/metadata/{field}")),
            None | Some(Value::Null | Value::String(_))
        ) {
            return bad(&format!("metadata.{field}"), "a string");
        }
    }
    match obj.pointer("/metadata/ownerReferences") {
        None | Some(Value::Null) => {}
        Some(Value::Array(refs)) if refs.iter().all(Value::is_object) => {}
        Some(_) => return bad("metadata.ownerReferences", "a list of objects"),
    }
    if !matches!(obj.pointer("/spec/replicas"), None | Some(Value::Null))
        && int_at(obj, "/spec/replicas").is_none()
    {
        return bad("spec.replicas", "an integer");
    }
    Ok(())
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns_label)
}

fn validate_name(res: usize, name: &str) -> Result<(), ApiError> {
    let def = &RESOURCES[res];
    let label_only = matches!(res, NAMESPACES | SERVICES);
    let ok = if label_only {
        is_dns_label(name)
    } else {
        is_dns_subdomain(name)
    };
    if ok {
        Ok(())
    } else {
        let what = if label_only {
            "RFC 1123 label"
        } else {
            "RFC 1123 subdomain"
        };
        Err(ApiError::invalid(
            def,
            name,
            &format!(
                "metadata.name: Invalid value: \"{name}\": a lowercase {what} must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"
            ),
        ))
    }
}

/// Metadata fields owned by the server, dropped from request bodies.
const SERVER_META: [&str; 6] = [
    "uid",
    "resourceVersion",
    "creationTimestamp",
    "generation",
    "managedFields",
    "deletionTimestamp",
];

fn managed_fields_entry(def: &ResDef, manager: &str, applied: &Value) -> Value {
    json!({
        "manager": manager,
        "operation": "Apply",
        "apiVersion": def.api_version(),
        "time": now_ts(),
        "fieldsType": "FieldsV1",
        "fieldsV1": fields_v1(applied),
    })
}

/// Replaces (or adds) the manager's `managedFields` entry.
fn set_managed_fields(obj: &mut Value, def: &ResDef, manager: &str, applied: &Value) {
    let entry = managed_fields_entry(def, manager, applied);
    let meta = meta_mut(obj);
    let mut entries: Vec<Value> = meta
        .get("managedFields")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    entries.retain(|e| !(str_at(e, "/manager") == manager && str_at(e, "/operation") == "Apply"));
    entries.push(entry);
    meta.insert("managedFields".into(), json!(entries));
}

fn has_managed_fields(obj: &Value, manager: &str) -> bool {
    obj.pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .is_some_and(|es| {
            es.iter()
                .any(|e| str_at(e, "/manager") == manager && str_at(e, "/operation") == "Apply")
        })
}

/// Copies the server-owned fields of `stored` into `obj`: identity metadata, `managedFields`,
/// and the status of types with a status subresource.
fn keep_server_fields(def: &ResDef, obj: &mut Value, stored: &Value) {
    for field in SERVER_META {
        let v = stored.pointer(&format!("/metadata/{field}")).cloned();
        let meta = meta_mut(obj);
        match v {
            Some(v) => meta.insert(field.into(), v),
            None => meta.remove(field),
        };
    }
    for field in ["name", "namespace"] {
        if let Some(v) = stored.pointer(&format!("/metadata/{field}")).cloned() {
            meta_mut(obj).insert(field.into(), v);
        }
    }
    if def.status_subresource
        && let Value::Object(m) = obj
    {
        match stored.get("status") {
            Some(s) => m.insert("status".into(), s.clone()),
            None => m.remove("status"),
        };
    }
    if let Value::Object(m) = obj {
        m.insert("kind".into(), json!(def.kind));
        m.insert("apiVersion".into(), json!(def.api_version()));
    }
}

fn check_resource_version(def: &ResDef, body: &Value, stored: &Value, name: &str) -> Result<(), ApiError> {
    let wanted = str_at(body, "/metadata/resourceVersion");
    if !wanted.is_empty() && wanted != str_at(stored, "/metadata/resourceVersion") {
        return Err(ApiError::conflict(def, name));
    }
    Ok(())
}

fn apply_patch(view: &Value, kind: PatchKind, patch: &Value) -> Result<Value, ApiError> {
    let mut v = view.clone();
    match kind {
        PatchKind::Merge => merge_patch(&mut v, patch),
        PatchKind::Json => json_patch(&mut v, patch).map_err(ApiError::bad_request)?,
        PatchKind::Apply => {
            if !patch.is_object() {
                return Err(ApiError::bad_request("an apply patch must be an object"));
            }
            apply_merge(&mut v, patch, None);
        }
    }
    Ok(v)
}

/// The `autoscaling/v1` Scale of a Deployment or ReplicaSet.
fn scale_of(obj: &Value) -> Value {
    let selector = LabelSelector::from_object(obj.pointer("/spec/selector")).to_query();
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": str_at(obj, "/metadata/name"),
            "namespace": str_at(obj, "/metadata/namespace"),
            "uid": str_at(obj, "/metadata/uid"),
            "resourceVersion": str_at(obj, "/metadata/resourceVersion"),
            "creationTimestamp": str_at(obj, "/metadata/creationTimestamp"),
        },
        "spec": {"replicas": int_at(obj, "/spec/replicas").unwrap_or(1)},
        "status": {"replicas": int_at(obj, "/status/replicas").unwrap_or(0), "selector": selector},
    })
}

impl State {
    fn get_object(&self, key: &ObjKey) -> Result<Value, ApiError> {
        self.get(key)
            .cloned()
            .ok_or_else(|| ApiError::not_found(&RESOURCES[key.res], &key.name))
    }

    fn list_objects(&self, target: &Target, params: &Params) -> Result<Value, ApiError> {
        let def = target.def();
        let (labels, fields) = params.selectors()?;
        let limit = params.number("limit")?.filter(|l| *l > 0).map(|l| l as usize);
        let after = match params.get("continue") {
            Some(token) => Some(
                token
                    .split_once('/')
                    .map(|(ns, name)| (ns.to_string(), name.to_string()))
                    .ok_or_else(|| ApiError::bad_request(format!("invalid continue token {token:?}")))?,
            ),
            None => None,
        };
        let mut items = Vec::new();
        let mut last = None;
        let mut remaining = 0u64;
        for (k, v) in self.iter(target.res, target.ns.as_deref()) {
            if let Some((ns, name)) = &after
                && (&k.ns, &k.name) <= (ns, name)
            {
                continue;
            }
            if !labels.matches_object(v) || !fields.matches(v) {
                continue;
            }
            if limit.is_some_and(|l| items.len() >= l) {
                remaining += 1;
                continue;
            }
            last = Some(format!("{}/{}", k.ns, k.name));
            items.push(v.clone());
        }
        let mut meta = json!({"resourceVersion": self.rv.to_string()});
        if remaining > 0
            && let Some(token) = last
        {
            meta["continue"] = json!(token);
            meta["remainingItemCount"] = json!(remaining);
        }
        Ok(json!({
            "kind": format!("{}List", def.kind),
            "apiVersion": def.api_version(),
            "metadata": meta,
            "items": items,
        }))
    }

    /// Creates an object. `name` overrides the body's name (apply to a missing object);
    /// `apply` is the field manager and the applied configuration when created by an apply.
    fn create_object(
        &mut self,
        target: &Target,
        name: Option<&str>,
        mut obj: Value,
        dry: bool,
        apply: Option<(&str, Value)>,
    ) -> Result<Value, ApiError> {
        let def = target.def();
        check_shape(&obj)?;
        check_kind(def, &obj)?;
        let ns = if def.namespaced {
            target.ns.clone().unwrap_or_default()
        } else {
            String::new()
        };
        let body_ns = str_at(&obj, "/metadata/namespace").to_string();
        if def.namespaced && !body_ns.is_empty() && body_ns != ns {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        let body_name = str_at(&obj, "/metadata/name").to_string();
        let name = match name {
            Some(n) if !body_name.is_empty() && body_name != n => {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({body_name}) does not match the name on the URL ({n})"
                )));
            }
            Some(n) => n.to_string(),
            None if !body_name.is_empty() => body_name,
            None => {
                let prefix = str_at(&obj, "/metadata/generateName").to_string();
                if prefix.is_empty() {
                    return Err(ApiError::invalid(
                        def,
                        "",
                        "metadata.name: Required value: name or generateName is required",
                    ));
                }
                let mut n = format!("{prefix}{}", random_suffix());
                while self.get(&ObjKey::new(target.res, &ns, &n)).is_some() {
                    n = format!("{prefix}{}", random_suffix());
                }
                n
            }
        };
        validate_name(target.res, &name)?;
        if def.namespaced && !self.namespace_exists(&ns) {
            return Err(ApiError::not_found(&RESOURCES[NAMESPACES], &ns));
        }
        let key = ObjKey::new(target.res, &ns, &name);
        if self.get(&key).is_some() {
            return Err(ApiError::already_exists(def, &name));
        }
        {
            let meta = meta_mut(&mut obj);
            for field in SERVER_META {
                meta.remove(field);
            }
            meta.insert("name".into(), json!(name));
        }
        if def.status_subresource
            && let Value::Object(m) = &mut obj
        {
            m.remove("status");
        }
        self.apply_defaults(target.res, &mut obj, None);
        if let Some((manager, applied)) = &apply {
            set_managed_fields(&mut obj, def, manager, applied);
        }
        if dry {
            if let Value::Object(m) = &mut obj {
                m.insert("kind".into(), json!(def.kind));
                m.insert("apiVersion".into(), json!(def.api_version()));
            }
            return Ok(obj);
        }
        let (stored, _) = self.commit(&key, obj);
        if let Some((manager, applied)) = apply {
            self.applied.insert(
                (str_at(&stored, "/metadata/uid").to_string(), manager.to_string()),
                applied,
            );
        }
        Ok(stored)
    }

    fn replace_object(&mut self, key: &ObjKey, mut obj: Value, dry: bool) -> Result<Value, ApiError> {
        let def = &RESOURCES[key.res];
        check_shape(&obj)?;
        check_kind(def, &obj)?;
        let stored = self.get_object(key)?;
        let body_name = str_at(&obj, "/metadata/name");
        if !body_name.is_empty() && body_name != key.name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({})",
                key.name
            )));
        }
        let body_ns = str_at(&obj, "/metadata/namespace");
        if def.namespaced && !body_ns.is_empty() && body_ns != key.ns {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        check_resource_version(def, &obj, &stored, &key.name)?;
        keep_server_fields(def, &mut obj, &stored);
        self.apply_defaults(key.res, &mut obj, Some(&stored));
        if dry {
            return Ok(obj);
        }
        Ok(self.commit(key, obj).0)
    }

    fn patch_object(
        &mut self,
        target: &Target,
        key: &ObjKey,
        kind: PatchKind,
        patch: Value,
        params: &Params,
        dry: bool,
    ) -> Result<(StatusCode, Value), ApiError> {
        let def = target.def();
        if kind != PatchKind::Apply {
            let stored = self.get_object(key)?;
            let mut patched = apply_patch(&stored, kind, &patch)?;
            check_shape(&patched)?;
            check_resource_version(def, &patched, &stored, &key.name)?;
            keep_server_fields(def, &mut patched, &stored);
            self.apply_defaults(key.res, &mut patched, Some(&stored));
            if dry {
                return Ok((StatusCode::OK, patched));
            }
            return Ok((StatusCode::OK, self.commit(key, patched).0));
        }
        let manager = params.get("fieldManager").ok_or_else(|| {
            ApiError::bad_request("PATCH requests with an apply patch must include fieldManager")
        })?;
        check_shape(&patch)?;
        check_kind(def, &patch)?;
        let body_name = str_at(&patch, "/metadata/name");
        if !body_name.is_empty() && body_name != key.name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({})",
                key.name
            )));
        }
        let mut applied = patch;
        {
            let meta = meta_mut(&mut applied);
            for field in SERVER_META {
                meta.remove(field);
            }
        }
        if def.status_subresource
            && let Value::Object(m) = &mut applied
        {
            m.remove("status");
        }
        let Some(stored) = self.get(key).cloned() else {
            let created = self.create_object(
                target,
                Some(&key.name),
                applied.clone(),
                dry,
                Some((manager, applied)),
            )?;
            return Ok((StatusCode::CREATED, created));
        };
        let uid = str_at(&stored, "/metadata/uid").to_string();
        let previous = self.applied.get(&(uid.clone(), manager.to_string())).cloned();
        let mut merged = stored.clone();
        apply_merge(&mut merged, &applied, previous.as_ref());
        keep_server_fields(def, &mut merged, &stored);
        self.apply_defaults(key.res, &mut merged, Some(&stored));
        // A no-op apply must not write: same content, and the manager already recorded.
        if merged == stored && has_managed_fields(&stored, manager) {
            self.applied.insert((uid, manager.to_string()), applied);
            return Ok((StatusCode::OK, stored));
        }
        set_managed_fields(&mut merged, def, manager, &applied);
        if dry {
            return Ok((StatusCode::OK, merged));
        }
        let (written, _) = self.commit(key, merged);
        self.applied.insert((uid, manager.to_string()), applied);
        Ok((StatusCode::OK, written))
    }

    /// PUT (`body`) or PATCH (`patch`) of the status subresource: only `status` changes.
    fn write_status(
        &mut self,
        key: &ObjKey,
        body: Option<Value>,
        patch: Option<(PatchKind, Value)>,
        dry: bool,
    ) -> Result<Value, ApiError> {
        let def = &RESOURCES[key.res];
        let stored = self.get_object(key)?;
        let source = match (body, patch) {
            (Some(body), _) => {
                check_resource_version(def, &body, &stored, &key.name)?;
                body
            }
            (None, Some((kind, patch))) => apply_patch(&stored, kind, &patch)?,
            (None, None) => stored.clone(),
        };
        check_shape(&source)?;
        let mut new = stored.clone();
        if let Value::Object(m) = &mut new {
            match source.get("status") {
                Some(s) => m.insert("status".into(), s.clone()),
                None => m.remove("status"),
            };
        }
        if dry {
            return Ok(new);
        }
        Ok(self.commit(key, new).0)
    }

    /// PUT (`body`) or PATCH (`patch`) of the scale subresource: only `spec.replicas` changes.
    fn write_scale(
        &mut self,
        key: &ObjKey,
        body: Option<Value>,
        patch: Option<(PatchKind, Value)>,
        dry: bool,
    ) -> Result<Value, ApiError> {
        let def = &RESOURCES[key.res];
        let stored = self.get_object(key)?;
        let scale = scale_of(&stored);
        let source = match (body, patch) {
            (Some(body), _) => {
                check_resource_version(def, &body, &stored, &key.name)?;
                body
            }
            (None, Some((kind, patch))) => apply_patch(&scale, kind, &patch)?,
            (None, None) => scale,
        };
        let replicas = match source.pointer("/spec/replicas") {
            None => 0,
            Some(v) => v
                .as_i64()
                .ok_or_else(|| ApiError::bad_request("spec.replicas must be an integer"))?,
        };
        if replicas < 0 {
            return Err(ApiError::invalid(
                def,
                &key.name,
                &format!("spec.replicas: Invalid value: {replicas}: must be greater than or equal to 0"),
            ));
        }
        let mut new = stored;
        map_path(&mut new, &["spec"]).insert("replicas".into(), json!(replicas));
        if dry {
            return Ok(scale_of(&new));
        }
        let (written, _) = self.commit(key, new);
        Ok(scale_of(&written))
    }

    fn delete_collection(&mut self, target: &Target, params: &Params) -> Result<Value, ApiError> {
        let def = target.def();
        let (labels, fields) = params.selectors()?;
        let keys = self.keys_where(target.res, target.ns.as_deref(), |v| {
            labels.matches_object(v) && fields.matches(v)
        });
        let items: Vec<Value> = keys.iter().filter_map(|k| self.delete(k)).collect();
        Ok(json!({
            "kind": format!("{}List", def.kind),
            "apiVersion": def.api_version(),
            "metadata": {"resourceVersion": self.rv.to_string()},
            "items": items,
        }))
    }

    fn pod_log(&self, key: &ObjKey, params: &Params) -> Result<String, ApiError> {
        let pod = self.get_object(key)?;
        let names: Vec<String> = pod
            .pointer("/spec/containers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|c| str_at(c, "/name").to_string())
            .collect();
        let container = match params.get("container") {
            Some(c) => c.to_string(),
            None if names.len() <= 1 => names.first().cloned().unwrap_or_default(),
            None => {
                return Err(ApiError::bad_request(format!(
                    "a container name must be specified for pod {}, choose one of: [{}]",
                    key.name,
                    names.join(" ")
                )));
            }
        };
        if !names.contains(&container) {
            return Err(ApiError::bad_request(format!(
                "container {container} is not valid for pod {}",
                key.name
            )));
        }
        let status = pod
            .pointer("/status/containerStatuses")
            .and_then(Value::as_array)
            .and_then(|ss| ss.iter().find(|s| str_at(s, "/name") == container));
        let started = status.is_some_and(|s| {
            s.pointer("/state/running").is_some()
                || s.pointer("/state/terminated").is_some()
                || s.pointer("/lastState/terminated").is_some()
        });
        if !started {
            let reason = status
                .map(|s| str_at(s, "/state/waiting/reason"))
                .unwrap_or_default();
            let why = match reason {
                "ErrImagePull" | "ImagePullBackOff" => "trying and failing to pull image",
                "" => "ContainerCreating",
                other => other,
            };
            return Err(ApiError::bad_request(format!(
                "container \"{container}\" in pod \"{}\" is waiting to start: {why}",
                key.name
            )));
        }
        let mut text = self
            .pod_log_of
            .get(key)
            .or_else(|| self.pod_logs.get(&key.ns))
            .cloned()
            .unwrap_or_default();
        if let Some(n) = params.number("tailLines")? {
            let lines: Vec<&str> = text.lines().collect();
            let start = lines.len().saturating_sub(n as usize);
            text = lines[start..].iter().map(|l| format!("{l}\n")).collect();
        }
        if let Some(n) = params.number("limitBytes")? {
            let mut end = (n as usize).min(text.len());
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
        }
        Ok(text)
    }
}

/// `/version`, `/api`, `/apis` and group/resource discovery, and health checks.
fn discovery(shared: &Shared, method: &Method, path: &str) -> Result<Option<Response<Body>>, ApiError> {
    let segs: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    let is_discovery = matches!(
        segs.as_slice(),
        ["version" | "healthz" | "livez" | "readyz" | "api" | "apis"]
            | ["api", _]
            | ["apis", _]
            | ["apis", _, _]
    );
    if !is_discovery {
        return Ok(None);
    }
    if *method != Method::GET {
        return Err(ApiError::method_not_allowed(method));
    }
    let group_version = |g: &str, v: &str| json!({"groupVersion": format!("{g}/{v}"), "version": v});
    let groups = || {
        let mut names: Vec<&str> = RESOURCES
            .iter()
            .map(|r| r.group)
            .filter(|g| !g.is_empty())
            .collect();
        names.dedup();
        names
            .into_iter()
            .map(|g| {
                let version = RESOURCES
                    .iter()
                    .find(|r| r.group == g)
                    .map(|r| r.version)
                    .unwrap_or("v1");
                json!({
                    "name": g,
                    "versions": [group_version(g, version)],
                    "preferredVersion": group_version(g, version),
                })
            })
            .collect::<Vec<_>>()
    };
    let body = match segs.as_slice() {
        ["healthz" | "livez" | "readyz"] => return Ok(Some(text_response(StatusCode::OK, "ok".into()))),
        ["version"] => json!({
            "major": "1",
            "minor": "33",
            "emulationMajor": "1",
            "emulationMinor": "33",
            "minCompatibilityMajor": "1",
            "minCompatibilityMinor": "32",
            "gitVersion": "v1.33.0",
            "gitCommit": "60a317eadfcb839692a68eab88b2096f4d708f4f",
            "gitTreeState": "clean",
            "buildDate": "2025-04-23T13:00:00Z",
            "goVersion": "go1.24.2",
            "compiler": "gc",
            "platform": "linux/amd64",
        }),
        ["api"] => json!({
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": shared.addr().to_string()}],
        }),
        ["apis"] => json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups()}),
        ["apis", g] => match groups().into_iter().find(|x| x["name"] == *g) {
            Some(mut group) => {
                group["kind"] = json!("APIGroup");
                group["apiVersion"] = json!("v1");
                group
            }
            None => return Err(ApiError::path_not_found()),
        },
        ["api", v] => resource_list("", v)?,
        ["apis", g, v] => resource_list(g, v)?,
        _ => return Ok(None),
    };
    Ok(Some(json_response(StatusCode::OK, &body)))
}

fn resource_list(group: &str, version: &str) -> Result<Value, ApiError> {
    if !serves_group_version(group, version) {
        return Err(ApiError::path_not_found());
    }
    let verbs = json!([
        "create",
        "delete",
        "deletecollection",
        "get",
        "list",
        "patch",
        "update",
        "watch"
    ]);
    let mut resources = Vec::new();
    for (i, r) in RESOURCES
        .iter()
        .enumerate()
        .filter(|(_, r)| r.group == group && r.version == version)
    {
        resources.push(json!({
            "name": r.plural,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": verbs,
        }));
        if r.status_subresource {
            resources.push(json!({
                "name": format!("{}/status", r.plural), "singularName": "", "namespaced": r.namespaced,
                "kind": r.kind, "verbs": ["get", "patch", "update"],
            }));
        }
        if matches!(i, DEPLOYMENTS | REPLICASETS) {
            resources.push(json!({
                "name": format!("{}/scale", r.plural), "singularName": "", "namespaced": true,
                "group": "autoscaling", "version": "v1", "kind": "Scale", "verbs": ["get", "patch", "update"],
            }));
        }
        if i == PODS {
            resources.push(json!({
                "name": "pods/log", "singularName": "", "namespaced": true, "kind": "Pod", "verbs": ["get"],
            }));
        }
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Ok(json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}))
}

/// Which event (if any) a watcher with these selectors sees for a history event: a change that
/// moves an object into the selection is `ADDED`, out of it `DELETED`, like the real server.
fn visible(ev: &HistEvent, labels: &LabelSelector, fields: &FieldSelector) -> Option<&'static str> {
    let matches = |o: &Value| labels.matches_object(o) && fields.matches(o);
    let now = matches(&ev.object);
    match ev.ty {
        EvType::Added | EvType::Deleted => now.then_some(ev.ty.as_str()),
        EvType::Modified => {
            let before = ev.old.as_deref().is_some_and(matches);
            match (before, now) {
                (true, true) => Some("MODIFIED"),
                (false, true) => Some("ADDED"),
                (true, false) => Some("DELETED"),
                (false, false) => None,
            }
        }
    }
}

fn event_line(ty: &str, object: &Value) -> Bytes {
    let mut line = json!({"type": ty, "object": object}).to_string();
    line.push('\n');
    Bytes::from(line)
}

/// What a watcher does next.
enum Batch {
    Lines(Vec<Bytes>, u64),
    /// The requested resource version is older than the kept history.
    Expired(Bytes),
}

fn watch(shared: &Arc<Shared>, target: Target, params: &Params) -> Result<Response<Body>, ApiError> {
    let def = target.def();
    let (labels, fields) = params.selectors()?;
    let timeout = params.number("timeoutSeconds")?;
    let send_initial = params.flag("sendInitialEvents");
    let from = match params.get("resourceVersion") {
        None | Some("0") => None,
        Some(rv) => Some(
            rv.parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {rv:?}")))?,
        ),
    };
    // Subscribe before reading the state, so that no write between the two goes unnoticed.
    let mut changed = shared.subscribe();
    let mut shutdown = shared.shutdown_signal();
    let res = target.res;
    let ns = target.ns.clone();
    // Without a resource version (or with "0"), or with sendInitialEvents, the watch starts with
    // synthetic ADDED events for the current objects.
    let (initial, start) = shared.read(|st| match from {
        Some(rv) if !send_initial => (Vec::new(), rv),
        _ => {
            let mut lines: Vec<Bytes> = st
                .iter(res, ns.as_deref())
                .filter(|(_, v)| labels.matches_object(v) && fields.matches(v))
                .map(|(_, v)| event_line("ADDED", v))
                .collect();
            if send_initial {
                let bookmark = json!({
                    "kind": def.kind,
                    "apiVersion": def.api_version(),
                    "metadata": {
                        "resourceVersion": st.rv.to_string(),
                        "annotations": {"k8s.io/initial-events-end": "true"},
                    },
                });
                lines.push(event_line("BOOKMARK", &bookmark));
            }
            (lines, st.rv)
        }
    });
    let (tx, rx) = mpsc::channel::<Bytes>(256);
    let shared = shared.clone();
    tokio::spawn(async move {
        let deadline = timeout.map(|t| tokio::time::Instant::now() + Duration::from_secs(t));
        for line in initial {
            if tx.send(line).await.is_err() {
                return;
            }
        }
        let mut cursor = start;
        loop {
            changed.borrow_and_update();
            let batch = shared.read(|st| {
                if cursor < st.dropped_up_to {
                    let status = json!({
                        "kind": "Status",
                        "apiVersion": "v1",
                        "metadata": {},
                        "status": "Failure",
                        "message": format!("too old resource version: {cursor} ({})", st.dropped_up_to + 1),
                        "reason": "Expired",
                        "code": 410,
                    });
                    return Batch::Expired(event_line("ERROR", &status));
                }
                let first = st.history.partition_point(|e| e.rv <= cursor);
                let lines = st
                    .history
                    .range(first..)
                    .filter(|e| e.res == res && ns.as_ref().is_none_or(|ns| *ns == e.ns))
                    .filter_map(|e| visible(e, &labels, &fields).map(|ty| event_line(ty, &e.object)))
                    .collect();
                Batch::Lines(lines, cursor.max(st.rv))
            });
            match batch {
                Batch::Expired(line) => {
                    let _ = tx.send(line).await;
                    return;
                }
                Batch::Lines(lines, next) => {
                    cursor = next;
                    for line in lines {
                        if tx.send(line).await.is_err() {
                            return;
                        }
                    }
                }
            }
            let expired = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                r = changed.changed() => if r.is_err() { return },
                _ = expired => return,
                _ = tx.closed() => return,
                _ = shutdown.wait_for(|stop| *stop) => return,
            }
        }
    });
    Ok(response(StatusCode::OK, "application/json", Body::Stream(rx)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(is_dns_label("a-web"));
        assert!(!is_dns_label("A"));
        assert!(!is_dns_label("-a"));
        assert!(is_dns_subdomain("web.1783abc"));
        assert!(validate_name(SERVICES, "a.b").is_err());
        assert!(validate_name(PODS, "a.b").is_ok());
    }

    #[test]
    fn patch_kinds() {
        assert_eq!(
            PatchKind::from_content_type(Some("application/apply-patch+yaml")).unwrap(),
            PatchKind::Apply
        );
        assert_eq!(
            PatchKind::from_content_type(Some("application/strategic-merge-patch+json; charset=utf-8"))
                .unwrap(),
            PatchKind::Merge
        );
        assert!(PatchKind::from_content_type(Some("text/plain")).is_err());
    }

    #[test]
    fn scale_view() {
        let d = json!({"metadata": {"name": "web", "namespace": "a"}, "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}}}, "status": {"replicas": 2}});
        let s = scale_of(&d);
        assert_eq!(s["spec"]["replicas"], 3);
        assert_eq!(s["status"]["selector"], "app=web");
    }
}
