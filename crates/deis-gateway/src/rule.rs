//! Reading `google.api.http` rules from a descriptor pool.

use http::Method;
use prost_reflect::{
    DescriptorPool, DynamicMessage, FieldDescriptor, Kind, MessageDescriptor, MethodDescriptor, Value,
};

use crate::error::GatewayError;
use crate::template::{PathTemplate, RequestPath};

/// One HTTP binding of an RPC: the primary rule or one of its
/// `additional_bindings`.
#[derive(Clone, Debug)]
pub struct Rule {
    method: MethodDescriptor,
    http_method: Method,
    template: PathTemplate,
    body: Option<String>,
    response_body: Option<String>,
    binding: usize,
    /// The resolved field path of each template variable, in template order.
    pub(crate) path_fields: Vec<Vec<FieldDescriptor>>,
    /// The request field `body` names (not for `*`).
    pub(crate) body_field: Option<FieldDescriptor>,
    /// The response field `response_body` names.
    pub(crate) response_field: Option<FieldDescriptor>,
    pub(crate) specificity: Vec<u8>,
}

impl Rule {
    /// The RPC.
    pub fn method(&self) -> &MethodDescriptor {
        &self.method
    }

    /// The HTTP method (`custom` kinds included).
    pub fn http_method(&self) -> &Method {
        &self.http_method
    }

    /// The path template.
    pub fn template(&self) -> &PathTemplate {
        &self.template
    }

    /// `Some("*")` when the whole request comes from the body, `Some(field)`
    /// when one field does, `None` when there is no body.
    pub fn body(&self) -> Option<&str> {
        self.body.as_deref()
    }

    /// The response field sent as the body instead of the whole response.
    pub fn response_body(&self) -> Option<&str> {
        self.response_body.as_deref()
    }

    /// 0 for the primary binding, n for the n-th of `additional_bindings`.
    pub fn binding(&self) -> usize {
        self.binding
    }

    /// Whether the answer is a stream (sent as newline-delimited JSON).
    pub fn is_streaming(&self) -> bool {
        self.method.is_server_streaming()
    }

    /// The gRPC path: `/package.Service/Method`.
    pub fn grpc_path(&self) -> String {
        format!(
            "/{}/{}",
            self.method.parent_service().full_name(),
            self.method.name()
        )
    }

    /// Whether `fields` is bound by a path variable.
    pub(crate) fn binds_path(&self, fields: &[FieldDescriptor]) -> bool {
        self.path_fields.iter().any(|bound| {
            bound.len() == fields.len() && bound.iter().zip(fields).all(|(a, b)| a.number() == b.number())
        })
    }

    pub(crate) fn matches(&self, path: &RequestPath) -> Option<Vec<(String, String)>> {
        self.template.matches(path)
    }
}

/// Every binding of every annotated method of `services`, in declaration order.
pub(crate) fn read_rules(pool: &DescriptorPool, services: &[&str]) -> Result<Vec<Rule>, GatewayError> {
    let extension = pool
        .get_extension_by_name("google.api.http")
        .ok_or(GatewayError::NoHttpExtension)?;
    let mut rules = Vec::new();
    for name in services {
        let service = pool
            .get_service_by_name(name)
            .ok_or_else(|| GatewayError::UnknownService((*name).to_owned()))?;
        for method in service.methods() {
            let options = method.options();
            if !options.has_extension(&extension) {
                continue;
            }
            let value = options.get_extension(&extension);
            let Value::Message(http_rule) = value.as_ref() else {
                continue;
            };
            if method.is_client_streaming() {
                return Err(invalid(
                    &method,
                    "client streaming cannot be mapped to HTTP; remove the google.api.http rule",
                ));
            }
            rules.push(binding(&method, http_rule, 0)?);
            if let Some(extra) = http_rule.get_field_by_name("additional_bindings")
                && let Value::List(extra) = extra.as_ref()
            {
                for (i, b) in extra.iter().enumerate() {
                    if let Value::Message(b) = b {
                        rules.push(binding(&method, b, i + 1)?);
                    }
                }
            }
        }
    }
    for (i, rule) in rules.iter().enumerate() {
        let shape = rule.template.shape();
        if let Some(first) = rules[..i]
            .iter()
            .find(|r| r.http_method == rule.http_method && r.template.shape() == shape)
        {
            return Err(GatewayError::DuplicateRoute {
                verb: rule.http_method.clone(),
                template: rule.template.as_str().to_owned(),
                first: first.method.full_name().to_owned(),
                second: rule.method.full_name().to_owned(),
            });
        }
    }
    Ok(rules)
}

fn invalid(method: &MethodDescriptor, reason: impl Into<String>) -> GatewayError {
    GatewayError::InvalidRule {
        method: method.full_name().to_owned(),
        reason: reason.into(),
    }
}

fn string_field(message: &DynamicMessage, name: &str) -> Option<String> {
    match message.get_field_by_name(name)?.as_ref() {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}

fn binding(
    method: &MethodDescriptor,
    http_rule: &DynamicMessage,
    index: usize,
) -> Result<Rule, GatewayError> {
    const PATTERNS: [(&str, Method); 5] = [
        ("get", Method::GET),
        ("put", Method::PUT),
        ("post", Method::POST),
        ("delete", Method::DELETE),
        ("patch", Method::PATCH),
    ];
    let mut pattern = PATTERNS.iter().find_map(|(name, verb)| {
        http_rule
            .has_field_by_name(name)
            .then(|| string_field(http_rule, name).map(|path| (verb.clone(), path)))
            .flatten()
    });
    if pattern.is_none()
        && http_rule.has_field_by_name("custom")
        && let Some(custom) = http_rule.get_field_by_name("custom")
        && let Value::Message(custom) = custom.as_ref()
    {
        let kind = string_field(custom, "kind").unwrap_or_default();
        let verb = Method::from_bytes(kind.as_bytes())
            .map_err(|_| invalid(method, format!("custom kind `{kind}` is not an HTTP method")))?;
        pattern = string_field(custom, "path").map(|path| (verb, path));
    }
    let (http_method, path) =
        pattern.ok_or_else(|| invalid(method, "the rule has no HTTP method and path"))?;
    let template = PathTemplate::parse(&path).map_err(|source| GatewayError::InvalidTemplate {
        method: method.full_name().to_owned(),
        source,
    })?;

    let input = method.input();
    let mut path_fields = Vec::new();
    for var in template.variables() {
        let fields = resolve_field_path(&input, var.field_path())
            .map_err(|reason| invalid(method, format!("`{{{}}}`: {reason}", var.field_path())))?;
        if let Some(leaf) = fields.last()
            && (leaf.is_list() || leaf.is_map() || matches!(leaf.kind(), Kind::Message(_)))
        {
            return Err(invalid(
                method,
                format!("`{{{}}}` must name a singular scalar field", var.field_path()),
            ));
        }
        path_fields.push(fields);
    }

    let body = string_field(http_rule, "body");
    let body_field = match body.as_deref() {
        None | Some("*") => None,
        Some(name) => Some(input.get_field_by_name(name).ok_or_else(|| {
            invalid(
                method,
                format!("body field `{name}` is not in {}", input.full_name()),
            )
        })?),
    };
    let response_body = string_field(http_rule, "response_body");
    let response_field = match response_body.as_deref() {
        None => None,
        Some(name) => {
            let output = method.output();
            Some(output.get_field_by_name(name).ok_or_else(|| {
                invalid(
                    method,
                    format!("response_body field `{name}` is not in {}", output.full_name()),
                )
            })?)
        }
    };
    let specificity = template.specificity();
    Ok(Rule {
        method: method.clone(),
        http_method,
        template,
        body,
        response_body,
        binding: index,
        path_fields,
        body_field,
        response_field,
        specificity,
    })
}

/// Resolves `a.b.c` against `message`, accepting proto and JSON names.
/// Every component but the last must be a singular message field.
pub(crate) fn resolve_field_path(
    message: &MessageDescriptor,
    path: &str,
) -> Result<Vec<FieldDescriptor>, String> {
    let mut fields = Vec::new();
    let mut current = message.clone();
    let mut parts = path.split('.').peekable();
    while let Some(part) = parts.next() {
        let field = current
            .get_field_by_name(part)
            .or_else(|| current.get_field_by_json_name(part))
            .ok_or_else(|| format!("no field `{part}` in {}", current.full_name()))?;
        if parts.peek().is_some() {
            match field.kind() {
                Kind::Message(next)
                    if !field.is_list()
                        && !field.is_map()
                        && !next.full_name().starts_with("google.protobuf.") =>
                {
                    current = next;
                }
                _ => return Err(format!("`{part}` is not a singular message field")),
            }
        }
        fields.push(field);
    }
    Ok(fields)
}
