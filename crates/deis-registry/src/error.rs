//! The registry's errors and their one mapping to the spec's error codes,
//! HTTP statuses and JSON bodies.

use deis_objects::ObjectsError;
use http::StatusCode;
use serde_json::{Value, json};

use crate::names::Digest;

/// Everything a registry request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The blob is not in the repository.
    #[error("blob unknown to registry")]
    BlobUnknown(Digest),
    /// The upload request is malformed.
    #[error("blob upload invalid: {0}")]
    BlobUploadInvalid(String),
    /// A chunk does not start where the upload ends.
    #[error("chunk out of order: the upload holds {size} bytes")]
    UploadOutOfOrder {
        /// Bytes received so far.
        size: u64,
    },
    /// No such upload (finished, cancelled or never started).
    #[error("blob upload unknown to registry")]
    BlobUploadUnknown,
    /// A digest is malformed, or does not match the content.
    #[error("{0}")]
    DigestInvalid(String),
    /// A manifest references a blob or manifest the repository lacks.
    #[error("manifest references {0}, which is not in the repository")]
    ManifestBlobUnknown(Digest),
    /// A manifest is malformed or of an unsupported type.
    #[error("manifest invalid: {0}")]
    ManifestInvalid(String),
    /// A manifest is larger than the registry accepts.
    #[error("manifest larger than {limit} bytes")]
    ManifestTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// No such manifest (or tag) in the repository.
    #[error("manifest unknown to registry")]
    ManifestUnknown,
    /// The repository name is malformed.
    #[error("invalid repository name {0:?}")]
    NameInvalid(String),
    /// The repository does not exist.
    #[error("repository name not known to registry")]
    NameUnknown,
    /// A length or size does not match the content.
    #[error("{0}")]
    SizeInvalid(String),
    /// A `Range` cannot be served from a blob of this size.
    #[error("range not satisfiable for a blob of {size} bytes")]
    RangeNotSatisfiable {
        /// The blob's size.
        size: u64,
    },
    /// Credentials are missing or wrong.
    #[error("authentication required")]
    Unauthorized,
    /// The caller is known but may not do this.
    #[error("requested access to the resource is denied")]
    Denied,
    /// A valid bearer token that does not grant this: 401 (so the client
    /// may ask the token endpoint for the scope the challenge names) with
    /// `DENIED`.
    #[error("requested access to the resource is denied: the token does not grant it")]
    InsufficientScope,
    /// A valid request this registry does not implement.
    #[error("{0}")]
    Unsupported(String),
    /// The method is not allowed on this path.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// No API endpoint at this path.
    #[error("no such endpoint")]
    NotFound,
    /// The request body stopped or broke before it was complete.
    #[error("request body: {0}")]
    Body(String),
    /// Object storage failed (the detail is logged, never sent).
    #[error(transparent)]
    Storage(#[from] ObjectsError),
    /// The registry's own records in storage are unreadable (logged, never
    /// sent).
    #[error("corrupt registry record: {0}")]
    Corrupt(String),
}

/// How an error is sent: status, spec code, and the JSON `detail`.
pub(crate) struct ErrorReply {
    pub(crate) status: StatusCode,
    pub(crate) code: &'static str,
    pub(crate) detail: Value,
}

impl RegistryError {
    /// The single mapping from errors to the spec's codes and statuses.
    pub(crate) fn reply(&self) -> ErrorReply {
        let (status, code, detail) = match self {
            RegistryError::BlobUnknown(digest) => (
                StatusCode::NOT_FOUND,
                "BLOB_UNKNOWN",
                json!({ "digest": digest.to_string() }),
            ),
            RegistryError::BlobUploadInvalid(_) | RegistryError::Body(_) => {
                (StatusCode::BAD_REQUEST, "BLOB_UPLOAD_INVALID", Value::Null)
            }
            RegistryError::UploadOutOfOrder { size } => (
                StatusCode::RANGE_NOT_SATISFIABLE,
                "BLOB_UPLOAD_INVALID",
                json!({ "size": size }),
            ),
            RegistryError::BlobUploadUnknown => (StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN", Value::Null),
            RegistryError::DigestInvalid(_) => (StatusCode::BAD_REQUEST, "DIGEST_INVALID", Value::Null),
            RegistryError::ManifestBlobUnknown(digest) => (
                StatusCode::BAD_REQUEST,
                "MANIFEST_BLOB_UNKNOWN",
                json!({ "digest": digest.to_string() }),
            ),
            RegistryError::ManifestInvalid(_) => (StatusCode::BAD_REQUEST, "MANIFEST_INVALID", Value::Null),
            RegistryError::ManifestTooLarge { limit } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "MANIFEST_INVALID",
                json!({ "limit": limit }),
            ),
            RegistryError::ManifestUnknown => (StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN", Value::Null),
            RegistryError::NameInvalid(name) => {
                (StatusCode::BAD_REQUEST, "NAME_INVALID", json!({ "name": name }))
            }
            RegistryError::NameUnknown => (StatusCode::NOT_FOUND, "NAME_UNKNOWN", Value::Null),
            RegistryError::SizeInvalid(_) => (StatusCode::BAD_REQUEST, "SIZE_INVALID", Value::Null),
            RegistryError::RangeNotSatisfiable { size } => (
                StatusCode::RANGE_NOT_SATISFIABLE,
                "SIZE_INVALID",
                json!({ "size": size }),
            ),
            RegistryError::Unauthorized => (StatusCode::UNAUTHORIZED, "UNAUTHORIZED", Value::Null),
            RegistryError::Denied => (StatusCode::FORBIDDEN, "DENIED", Value::Null),
            RegistryError::InsufficientScope => (StatusCode::UNAUTHORIZED, "DENIED", Value::Null),
            RegistryError::Unsupported(_) => (StatusCode::BAD_REQUEST, "UNSUPPORTED", Value::Null),
            RegistryError::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "UNSUPPORTED", Value::Null),
            RegistryError::NotFound => (StatusCode::NOT_FOUND, "UNSUPPORTED", Value::Null),
            RegistryError::Storage(_) | RegistryError::Corrupt(_) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "UNKNOWN", Value::Null)
            }
        };
        ErrorReply { status, code, detail }
    }

    /// The spec's error body.
    pub(crate) fn body(&self) -> Value {
        let reply = self.reply();
        let message = match self {
            // Storage paths and backend messages stay in the log.
            RegistryError::Storage(_) | RegistryError::Corrupt(_) => "internal storage error".to_owned(),
            other => other.to_string(),
        };
        json!({ "errors": [{ "code": reply.code, "message": message, "detail": reply.detail }] })
    }
}
