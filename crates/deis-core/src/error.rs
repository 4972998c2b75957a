//! The error taxonomy of the platform's domain.
//!
//! Each kind corresponds to one Deis HTTP status and one gRPC code; the
//! controller maps kinds to `tonic::Status` in exactly one place.

use std::fmt;

/// What went wrong, in terms a client can act on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// Bad input (Deis 400, gRPC INVALID_ARGUMENT).
    InvalidArgument,
    /// No or bad credentials (401, UNAUTHENTICATED).
    Unauthenticated,
    /// Credentials fine, permission missing (403, PERMISSION_DENIED).
    PermissionDenied,
    /// The thing does not exist (404, NOT_FOUND).
    NotFound,
    /// A duplicate (409 or Deis's 400 for duplicates, ALREADY_EXISTS).
    AlreadyExists,
    /// The request conflicts with the current state, e.g. "changed nothing"
    /// (409, FAILED_PRECONDITION).
    Conflict,
    /// Unsetting something that is not set (422, FAILED_PRECONDITION).
    Unprocessable,
    /// Too many attempts (429, RESOURCE_EXHAUSTED).
    ResourceExhausted,
    /// A dependency such as the scheduler failed (503, UNAVAILABLE).
    Unavailable,
    /// A bug or an unexpected failure (500, INTERNAL).
    Internal,
}

impl ErrorKind {
    /// The HTTP status Deis answers with for this kind.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorKind::InvalidArgument => 400,
            ErrorKind::Unauthenticated => 401,
            ErrorKind::PermissionDenied => 403,
            ErrorKind::NotFound => 404,
            ErrorKind::AlreadyExists | ErrorKind::Conflict => 409,
            ErrorKind::Unprocessable => 422,
            ErrorKind::ResourceExhausted => 429,
            ErrorKind::Unavailable => 503,
            ErrorKind::Internal => 500,
        }
    }
}

/// A domain error: a kind and a one-sentence message meant for the user.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct Error {
    /// What class of failure this is.
    pub kind: ErrorKind,
    /// The message shown to the user (Deis's wording where Deis has one).
    pub message: String,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Result with the domain error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

macro_rules! constructors {
    ($($name:ident => $kind:ident),* $(,)?) => {
        impl Error {
            $(
                #[doc = concat!("An error of kind [`ErrorKind::", stringify!($kind), "`].")]
                pub fn $name(message: impl Into<String>) -> Self {
                    Error { kind: ErrorKind::$kind, message: message.into() }
                }
            )*
        }
    };
}

constructors! {
    invalid => InvalidArgument,
    unauthenticated => Unauthenticated,
    permission_denied => PermissionDenied,
    not_found => NotFound,
    already_exists => AlreadyExists,
    conflict => Conflict,
    unprocessable => Unprocessable,
    resource_exhausted => ResourceExhausted,
    unavailable => Unavailable,
    internal => Internal,
}
