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
    /// The request field the error is about, when it is about one (Deis
    /// answers those as `{"<field>": ["<message>"]}`).
    pub field: Option<&'static str>,
    /// For "no such thing" errors: the kind of thing looked up.
    pub resource: Option<Resource>,
}

/// The things a request can name that may not exist, by Deis's model names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Resource {
    /// An application.
    App,
    /// A build.
    Build,
    /// A release.
    Release,
    /// A custom domain.
    Domain,
    /// A TLS certificate.
    Certificate,
    /// An SSH key.
    Key,
    /// A user account.
    User,
}

impl Resource {
    /// Deis's model name (`No App matches the given query.`).
    pub fn model_name(self) -> &'static str {
        match self {
            Resource::App => "App",
            Resource::Build => "Build",
            Resource::Release => "Release",
            Resource::Domain => "Domain",
            Resource::Certificate => "Certificate",
            Resource::Key => "Key",
            Resource::User => "User",
        }
    }

    /// How a message names it.
    fn noun(self) -> &'static str {
        match self {
            Resource::Key => "SSH key",
            other => other.model_name(),
        }
    }
}

impl Error {
    /// A [`ErrorKind::NotFound`] error for a named thing: "App foo does not exist."
    pub fn no_such(resource: Resource, name: impl fmt::Display) -> Self {
        let mut error = Error::not_found(format!("{} {name} does not exist.", resource.noun()));
        error.resource = Some(resource);
        error
    }

    /// The same error, about the request field `field`.
    #[must_use]
    pub fn on_field(mut self, field: &'static str) -> Self {
        self.field = Some(field);
        self
    }
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
                    Error { kind: ErrorKind::$kind, message: message.into(), field: None, resource: None }
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
