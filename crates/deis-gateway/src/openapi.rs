//! The OpenAPI 3.0 document of a gateway, generated from the same parsed
//! rules that route requests, so the document and the routes cannot
//! disagree. Schemas follow the JSON the gateway writes: proto field names,
//! every field present, unset optional and message fields `null`. Every
//! operation needs the token but those of
//! [`GatewayOptions::public_methods`](crate::GatewayOptions::public_methods).
//!
//! Limits: bindings with a `custom` HTTP method OpenAPI cannot name are
//! left out; map and repeated-message fields are not offered as query
//! parameters; two templates that differ only in a variable's pattern
//! (`{name=a/*}` vs `{name=b/*}`) would share an OpenAPI path.

use std::collections::{BTreeMap, HashSet};

use http::StatusCode;
use prost_reflect::{FieldDescriptor, FileDescriptor, Kind, MessageDescriptor};
use serde_json::{Map, Value as Json, json};

use crate::response::HTTP_BODY;
use crate::{Gateway, Rule};

/// The component holding the `{"detail": …}` error body.
const ERROR_SCHEMA: &str = "ErrorDetail";

/// The OpenAPI 3.0 document (JSON) of every rule of `gateway`.
pub fn document(gateway: &Gateway) -> Json {
    let mut generator = Generator {
        stringify_64_bit_integers: gateway.options().stringify_64_bit_integers,
        schemas: BTreeMap::new(),
        pending: Vec::new(),
        seen: HashSet::new(),
    };
    let mut paths: BTreeMap<String, Map<String, Json>> = BTreeMap::new();
    let mut tags: BTreeMap<String, Json> = BTreeMap::new();
    for rule in gateway.rules() {
        let verb = rule.http_method().as_str().to_ascii_lowercase();
        if !matches!(
            verb.as_str(),
            "get" | "put" | "post" | "delete" | "options" | "head" | "patch" | "trace"
        ) {
            continue;
        }
        let service = rule.method().parent_service();
        tags.entry(service.name().to_owned()).or_insert_with(|| {
            let mut tag = Map::new();
            tag.insert("name".into(), service.name().into());
            if let Some(text) = comment(&service.parent_file(), service.path()) {
                tag.insert("description".into(), text.into());
            }
            Json::Object(tag)
        });
        let operation = generator.operation(gateway, rule);
        paths
            .entry(rule.template().openapi_path())
            .or_default()
            .insert(verb, operation);
    }
    generator.drain();
    let mut schemas: Map<String, Json> = generator.schemas.into_iter().collect();
    schemas.insert(
        ERROR_SCHEMA.into(),
        json!({
            "description": "An error, in one of Deis's three shapes: `{\"detail\": …}`; \
                per-field validation errors `{\"<field>\": [\"<message>\", …]}`; or, for \
                a named thing that does not exist, a bare string.",
            "anyOf": [
                {
                    "type": "object",
                    "properties": { "detail": { "type": "string" } },
                    "required": ["detail"],
                },
                {
                    "type": "object",
                    "minProperties": 1,
                    "additionalProperties": { "type": "array", "items": { "type": "string" } },
                },
                { "type": "string" },
            ],
        }),
    );
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "Deis Workflow REST API",
            "version": gateway.options().api_version,
            "description": "REST/JSON transcoding of the gRPC API. Every response carries \
                DEIS_API_VERSION and DEIS_PLATFORM_VERSION headers.",
        },
        "tags": tags.into_values().collect::<Vec<_>>(),
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "token": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "Authorization",
                    "description": "`token <key>`, the key from Login or Register.",
                },
            },
        },
        "security": [{ "token": [] }],
    })
}

struct Generator {
    stringify_64_bit_integers: bool,
    schemas: BTreeMap<String, Json>,
    /// Messages referenced but not yet described.
    pending: Vec<MessageDescriptor>,
    seen: HashSet<String>,
}

impl Generator {
    fn operation(&mut self, gateway: &Gateway, rule: &Rule) -> Json {
        let method = rule.method();
        let service = method.parent_service();
        let mut op = Map::new();
        let id = match rule.binding() {
            0 => format!("{}_{}", service.name(), method.name()),
            n => format!("{}_{}{}", service.name(), method.name(), n + 1),
        };
        op.insert("operationId".into(), id.into());
        op.insert("tags".into(), json!([service.name()]));
        if gateway
            .options()
            .public_methods
            .iter()
            .any(|m| m == method.full_name())
        {
            // Overrides the document's default: no token needed.
            op.insert("security".into(), json!([]));
        }
        if let Some(text) = comment(&method.parent_file(), method.path()) {
            let summary = text.lines().next().unwrap_or_default().to_owned();
            op.insert("summary".into(), summary.into());
            op.insert("description".into(), text.into());
        }

        let mut parameters = Vec::new();
        for (var, fields) in rule.template().variables().iter().zip(&rule.path_fields) {
            let Some(leaf) = fields.last() else { continue };
            let mut schema = self.kind_schema(&leaf.kind());
            if let (Some(pattern), Json::Object(s)) = (rule.template().variable_pattern(var), &mut schema) {
                s.insert("pattern".into(), format!("^{pattern}$").into());
            }
            let mut param = json!({
                "name": var.field_path(),
                "in": "path",
                "required": true,
                "schema": schema,
            });
            if let (Some(text), Json::Object(p)) = (field_comment(leaf), &mut param) {
                p.insert("description".into(), text.into());
            }
            parameters.push(param);
        }
        if rule.body() != Some("*") {
            let input = method.input();
            self.query_parameters(rule, &input, &mut Vec::new(), &mut parameters);
        }
        if !parameters.is_empty() {
            op.insert("parameters".into(), parameters.into());
        }

        if let Some(body) = rule.body() {
            let (schema, form) = match &rule.body_field {
                Some(field) => (
                    self.value_schema(field),
                    field.is_map() || matches!(field.kind(), Kind::Message(_)),
                ),
                None => (self.body_schema(rule), body == "*"),
            };
            let mut content = Map::new();
            content.insert("application/json".into(), json!({ "schema": schema }));
            if form {
                content.insert(
                    "application/x-www-form-urlencoded".into(),
                    json!({ "schema": schema }),
                );
            }
            op.insert(
                "requestBody".into(),
                json!({ "required": false, "content": content }),
            );
        }

        let status = gateway.default_success(rule);
        let mut success = Map::new();
        success.insert(
            "description".into(),
            status.canonical_reason().unwrap_or("Success").into(),
        );
        let raw = match &rule.response_field {
            Some(field) => matches!(field.kind(), Kind::Message(m) if m.full_name() == HTTP_BODY),
            None => method.output().full_name() == HTTP_BODY,
        };
        let mut responses = Map::new();
        if raw {
            success.insert(
                "description".into(),
                "The body as is, with its own content type (e.g. text/plain).".into(),
            );
            success.insert(
                "content".into(),
                json!({ "*/*": { "schema": { "type": "string", "format": "binary" } } }),
            );
            responses.insert("204".into(), json!({ "description": "Nothing to send yet." }));
        } else if status != StatusCode::NO_CONTENT {
            let schema = match &rule.response_field {
                Some(field) => self.value_schema(field),
                None => self.reference(&method.output()),
            };
            let content_type = if rule.is_streaming() {
                success.insert(
                    "description".into(),
                    "Newline-delimited JSON: one object per message, sent as it comes. \
                     An error ends the stream with a {\"detail\": …} line."
                        .into(),
                );
                "application/x-ndjson"
            } else {
                "application/json"
            };
            success.insert("content".into(), json!({ content_type: { "schema": schema } }));
        }
        responses.insert(status.as_str().into(), Json::Object(success));
        responses.insert(
            "default".into(),
            json!({
                "description": "Error",
                "content": {
                    "application/json": {
                        "schema": { "$ref": format!("#/components/schemas/{ERROR_SCHEMA}") },
                    },
                },
            }),
        );
        op.insert("responses".into(), Json::Object(responses));
        Json::Object(op)
    }

    /// `body: "*"`: the request message without the fields the path binds.
    fn body_schema(&mut self, rule: &Rule) -> Json {
        let input = rule.method().input();
        let bound: Vec<u32> = rule
            .path_fields
            .iter()
            .filter(|path| path.len() == 1)
            .filter_map(|path| path.first().map(FieldDescriptor::number))
            .collect();
        if bound.is_empty() {
            return self.reference(&input);
        }
        let mut properties = Map::new();
        for field in input.fields().filter(|f| !bound.contains(&f.number())) {
            let schema = self.field_schema(&field);
            properties.insert(field.name().to_owned(), schema);
        }
        json!({ "type": "object", "properties": properties })
    }

    fn query_parameters(
        &mut self,
        rule: &Rule,
        message: &MessageDescriptor,
        prefix: &mut Vec<FieldDescriptor>,
        out: &mut Vec<Json>,
    ) {
        for field in message.fields() {
            if prefix.is_empty()
                && rule
                    .body_field
                    .as_ref()
                    .is_some_and(|b| b.number() == field.number())
            {
                continue;
            }
            prefix.push(field.clone());
            let skip = rule.binds_path(prefix) || field.is_map();
            if !skip {
                match field.kind() {
                    Kind::Message(inner) if !inner.full_name().starts_with("google.protobuf.") => {
                        // Nested fields as `a.b`; stop at lists and cycles.
                        let cyclic = prefix[..prefix.len() - 1].iter().any(
                            |f| matches!(f.kind(), Kind::Message(m) if m.full_name() == inner.full_name()),
                        );
                        if !field.is_list() && !cyclic && prefix.len() < 4 {
                            self.query_parameters(rule, &inner, prefix, out);
                        }
                    }
                    kind => {
                        let name: Vec<&str> = prefix.iter().map(FieldDescriptor::name).collect();
                        let item = self.kind_schema(&kind);
                        let mut param = if field.is_list() {
                            json!({
                                "name": name.join("."),
                                "in": "query",
                                "style": "form",
                                "explode": true,
                                "schema": { "type": "array", "items": item },
                            })
                        } else {
                            json!({ "name": name.join("."), "in": "query", "schema": item })
                        };
                        if let (Some(text), Json::Object(p)) = (field_comment(&field), &mut param) {
                            p.insert("description".into(), text.into());
                        }
                        out.push(param);
                    }
                }
            }
            prefix.pop();
        }
    }

    /// The schema of a field as a property (nullable when it has presence).
    fn field_schema(&mut self, field: &FieldDescriptor) -> Json {
        let mut schema = self.value_schema(field);
        if field.supports_presence() && !field.is_list() {
            schema = match schema {
                Json::Object(mut s) if !s.contains_key("$ref") => {
                    s.insert("nullable".into(), true.into());
                    Json::Object(s)
                }
                // OpenAPI 3.0 ignores siblings of `$ref`.
                other => json!({ "allOf": [other], "nullable": true }),
            };
        }
        if let (Some(text), Json::Object(s)) = (field_comment(field), &mut schema) {
            if s.contains_key("$ref") {
                schema = json!({ "allOf": [schema], "description": text });
            } else {
                s.insert("description".into(), text.into());
            }
        }
        schema
    }

    /// The schema of a field's value: lists and maps included, no presence.
    fn value_schema(&mut self, field: &FieldDescriptor) -> Json {
        if field.is_map() {
            let value = match field.kind() {
                Kind::Message(entry) => self.kind_schema(&entry.map_entry_value_field().kind()),
                _ => json!({}),
            };
            json!({ "type": "object", "additionalProperties": value })
        } else if field.is_list() {
            json!({ "type": "array", "items": self.kind_schema(&field.kind()) })
        } else {
            self.kind_schema(&field.kind())
        }
    }

    fn kind_schema(&mut self, kind: &Kind) -> Json {
        let wide = |format: &str| {
            if self.stringify_64_bit_integers {
                json!({ "type": "string", "format": format })
            } else {
                json!({ "type": "integer", "format": format })
            }
        };
        match kind {
            Kind::Double => json!({ "type": "number", "format": "double" }),
            Kind::Float => json!({ "type": "number", "format": "float" }),
            Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => {
                json!({ "type": "integer", "format": "int32" })
            }
            Kind::Uint32 | Kind::Fixed32 => {
                json!({ "type": "integer", "format": "int64", "minimum": 0 })
            }
            Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => wide("int64"),
            Kind::Uint64 | Kind::Fixed64 => wide("uint64"),
            Kind::Bool => json!({ "type": "boolean" }),
            Kind::String => json!({ "type": "string" }),
            Kind::Bytes => json!({ "type": "string", "format": "byte" }),
            Kind::Enum(e) => {
                let names: Vec<String> = e.values().map(|v| v.name().to_owned()).collect();
                json!({ "type": "string", "enum": names })
            }
            Kind::Message(m) => well_known(m).unwrap_or_else(|| self.reference(m)),
        }
    }

    fn reference(&mut self, message: &MessageDescriptor) -> Json {
        if let Some(schema) = well_known(message) {
            return schema;
        }
        if self.seen.insert(message.full_name().to_owned()) {
            self.pending.push(message.clone());
        }
        json!({ "$ref": format!("#/components/schemas/{}", message.full_name()) })
    }

    /// Describes every referenced message (and those they reference).
    fn drain(&mut self) {
        while let Some(message) = self.pending.pop() {
            let mut properties = Map::new();
            for field in message.fields() {
                let schema = self.field_schema(&field);
                properties.insert(field.name().to_owned(), schema);
            }
            let mut schema = Map::new();
            schema.insert("type".into(), "object".into());
            if let Some(text) = comment(&message.parent_file(), message.path()) {
                schema.insert("description".into(), text.into());
            }
            schema.insert("properties".into(), properties.into());
            self.schemas
                .insert(message.full_name().to_owned(), Json::Object(schema));
        }
    }
}

/// Inline schemas for the well-known types, as canonical JSON writes them.
fn well_known(message: &MessageDescriptor) -> Option<Json> {
    let name = message.full_name();
    let nullable = |t: &str, format: Option<&str>| {
        let mut s = json!({ "type": t, "nullable": true });
        if let (Some(f), Json::Object(m)) = (format, &mut s) {
            m.insert("format".into(), f.into());
        }
        s
    };
    Some(match name {
        "google.protobuf.Timestamp" => json!({ "type": "string", "format": "date-time" }),
        "google.protobuf.Duration" => json!({ "type": "string", "example": "1.5s" }),
        "google.protobuf.FieldMask" => json!({ "type": "string" }),
        "google.protobuf.Struct" => json!({ "type": "object", "additionalProperties": true }),
        "google.protobuf.Value" => json!({}),
        "google.protobuf.ListValue" => json!({ "type": "array", "items": {} }),
        "google.protobuf.Empty" => json!({ "type": "object" }),
        "google.protobuf.Any" => json!({
            "type": "object",
            "properties": { "@type": { "type": "string" } },
            "additionalProperties": true,
        }),
        "google.protobuf.BoolValue" => nullable("boolean", None),
        "google.protobuf.StringValue" => nullable("string", None),
        "google.protobuf.BytesValue" => nullable("string", Some("byte")),
        "google.protobuf.Int32Value" => nullable("integer", Some("int32")),
        "google.protobuf.UInt32Value" => nullable("integer", Some("int64")),
        "google.protobuf.Int64Value" | "google.protobuf.UInt64Value" => nullable("integer", Some("int64")),
        "google.protobuf.FloatValue" => nullable("number", Some("float")),
        "google.protobuf.DoubleValue" => nullable("number", Some("double")),
        _ => return None,
    })
}

fn field_comment(field: &FieldDescriptor) -> Option<String> {
    comment(&field.parent_file(), field.path())
}

/// The leading comment of the element at `path` in `file`, if the pool
/// kept source info.
fn comment(file: &FileDescriptor, path: &[i32]) -> Option<String> {
    let info = file.file_descriptor_proto().source_code_info.as_ref()?;
    let location = info.location.iter().find(|l| l.path == path)?;
    let text = location.leading_comments.as_deref()?;
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    let text = lines.join("\n").trim().to_owned();
    (!text.is_empty()).then_some(text)
}
