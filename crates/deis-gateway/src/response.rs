//! Response message → HTTP: JSON in Deis's shape, `{"detail": …}` errors,
//! status codes, and newline-delimited JSON for server streams.

use std::convert::Infallible;

use bytes::Bytes;
use http::header::{ALLOW, CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderValue, Method, Response, StatusCode};
use http_body::Frame;
use prost_reflect::{DynamicMessage, Kind, MessageDescriptor, ReflectMessage, SerializeOptions};
use serde_json::Value as Json;
use tonic::body::Body;
use tonic::{Code, Status};
use tonic_types::StatusExt;

use crate::error::RestError;
use crate::rule::Rule;

/// The metadata key in which the controller puts the exact HTTP status
/// Deis would answer with (`deis_controller::error::HTTP_STATUS_METADATA`).
pub const HTTP_STATUS_METADATA: &str = "x-deis-http-status";

pub(crate) const JSON: HeaderValue = HeaderValue::from_static("application/json");
pub(crate) const NDJSON: HeaderValue = HeaderValue::from_static("application/x-ndjson");

/// How messages become JSON.
#[derive(Clone, Debug)]
pub(crate) struct JsonEncoder {
    options: SerializeOptions,
    truncate_timestamps: bool,
}

impl JsonEncoder {
    pub(crate) fn new(stringify_64_bit_integers: bool, truncate_timestamps: bool) -> Self {
        Self {
            // Deis: snake_case keys, every key present, enums by name.
            options: SerializeOptions::new()
                .use_proto_field_name(true)
                .skip_default_fields(false)
                .stringify_64_bit_integers(stringify_64_bit_integers),
            truncate_timestamps,
        }
    }

    /// The whole message as JSON, unset optional and message fields as `null`.
    pub(crate) fn message(&self, message: &DynamicMessage) -> Result<Json, serde_json::Error> {
        let mut json = message.serialize_with_options(serde_json::value::Serializer, &self.options)?;
        self.normalize(&mut json, &message.descriptor(), 0);
        Ok(json)
    }

    /// What a rule sends: the message, or its `response_body` field.
    pub(crate) fn body(&self, rule: &Rule, message: &DynamicMessage) -> Result<Json, serde_json::Error> {
        let json = self.message(message)?;
        Ok(match (&rule.response_field, json) {
            (Some(field), Json::Object(mut object)) => object.remove(field.name()).unwrap_or(Json::Null),
            (_, json) => json,
        })
    }

    /// prost-reflect omits unset fields that have presence even with
    /// `skip_default_fields(false)`; Deis clients expect the key with
    /// `null`. Also cuts timestamps to whole seconds (Deis's
    /// `%Y-%m-%dT%H:%M:%SZ`).
    fn normalize(&self, json: &mut Json, desc: &MessageDescriptor, depth: usize) {
        if desc.full_name() == "google.protobuf.Timestamp" {
            if self.truncate_timestamps
                && let Json::String(text) = json
            {
                truncate_fraction(text);
            }
            return;
        }
        if desc.full_name().starts_with("google.protobuf.") || depth > 64 {
            return;
        }
        let Json::Object(object) = json else {
            return;
        };
        for field in desc.fields() {
            let in_real_oneof = field.containing_oneof().is_some_and(|o| !o.is_synthetic());
            let Some(value) = object.get_mut(field.name()) else {
                if field.supports_presence() && !in_real_oneof && !field.is_list() {
                    object.insert(field.name().to_owned(), Json::Null);
                }
                continue;
            };
            let Kind::Message(inner) = field.kind() else {
                continue;
            };
            if field.is_map() {
                let value_desc = inner.map_entry_value_field();
                if let (Kind::Message(value_message), Json::Object(entries)) = (value_desc.kind(), value) {
                    for entry in entries.values_mut() {
                        self.normalize(entry, &value_message, depth + 1);
                    }
                }
            } else if field.is_list() {
                if let Json::Array(items) = value {
                    for item in items {
                        self.normalize(item, &inner, depth + 1);
                    }
                }
            } else {
                self.normalize(value, &inner, depth + 1);
            }
        }
    }
}

/// The full name of the message whose content is sent as the HTTP body
/// itself rather than as JSON (grpc-gateway's convention).
pub(crate) const HTTP_BODY: &str = "google.api.HttpBody";

/// A `google.api.HttpBody` answer: raw bytes with their content type.
pub(crate) struct RawBody {
    content_type: String,
    data: Bytes,
}

impl RawBody {
    /// The response; empty data with a 204 status (the controller's way of
    /// saying "nothing yet", as Deis's logs endpoint does) sends no body.
    pub(crate) fn into_response(self, status: StatusCode) -> Response<Body> {
        if status == StatusCode::NO_CONTENT {
            return empty(status);
        }
        let mut response = Response::new(Body::new(http_body_util::Full::new(self.data)));
        *response.status_mut() = status;
        let content_type = HeaderValue::from_str(&self.content_type)
            .unwrap_or(HeaderValue::from_static("application/octet-stream"));
        response.headers_mut().insert(CONTENT_TYPE, content_type);
        response
    }
}

/// The raw body a rule sends, when its response (or its `response_body`
/// field) is a `google.api.HttpBody`.
pub(crate) fn http_body(rule: &Rule, message: &DynamicMessage) -> Option<RawBody> {
    let body = match &rule.response_field {
        Some(field) => match field.kind() {
            Kind::Message(inner) if inner.full_name() == HTTP_BODY => {
                message.get_field(field).as_message()?.clone()
            }
            _ => return None,
        },
        None if message.descriptor().full_name() == HTTP_BODY => message.clone(),
        None => return None,
    };
    let content_type = body
        .get_field_by_name("content_type")
        .and_then(|v| v.as_str().map(str::to_owned))
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| "application/octet-stream".to_owned());
    let data = body
        .get_field_by_name("data")
        .and_then(|v| v.as_bytes().cloned())
        .unwrap_or_default();
    Some(RawBody { content_type, data })
}

/// Deis's pages link to their neighbours with absolute URLs (Django
/// REST framework's `build_absolute_uri`); the controller sends them
/// relative to the API root, so they are completed with the origin the
/// client used.
pub(crate) fn absolute_page_links(json: &mut Json, origin: &str) {
    let Json::Object(object) = json else {
        return;
    };
    if !object.contains_key("results") {
        return;
    }
    for key in ["next", "previous"] {
        if let Some(Json::String(link)) = object.get_mut(key)
            && link.starts_with('/')
        {
            link.insert_str(0, origin);
        }
    }
}

/// `2026-01-02T03:04:05.123Z` → `2026-01-02T03:04:05Z`.
fn truncate_fraction(text: &mut String) {
    if let Some(dot) = text.find('.')
        && let Some(end) = text[dot..].find(|c: char| !c.is_ascii_digit() && c != '.')
    {
        text.replace_range(dot..dot + end, "");
    }
}

/// The HTTP status of a gRPC error: the controller's exact Deis status when
/// it sent one, else the google.rpc code mapping grpc-gateway uses.
pub(crate) fn http_status(status: &Status) -> StatusCode {
    if let Some(code) = metadata_status(status.metadata())
        && code.as_u16() >= 400
    {
        return code;
    }
    match status.code() {
        Code::Ok => StatusCode::OK,
        Code::Cancelled => StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
        Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => StatusCode::BAD_REQUEST,
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::Unknown | Code::Internal | Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// A valid HTTP status from [`HTTP_STATUS_METADATA`], if any.
pub(crate) fn metadata_status(metadata: &tonic::metadata::MetadataMap) -> Option<StatusCode> {
    let text = metadata.get(HTTP_STATUS_METADATA)?.to_str().ok()?;
    let code = StatusCode::from_u16(text.trim().parse().ok()?).ok()?;
    (200..600).contains(&code.as_u16()).then_some(code)
}

/// The `detail` of a gRPC error.
pub(crate) fn detail(status: &Status) -> String {
    if status.message().is_empty() {
        status.code().description().to_owned()
    } else {
        status.message().to_owned()
    }
}

pub(crate) fn from_status(status: &Status) -> RestError {
    let mut error = RestError::new(http_status(status), detail(status));
    error.body = deis_error_body(status);
    error
}

/// The bodies Deis gives where it does not use `{"detail": …}`, read from
/// the status's google.rpc details: per-field validation errors (a
/// `BadRequest`) as `{"<field>": ["<message>", …]}`, and a lookup of a
/// thing that does not exist (NOT_FOUND with a `ResourceInfo`) as Django's
/// bare JSON string `"No <Model> matches the given query."`.
fn deis_error_body(status: &Status) -> Option<Json> {
    let details = status.get_error_details();
    if let Some(bad_request) = details.bad_request()
        && !bad_request.field_violations.is_empty()
    {
        let mut fields = serde_json::Map::new();
        for violation in &bad_request.field_violations {
            let messages = fields
                .entry(violation.field.clone())
                .or_insert_with(|| Json::Array(Vec::new()));
            if let Json::Array(messages) = messages {
                messages.push(Json::String(violation.description.clone()));
            }
        }
        return Some(Json::Object(fields));
    }
    if status.code() == Code::NotFound
        && let Some(resource) = details.resource_info()
        && !resource.resource_type.is_empty()
    {
        return Some(Json::String(format!(
            "No {} matches the given query.",
            resource.resource_type
        )));
    }
    None
}

/// A JSON response (no body for 204 and 304).
pub(crate) fn json(status: StatusCode, body: &Json) -> Response<Body> {
    if status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
        return empty(status);
    }
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    let mut response = Response::new(Body::new(http_body_util::Full::new(Bytes::from(bytes))));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, JSON);
    response
}

pub(crate) fn empty(status: StatusCode) -> Response<Body> {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = status;
    response
}

pub(crate) fn text(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut response = Response::new(Body::new(http_body_util::Full::new(Bytes::from_static(
        text.as_bytes(),
    ))));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

pub(crate) fn error(error: &RestError) -> Response<Body> {
    let body = match &error.body {
        Some(body) => body.clone(),
        None => serde_json::json!({ "detail": error.detail }),
    };
    let mut response = json(error.status, &body);
    if !error.allow.is_empty()
        && let Ok(value) = HeaderValue::from_str(&allow_list(&error.allow))
    {
        response.headers_mut().insert(ALLOW, value);
    }
    if error.status == StatusCode::UNAUTHORIZED {
        // What Django REST framework's TokenAuthentication sends.
        response
            .headers_mut()
            .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Token"));
    }
    response
}

pub(crate) fn allow_list(methods: &[Method]) -> String {
    let names: Vec<&str> = methods.iter().map(Method::as_str).collect();
    names.join(", ")
}

/// One NDJSON line: the message, then `\n`.
fn line(encoder: &JsonEncoder, rule: &Rule, message: &DynamicMessage) -> Bytes {
    let json = encoder
        .body(rule, message)
        .unwrap_or_else(|e| serde_json::json!({ "detail": format!("could not encode a message: {e}") }));
    let mut bytes = serde_json::to_vec(&json).unwrap_or_default();
    bytes.push(b'\n');
    Bytes::from(bytes)
}

/// A server stream as newline-delimited JSON: one line per message, sent
/// as it arrives; an error ends the stream with a `{"detail": …}` line.
pub(crate) fn ndjson(
    encoder: JsonEncoder,
    rule: Rule,
    stream: tonic::Streaming<DynamicMessage>,
) -> Response<Body> {
    let frames = futures::stream::unfold(Some(stream), move |state| {
        let encoder = encoder.clone();
        let rule = rule.clone();
        async move {
            let mut stream = state?;
            let frame = match stream.message().await {
                Ok(Some(message)) => Some((line(&encoder, &rule, &message), Some(stream))),
                Ok(None) => None,
                Err(status) => {
                    let mut bytes = serde_json::to_vec(&serde_json::json!({ "detail": detail(&status) }))
                        .unwrap_or_default();
                    bytes.push(b'\n');
                    Some((Bytes::from(bytes), None))
                }
            };
            frame.map(|(bytes, next)| (Ok::<_, Infallible>(Frame::data(bytes)), next))
        }
    });
    let mut response = Response::new(Body::new(http_body_util::StreamBody::new(frames)));
    response.headers_mut().insert(CONTENT_TYPE, NDJSON);
    // Tell buffering proxies (nginx) to pass lines through as they come.
    response
        .headers_mut()
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
        .headers_mut()
        .insert(http::header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

#[cfg(test)]
mod tests {
    use super::truncate_fraction;

    #[test]
    fn truncates_fractions() {
        for (input, want) in [
            ("2026-01-02T03:04:05.123Z", "2026-01-02T03:04:05Z"),
            ("2026-01-02T03:04:05.123456789Z", "2026-01-02T03:04:05Z"),
            ("2026-01-02T03:04:05Z", "2026-01-02T03:04:05Z"),
            ("garbage.", "garbage."),
        ] {
            let mut text = input.to_owned();
            truncate_fraction(&mut text);
            assert_eq!(text, want);
        }
    }
}
