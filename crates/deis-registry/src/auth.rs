//! Who may pull and push. The registry only parses the `Authorization`
//! header and asks a [`RegistryAuth`]; the platform implements that trait
//! (user tokens, per-app write permission, the builder's and runtime's
//! internal credentials) without the registry depending on the controller.

use std::collections::HashMap;

use async_trait::async_trait;
use base64::Engine as _;
use subtle::ConstantTimeEq;

/// Credentials from an `Authorization` header.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    /// `Basic base64(username:password)`; the password may be a token.
    Basic {
        /// The user name.
        username: String,
        /// The password or token.
        password: String,
    },
    /// `Bearer <token>`. With [`RegistryOptions::token`](crate::RegistryOptions::token)
    /// set, the registry checks these itself (they are its own tokens) and
    /// never asks the [`RegistryAuth`]; otherwise the `RegistryAuth` judges.
    Bearer(String),
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print secrets.
        match self {
            Credentials::Basic { username, .. } => f
                .debug_struct("Basic")
                .field("username", username)
                .finish_non_exhaustive(),
            Credentials::Bearer(_) => f.write_str("Bearer(..)"),
        }
    }
}

/// The header could not be understood.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed Authorization header")]
pub struct MalformedCredentials;

impl Credentials {
    /// Parses an `Authorization` header value.
    pub fn parse(header: &[u8]) -> Result<Credentials, MalformedCredentials> {
        let text = std::str::from_utf8(header).map_err(|_| MalformedCredentials)?;
        let (scheme, value) = text.trim().split_once(' ').ok_or(MalformedCredentials)?;
        let value = value.trim();
        if scheme.eq_ignore_ascii_case("basic") {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(value)
                .map_err(|_| MalformedCredentials)?;
            let decoded = String::from_utf8(decoded).map_err(|_| MalformedCredentials)?;
            let (username, password) = decoded.split_once(':').ok_or(MalformedCredentials)?;
            Ok(Credentials::Basic {
                username: username.to_owned(),
                password: password.to_owned(),
            })
        } else if scheme.eq_ignore_ascii_case("bearer") && !value.is_empty() {
            Ok(Credentials::Bearer(value.to_owned()))
        } else {
            Err(MalformedCredentials)
        }
    }
}

/// What is done to a repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Read manifests, blobs, tags and referrers.
    Pull,
    /// Upload blobs and manifests (and mount blobs into the repository).
    Push,
    /// Delete manifests, tags and blob links.
    Delete,
}

/// What a request touches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope<'a> {
    /// `GET /v2/`: whether the caller may use the registry at all (clients
    /// call it first to learn whether and how to authenticate).
    Registry,
    /// `GET /v2/_catalog`: the list of every repository.
    Catalog,
    /// An action on one repository (a valid repository name).
    Repository {
        /// The repository name.
        name: &'a str,
        /// What is done to it.
        action: Action,
    },
}

/// The outcome of an access check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Go ahead.
    Allow,
    /// No or wrong credentials: 401 `UNAUTHORIZED` with a `WWW-Authenticate`
    /// challenge.
    Unauthenticated,
    /// A known caller without this permission: 403 `DENIED`.
    Deny,
}

/// Decides every request. Implementations must be cheap or cache: every
/// request (each chunk of an upload, each blob of a pull) asks, unless it
/// carries one of the registry's own bearer tokens; with the token flow,
/// `GET /v2/token` asks once for `Scope::Registry` and once per requested
/// action, so the answer for `None` credentials decides what anonymous
/// callers get.
#[async_trait]
pub trait RegistryAuth: Send + Sync + 'static {
    /// Whether `credentials` (`None` when the request had none) allow `scope`.
    async fn check(&self, credentials: Option<&Credentials>, scope: Scope<'_>) -> Decision;
}

/// What a [`StaticAuth`] user may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grant {
    /// Pull any repository.
    ReadOnly,
    /// Pull and push any repository.
    ReadWrite,
    /// Pull any repository; push only these.
    ReadWriteOnly(Vec<String>),
}

/// Fixed users and passwords (tests, and small set-ups): each user pulls
/// everything and pushes what its [`Grant`] allows; anonymous callers pull
/// only when [`StaticAuth::with_anonymous_pull`] was set.
#[derive(Debug, Clone, Default)]
pub struct StaticAuth {
    users: HashMap<String, (String, Grant)>,
    anonymous_pull: bool,
}

impl StaticAuth {
    /// No users, no anonymous access.
    pub fn new() -> StaticAuth {
        StaticAuth::default()
    }

    /// Adds (or replaces) a user.
    pub fn with_user(mut self, username: &str, password: &str, grant: Grant) -> StaticAuth {
        self.users
            .insert(username.to_owned(), (password.to_owned(), grant));
        self
    }

    /// Lets callers without credentials pull (and list the catalog).
    pub fn with_anonymous_pull(mut self) -> StaticAuth {
        self.anonymous_pull = true;
        self
    }

    fn grant_of(&self, credentials: &Credentials) -> Option<&Grant> {
        let Credentials::Basic { username, password } = credentials else {
            return None;
        };
        let (expected, grant) = self.users.get(username)?;
        bool::from(expected.as_bytes().ct_eq(password.as_bytes())).then_some(grant)
    }
}

#[async_trait]
impl RegistryAuth for StaticAuth {
    async fn check(&self, credentials: Option<&Credentials>, scope: Scope<'_>) -> Decision {
        let writes = matches!(
            scope,
            Scope::Repository {
                action: Action::Push | Action::Delete,
                ..
            }
        );
        let Some(credentials) = credentials else {
            return if self.anonymous_pull && !writes {
                Decision::Allow
            } else {
                Decision::Unauthenticated
            };
        };
        let Some(grant) = self.grant_of(credentials) else {
            return Decision::Unauthenticated;
        };
        let allowed = match (scope, grant) {
            (_, Grant::ReadWrite) => true,
            (Scope::Repository { name, .. }, Grant::ReadWriteOnly(repositories)) if writes => {
                repositories.iter().any(|repository| repository == name)
            }
            _ => !writes,
        };
        if allowed { Decision::Allow } else { Decision::Deny }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(user: &str, password: &str) -> Credentials {
        let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        Credentials::parse(format!("Basic {encoded}").as_bytes()).unwrap()
    }

    #[test]
    fn headers_parse_or_are_refused() {
        assert_eq!(
            basic("u", "p:q"),
            Credentials::Basic {
                username: "u".into(),
                password: "p:q".into()
            }
        );
        assert_eq!(
            Credentials::parse(b"Bearer abc").unwrap(),
            Credentials::Bearer("abc".into())
        );
        for bad in [
            &b"Basic !!!"[..],
            b"Basic",
            b"Digest x",
            b"Basic dXNlcg==",
            b"\xff\xfe",
        ] {
            assert_eq!(Credentials::parse(bad), Err(MalformedCredentials), "{bad:?}");
        }
        assert!(!format!("{:?}", basic("u", "secret")).contains("secret"));
    }

    #[tokio::test]
    async fn static_users_get_what_they_were_granted() {
        let auth = StaticAuth::new()
            .with_user("admin", "pw", Grant::ReadWrite)
            .with_user("reader", "pw", Grant::ReadOnly)
            .with_user("dev", "pw", Grant::ReadWriteOnly(vec!["mine".into()]));
        let repo = |name, action| Scope::Repository { name, action };
        let check = |credentials: Option<Credentials>, scope| {
            let auth = auth.clone();
            async move { auth.check(credentials.as_ref(), scope).await }
        };
        assert_eq!(check(None, Scope::Registry).await, Decision::Unauthenticated);
        assert_eq!(
            check(Some(basic("admin", "no")), Scope::Registry).await,
            Decision::Unauthenticated
        );
        assert_eq!(
            check(Some(basic("admin", "pw")), repo("x", Action::Delete)).await,
            Decision::Allow
        );
        assert_eq!(
            check(Some(basic("reader", "pw")), repo("x", Action::Pull)).await,
            Decision::Allow
        );
        assert_eq!(
            check(Some(basic("reader", "pw")), repo("x", Action::Push)).await,
            Decision::Deny
        );
        assert_eq!(
            check(Some(basic("dev", "pw")), repo("mine", Action::Push)).await,
            Decision::Allow
        );
        assert_eq!(
            check(Some(basic("dev", "pw")), repo("other", Action::Push)).await,
            Decision::Deny
        );
        assert_eq!(
            check(Some(Credentials::Bearer("t".into())), Scope::Catalog).await,
            Decision::Unauthenticated
        );

        let anonymous = StaticAuth::new().with_anonymous_pull();
        assert_eq!(
            anonymous.check(None, repo("x", Action::Pull)).await,
            Decision::Allow
        );
        assert_eq!(
            anonymous.check(None, repo("x", Action::Push)).await,
            Decision::Unauthenticated
        );
    }
}
