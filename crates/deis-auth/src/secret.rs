//! The platform secret: how internal callers (builder, runtime) prove they
//! are part of the platform. It is a different credential from user tokens,
//! checked by a different code path, so neither can stand in for the other.

use std::io::Write;
use std::path::Path;

use crate::{AuthError, constant_time_eq, token::issue_token};

/// The shared secret of the platform's components.
#[derive(Clone)]
pub struct PlatformSecret(String);

impl std::fmt::Debug for PlatformSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PlatformSecret(..)")
    }
}

impl PlatformSecret {
    /// Wraps a given secret (from the environment or a Kubernetes Secret).
    pub fn new(secret: impl Into<String>) -> Result<Self, AuthError> {
        let secret = secret.into().trim().to_owned();
        if secret.len() < 32 {
            return Err(AuthError::WeakSecret);
        }
        Ok(PlatformSecret(secret))
    }

    /// Reads the secret from `path`; `None` when there is no such file.
    pub fn load(path: &Path) -> Result<Option<Self>, AuthError> {
        match std::fs::read_to_string(path) {
            Ok(text) => PlatformSecret::new(text).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(AuthError::SecretFile {
                path: path.display().to_string(),
                source,
            }),
        }
    }

    /// Reads the secret from `path`, creating it (mode 0600) on first use.
    pub fn load_or_create(path: &Path) -> Result<Self, AuthError> {
        let io_err = |source| AuthError::SecretFile {
            path: path.display().to_string(),
            source,
        };
        match Self::load(path)? {
            Some(secret) => Ok(secret),
            None => {
                let secret = issue_token().token;
                let mut options = std::fs::OpenOptions::new();
                options.write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                let mut file = options.open(path).map_err(io_err)?;
                file.write_all(secret.as_bytes()).map_err(io_err)?;
                Ok(PlatformSecret(secret))
            }
        }
    }

    /// Checks a presented secret in constant time.
    pub fn matches(&self, presented: &str) -> bool {
        constant_time_eq(self.0.as_bytes(), presented.as_bytes())
    }

    /// The secret itself, for components that present it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// A credential for one purpose only (e.g. `xds`: what Envoy presents
    /// to read the routing feed), derived from the secret so that handing
    /// it out does not hand out the secret.
    pub fn derive(&self, purpose: &str) -> String {
        use sha2::{Digest, Sha256};
        let mut hash = Sha256::new();
        hash.update(b"deis-workflow/");
        hash.update(purpose.as_bytes());
        hash.update(b"/");
        hash.update(self.0.as_bytes());
        hex::encode(hash.finalize())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_credentials_differ_by_purpose_and_secret() {
        let a = PlatformSecret::new("a".repeat(40)).unwrap();
        let b = PlatformSecret::new("b".repeat(40)).unwrap();
        assert_eq!(a.derive("xds"), a.derive("xds"));
        assert_ne!(a.derive("xds"), a.derive("other"));
        assert_ne!(a.derive("xds"), b.derive("xds"));
        assert!(!a.derive("xds").contains(a.expose()));
    }

    #[test]
    fn created_once_then_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("platform-secret");
        let first = PlatformSecret::load_or_create(&path).unwrap();
        let second = PlatformSecret::load_or_create(&path).unwrap();
        assert!(first.matches(second.expose()));
        assert!(!first.matches("nope"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn short_secrets_are_refused() {
        assert!(matches!(PlatformSecret::new("short"), Err(AuthError::WeakSecret)));
    }
}
