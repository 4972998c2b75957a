//! The gateway's errors: [`GatewayError`] when building it, [`RestError`]
//! while answering a request.

use http::{Method, StatusCode};

use crate::template::TemplateError;

/// Why [`Gateway::new`](crate::Gateway::new) refused the descriptors or options.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// A service named in `services` is not in the pool.
    #[error("service `{0}` is not in the descriptor pool")]
    UnknownService(String),
    /// The pool lacks `google.api.http` (it was built without `google/api/annotations.proto`).
    #[error("the descriptor pool has no `google.api.http` extension")]
    NoHttpExtension,
    /// A method's rule is malformed.
    #[error("{method}: {reason}")]
    InvalidRule {
        /// The method's full name.
        method: String,
        /// What is wrong.
        reason: String,
    },
    /// A method's path template does not parse.
    #[error("{method}: {source}")]
    InvalidTemplate {
        /// The method's full name.
        method: String,
        /// The parse error.
        source: TemplateError,
    },
    /// Two bindings answer the same HTTP method and path.
    #[error("{first} and {second} both bind {verb} {template}")]
    DuplicateRoute {
        /// The HTTP method.
        verb: Method,
        /// The template of the second binding.
        template: String,
        /// The first method's full name.
        first: String,
        /// The second method's full name.
        second: String,
    },
    /// An option value cannot be used (e.g. a version that is not a valid header value).
    #[error("invalid option {name}: {reason}")]
    InvalidOption {
        /// The option's name.
        name: &'static str,
        /// What is wrong.
        reason: String,
    },
}

/// A request the gateway answers itself with `{"detail": …}`.
#[derive(Debug, Clone)]
pub(crate) struct RestError {
    pub(crate) status: StatusCode,
    pub(crate) detail: String,
    /// For 405 and OPTIONS: the methods the path accepts.
    pub(crate) allow: Vec<Method>,
    /// Deis's irregular error bodies (`{"field": ["…"]}`, a bare string)
    /// in place of `{"detail": …}`.
    pub(crate) body: Option<serde_json::Value>,
}

impl RestError {
    pub(crate) fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        Self {
            status,
            detail: detail.into(),
            allow: Vec::new(),
            body: None,
        }
    }

    pub(crate) fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, detail)
    }

    pub(crate) fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "Not found.")
    }

    pub(crate) fn method_not_allowed(method: &Method, allow: Vec<Method>) -> Self {
        Self {
            status: StatusCode::METHOD_NOT_ALLOWED,
            detail: format!("Method \"{method}\" not allowed."),
            allow,
            body: None,
        }
    }

    pub(crate) fn too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("Request body exceeds the limit of {limit} bytes."),
        )
    }
}
