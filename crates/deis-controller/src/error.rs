//! The one mapping from domain errors to gRPC statuses.

use deis_core::{Error, ErrorKind};
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// Trailer carrying the HTTP status Deis would answer with, so the REST
/// gateway can reproduce Deis's codes (409 vs 422 share a gRPC code).
pub const HTTP_STATUS_METADATA: &str = "x-deis-http-status";

/// Turns a domain error into the status a client sees.
pub(crate) fn to_status(err: Error) -> Status {
    let code = match err.kind {
        ErrorKind::InvalidArgument => Code::InvalidArgument,
        ErrorKind::Unauthenticated => Code::Unauthenticated,
        ErrorKind::PermissionDenied => Code::PermissionDenied,
        ErrorKind::NotFound => Code::NotFound,
        ErrorKind::AlreadyExists => Code::AlreadyExists,
        ErrorKind::Conflict | ErrorKind::Unprocessable => Code::FailedPrecondition,
        ErrorKind::ResourceExhausted => Code::ResourceExhausted,
        ErrorKind::Unavailable => Code::Unavailable,
        ErrorKind::Internal => Code::Internal,
    };
    // Structured details (google.rpc) say which field or thing an error is
    // about, for gRPC clients and for the REST gateway's Deis shapes.
    let mut status = if err.field.is_none() && err.resource.is_none() {
        Status::new(code, err.message)
    } else {
        let mut details = ErrorDetails::new();
        if let Some(field) = err.field {
            details.add_bad_request_violation(field, err.message.clone());
        }
        if let Some(resource) = err.resource {
            details.set_resource_info(resource.model_name(), "", "", err.message.clone());
        }
        Status::with_error_details(code, err.message, details)
    };
    // Deis answers every per-field validation error 400, duplicates too.
    let http_status = if err.field.is_some() {
        400
    } else {
        err.kind.http_status()
    };
    if let Ok(value) = http_status.to_string().parse() {
        status.metadata_mut().insert(HTTP_STATUS_METADATA, value);
    }
    status
}

/// Wraps a handler result into a tonic response.
pub(crate) fn respond<T>(result: deis_core::Result<T>) -> Result<tonic::Response<T>, Status> {
    result.map(tonic::Response::new).map_err(to_status)
}
