//! The one mapping from domain errors to gRPC statuses.

use deis_core::{Error, ErrorKind};
use tonic::{Code, Status};

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
    let mut status = Status::new(code, err.message);
    if let Ok(value) = err.kind.http_status().to_string().parse() {
        status.metadata_mut().insert(HTTP_STATUS_METADATA, value);
    }
    status
}

/// Wraps a handler result into a tonic response.
pub(crate) fn respond<T>(result: deis_core::Result<T>) -> Result<tonic::Response<T>, Status> {
    result.map(tonic::Response::new).map_err(to_status)
}
