//! HTTP request → request message: JSON or form body, query parameters,
//! then path variables (which win, so a body cannot retarget the path's app).

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use prost_reflect::{
    DeserializeOptions, DynamicMessage, FieldDescriptor, Kind, MessageDescriptor, ReflectMessage, Value,
};
use serde_json::Value as Json;

use crate::error::RestError;
use crate::rule::{Rule, resolve_field_path};

/// Deis (Django REST framework) ignores fields it does not know.
const DESERIALIZE: DeserializeOptions = DeserializeOptions::new().deny_unknown_fields(false);

/// How deeply messages may nest, as prost's decoder counts (its private
/// `RECURSION_LIMIT`): every message field, list item and map entry is a
/// level. The server refuses deeper requests with INTERNAL, so the gateway
/// refuses them first, with a 400 (`{"values": {"a": {"a": …}}}` 34 deep
/// is already 101 levels: each JSON object in a `google.protobuf.Value` is
/// a Struct, a map entry and a Value).
pub(crate) const MAX_NESTING: usize = 100;

/// How the body is encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BodyFormat {
    Json,
    Form,
}

impl BodyFormat {
    /// Forms for `application/x-www-form-urlencoded`, unless the body is
    /// plainly JSON (`curl -d '{…}'` sends JSON with the form type);
    /// JSON for anything else, as grpc-gateway does.
    pub(crate) fn of(headers: &HeaderMap, body: &[u8]) -> Result<Self, RestError> {
        let content_type = headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_ascii_lowercase();
        if content_type.starts_with("multipart/") {
            return Err(RestError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("Unsupported media type \"{content_type}\" in request."),
            ));
        }
        let looks_like_json = body
            .iter()
            .find(|b| !b.is_ascii_whitespace())
            .is_some_and(|b| *b == b'{' || *b == b'[');
        if content_type.starts_with("application/x-www-form-urlencoded") && !looks_like_json {
            Ok(Self::Form)
        } else {
            Ok(Self::Json)
        }
    }
}

/// Builds the request message of `rule` from the parts of an HTTP request.
pub(crate) fn build(
    rule: &Rule,
    captures: &[(String, String)],
    query: Option<&str>,
    body: Option<(BodyFormat, Bytes)>,
) -> Result<DynamicMessage, RestError> {
    let input = rule.method().input();
    let mut message = DynamicMessage::new(input.clone());

    if let Some((format, bytes)) = body
        && rule.body().is_some()
    {
        match format {
            BodyFormat::Json => json_body(rule, &input, &bytes, &mut message)?,
            BodyFormat::Form => form_body(rule, &input, &bytes, &mut message)?,
        }
    }

    // With `body: "*"` every field comes from the body (grpc-gateway does the same).
    if rule.body() != Some("*")
        && let Some(query) = query
    {
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            // Deis ignores parameters it does not know (`?format=json`).
            let Ok(fields) = resolve_field_path(&input, &key) else {
                continue;
            };
            let in_body = match (&rule.body_field, fields.first()) {
                (Some(body), Some(first)) => body.number() == first.number(),
                _ => false,
            };
            if in_body || rule.binds_path(&fields) {
                continue;
            }
            set(&mut message, &fields, &value).map_err(|e| field_error(&key, &e))?;
        }
    }

    for ((name, value), fields) in captures.iter().zip(&rule.path_fields) {
        set(&mut message, fields, value).map_err(|e| field_error(name, &e))?;
    }
    if nesting(&message, MAX_NESTING + 1) > MAX_NESTING {
        return Err(RestError::bad_request(format!(
            "The request is nested too deeply: at most {MAX_NESTING} levels."
        )));
    }
    Ok(message)
}

/// How many levels of messages (message fields, list items, map entries)
/// `message` holds below itself, as prost's decoder counts them, up to
/// `limit`: the answer is the depth when it is at most `limit`, else `limit`.
pub(crate) fn nesting(message: &DynamicMessage, limit: usize) -> usize {
    fn levels(value: &Value, limit: usize) -> usize {
        match value {
            Value::Message(inner) if limit > 0 => 1 + nesting(inner, limit - 1),
            Value::List(items) => items.iter().map(|item| levels(item, limit)).max().unwrap_or(0),
            // Each entry is a message of its own that holds the value.
            Value::Map(entries) if limit > 0 => entries
                .values()
                .map(|entry| 1 + levels(entry, limit - 1))
                .max()
                .unwrap_or(0),
            Value::Message(_) | Value::Map(_) => 1,
            _ => 0,
        }
    }
    let mut deepest = 0;
    for (_, field) in message.fields() {
        deepest = deepest.max(levels(field, limit).min(limit));
        if deepest == limit {
            break;
        }
    }
    deepest
}

fn field_error(path: &str, error: &str) -> RestError {
    RestError::bad_request(format!("{path}: {error}"))
}

fn json_body(
    rule: &Rule,
    input: &MessageDescriptor,
    bytes: &[u8],
    message: &mut DynamicMessage,
) -> Result<(), RestError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(());
    }
    let mut json: Json = serde_json::from_slice(bytes)
        .map_err(|e| RestError::bad_request(format!("JSON parse error - {e}")))?;
    if json.is_null() {
        return Ok(());
    }
    let desc = match &rule.body_field {
        // The body is one field: parse it as `{"<field>": body}`.
        Some(field) => {
            let mut wrapper = serde_json::Map::new();
            wrapper.insert(field.name().to_owned(), json);
            json = Json::Object(wrapper);
            input
        }
        None => input,
    };
    if !json.is_object() {
        return Err(RestError::bad_request(format!(
            "Expected a JSON object, got {}.",
            json_kind(&json)
        )));
    }
    decode_json_strings(desc, &mut json);
    *message = deserialize(desc, &json).map_err(RestError::bad_request)?;
    Ok(())
}

fn form_body(
    rule: &Rule,
    input: &MessageDescriptor,
    bytes: &[u8],
    message: &mut DynamicMessage,
) -> Result<(), RestError> {
    let pairs = form_urlencoded::parse(bytes);
    match &rule.body_field {
        None => {
            for (key, value) in pairs {
                let Ok(fields) = resolve_field_path(input, &key) else {
                    continue;
                };
                set(message, &fields, &value).map_err(|e| field_error(&key, &e))?;
            }
            Ok(())
        }
        // `body: "structure"` with a map: each pair is an entry.
        Some(field) if field.is_map() => {
            let value_kind = match field.kind() {
                Kind::Message(entry) => entry.map_entry_value_field().kind(),
                _ => return Ok(()),
            };
            let mut entries = serde_json::Map::new();
            for (key, value) in pairs {
                entries.insert(key.into_owned(), scalar_json(&value_kind, &value));
            }
            let value =
                convert(input, field, Json::Object(entries)).map_err(|e| field_error(field.name(), &e))?;
            merge(message, field, value).map_err(|e| field_error(field.name(), &e))
        }
        // `body: "<message field>"`: each pair names a field inside it.
        Some(field) if !field.is_list() && matches!(field.kind(), Kind::Message(_)) => {
            let Kind::Message(inner) = field.kind() else {
                return Ok(());
            };
            for (key, value) in pairs {
                let Ok(mut fields) = resolve_field_path(&inner, &key) else {
                    continue;
                };
                fields.insert(0, field.clone());
                set(message, &fields, &value).map_err(|e| field_error(&key, &e))?;
            }
            Ok(())
        }
        Some(_) => Err(RestError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Unsupported media type \"application/x-www-form-urlencoded\" in request.",
        )),
    }
}

/// Sets the field at `path` from a query, form or path string. Lists and
/// maps accumulate; singular fields are replaced.
fn set(message: &mut DynamicMessage, path: &[FieldDescriptor], raw: &str) -> Result<(), String> {
    let Some((leaf, parents)) = path.split_last() else {
        return Ok(());
    };
    let mut current = message;
    for field in parents {
        current = match current.get_field_mut(field) {
            Value::Message(inner) => inner,
            _ => return Err(format!("`{}` is not a message", field.name())),
        };
    }
    // An empty value for a number or enum means "not given" (HTML forms).
    if raw.is_empty()
        && !leaf.is_list()
        && !leaf.is_map()
        && !matches!(leaf.kind(), Kind::String | Kind::Bytes | Kind::Bool)
    {
        return Ok(());
    }
    let json = if leaf.is_map() {
        match serde_json::from_str::<Json>(raw) {
            Ok(object @ Json::Object(_)) => object,
            _ => return Err("expected a JSON object".to_owned()),
        }
    } else if leaf.is_list() {
        let array = raw
            .trim_start()
            .starts_with('[')
            .then(|| serde_json::from_str::<Json>(raw).ok())
            .flatten()
            .filter(Json::is_array);
        array.unwrap_or_else(|| Json::Array(vec![scalar_json(&leaf.kind(), raw)]))
    } else {
        scalar_json(&leaf.kind(), raw)
    };
    let value = convert(&current.descriptor(), leaf, json)?;
    merge(current, leaf, value)
}

/// The JSON a string stands for as a value of `kind`: numbers stay
/// strings (canonical JSON accepts quoted numbers), booleans take the
/// spellings forms use, messages are parsed as JSON when they can be
/// (Deis posts `values={"K":"v"}` as a form field).
fn scalar_json(kind: &Kind, raw: &str) -> Json {
    match kind {
        Kind::Bool => match raw.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "on" | "yes" | "t" => Json::Bool(true),
            "false" | "0" | "off" | "no" | "f" | "" => Json::Bool(false),
            _ => Json::String(raw.to_owned()),
        },
        Kind::Enum(_) => raw
            .trim()
            .parse::<i32>()
            .map_or_else(|_| Json::String(raw.to_owned()), Json::from),
        Kind::Message(m) => match m.full_name() {
            "google.protobuf.Timestamp"
            | "google.protobuf.Duration"
            | "google.protobuf.FieldMask"
            | "google.protobuf.StringValue"
            | "google.protobuf.BytesValue" => Json::String(raw.to_owned()),
            "google.protobuf.BoolValue" => scalar_json(&Kind::Bool, raw),
            _ => serde_json::from_str(raw).unwrap_or_else(|_| Json::String(raw.to_owned())),
        },
        _ => Json::String(raw.to_owned()),
    }
}

/// Converts `json` into a value of `field` by deserializing
/// `{"<field>": json}` as its message: one code path for every kind, and
/// prost-reflect's canonical rules for all of them.
fn convert(parent: &MessageDescriptor, field: &FieldDescriptor, json: Json) -> Result<Value, String> {
    let mut wrapper = serde_json::Map::new();
    wrapper.insert(field.name().to_owned(), json);
    let message =
        DynamicMessage::deserialize_with_options(parent.clone(), Json::Object(wrapper), &DESERIALIZE)
            .map_err(|e| e.to_string())?;
    Ok(message.get_field(field).into_owned())
}

fn merge(message: &mut DynamicMessage, field: &FieldDescriptor, value: Value) -> Result<(), String> {
    match (message.get_field_mut(field), value) {
        (Value::List(existing), Value::List(more)) => existing.extend(more),
        (Value::Map(existing), Value::Map(more)) => existing.extend(more),
        (_, value) => message.try_set_field(field, value).map_err(|e| e.to_string())?,
    }
    Ok(())
}

/// Deserializes a body; on failure, finds the field that failed so the
/// message names it (serde's own text only has a position, and a parsed
/// `serde_json::Value` has none).
fn deserialize(desc: &MessageDescriptor, json: &Json) -> Result<DynamicMessage, String> {
    DynamicMessage::deserialize_with_options(desc.clone(), json, &DESERIALIZE).map_err(|e| {
        match locate(desc, json, 0) {
            Some(path) => format!("{path}: {e}"),
            None => e.to_string(),
        }
    })
}

/// The dotted path of the first field of `json` that does not deserialize.
fn locate(desc: &MessageDescriptor, json: &Json, depth: usize) -> Option<String> {
    let object = json.as_object()?;
    for (key, value) in object {
        let Some(field) = desc
            .get_field_by_json_name(key)
            .or_else(|| desc.get_field_by_name(key))
        else {
            continue;
        };
        let mut single = serde_json::Map::new();
        single.insert(key.clone(), value.clone());
        if DynamicMessage::deserialize_with_options(desc.clone(), Json::Object(single), &DESERIALIZE).is_ok()
        {
            continue;
        }
        // A map: name the entry (`structure.web`).
        if field.is_map()
            && let Some(entries) = value.as_object()
        {
            for (entry_key, entry_value) in entries {
                let mut entry = serde_json::Map::new();
                entry.insert(entry_key.clone(), entry_value.clone());
                let mut single = serde_json::Map::new();
                single.insert(key.clone(), Json::Object(entry));
                if DynamicMessage::deserialize_with_options(desc.clone(), Json::Object(single), &DESERIALIZE)
                    .is_err()
                {
                    return Some(format!("{key}.{entry_key}"));
                }
            }
        }
        // Recursion is bounded by the JSON's depth, but keep it modest.
        if depth < 32
            && let Kind::Message(inner) = field.kind()
            && !field.is_map()
            && !inner.full_name().starts_with("google.protobuf.")
        {
            if field.is_list() {
                if let Some(items) = value.as_array() {
                    for (i, item) in items.iter().enumerate() {
                        if let Some(sub) = locate(&inner, item, depth + 1) {
                            return Some(format!("{key}[{i}].{sub}"));
                        }
                    }
                }
            } else if let Some(sub) = locate(&inner, value, depth + 1) {
                return Some(format!("{key}.{sub}"));
            }
        }
        return Some(key.clone());
    }
    None
}

/// Deis's JSON fields accept a JSON document inside a string
/// (`{"values": "{\"K\":\"v\"}"}`); decode those for map and message
/// fields at the top level.
fn decode_json_strings(desc: &MessageDescriptor, json: &mut Json) {
    let Some(object) = json.as_object_mut() else {
        return;
    };
    for (key, value) in object.iter_mut() {
        let Json::String(text) = value else {
            continue;
        };
        let Some(field) = desc
            .get_field_by_json_name(key)
            .or_else(|| desc.get_field_by_name(key))
        else {
            continue;
        };
        let wants_object = match field.kind() {
            Kind::Message(m) => {
                field.is_map()
                    || field.is_list()
                    || !matches!(
                        m.full_name(),
                        "google.protobuf.Timestamp"
                            | "google.protobuf.Duration"
                            | "google.protobuf.FieldMask"
                            | "google.protobuf.StringValue"
                            | "google.protobuf.BytesValue"
                            | "google.protobuf.Value"
                    )
            }
            _ => field.is_list(),
        };
        if wants_object
            && let Ok(parsed) = serde_json::from_str::<Json>(text)
            && (parsed.is_object() || parsed.is_array())
        {
            *value = parsed;
        }
    }
}

fn json_kind(json: &Json) -> &'static str {
    match json {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use prost::Message;
    use prost_reflect::DynamicMessage;

    use super::{DESERIALIZE, MAX_NESTING, nesting};

    /// A SetConfigRequest whose `healthcheck` holds `depth` (≥ 1) nested objects.
    fn nested(depth: usize) -> DynamicMessage {
        let desc = deis_proto::DESCRIPTOR_POOL
            .get_message_by_name("deis.v2.SetConfigRequest")
            .expect("SetConfigRequest");
        let mut json = serde_json::json!(1);
        for _ in 0..depth {
            json = serde_json::json!({ "a": json });
        }
        let body = serde_json::json!({ "healthcheck": json, "values": { "K": "v" } });
        DynamicMessage::deserialize_with_options(desc, body, &DESERIALIZE).expect("deserialize")
    }

    #[test]
    fn nesting_counts_levels_as_prost_decodes_them() {
        // healthcheck is a Struct (1 level); each of its objects is a map
        // entry and a Value (2), each object inside a Value one more
        // Struct (1): 3 levels an object. `values` is a map entry and a
        // Value: 2.
        for depth in [1, 2, 10, 33, 34, 40] {
            let message = nested(depth);
            let levels = 3 * depth;
            let counted = nesting(&message, MAX_NESTING + 1);
            assert_eq!(counted, levels.min(MAX_NESTING + 1), "depth {depth}");
            // What the server's prost-generated decoder makes of it.
            let decoded = deis_proto::v2::SetConfigRequest::decode(message.encode_to_vec().as_slice());
            assert_eq!(
                decoded.is_ok(),
                counted <= MAX_NESTING,
                "depth {depth}: {counted} levels, decoded {:?}",
                decoded.err()
            );
        }
    }

    #[test]
    fn nesting_stops_at_the_limit() {
        let message = nested(40);
        assert_eq!(nesting(&message, 5), 5);
        assert_eq!(nesting(&message, 0), 0);
    }
}
