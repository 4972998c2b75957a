//! Credentials: argon2id password hashes, bearer tokens that are stored only
//! as hashes, the platform secret for internal callers, and login rate limits.
//!
//! Architecture invariant: nothing here touches the database or the network;
//! the controller decides where hashes are stored and when limits apply.

mod limiter;
mod password;
mod secret;
mod token;

pub use limiter::{LoginLimiter, LoginLimits};
pub use password::{hash_password, verify_password};
pub use secret::PlatformSecret;
pub use token::{IssuedToken, issue_token, token_hash};

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The password could not be hashed.
    #[error("could not hash the password: {0}")]
    Hash(String),
    /// The platform secret file could not be read or written.
    #[error("platform secret at {path}: {source}")]
    SecretFile {
        /// Path of the secret file.
        path: String,
        /// The I/O failure.
        source: std::io::Error,
    },
    /// The platform secret is too short to be safe.
    #[error("the platform secret must be at least 32 characters long")]
    WeakSecret,
}

/// Compares two byte strings in constant time (for equal lengths).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}
