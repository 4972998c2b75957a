//! The Docker token flow ([token authentication]): `GET /v2/token` trades
//! Basic credentials for a short-lived bearer token naming what the caller
//! may do, and every endpoint accepts that token.
//!
//! [token authentication]: https://distribution.github.io/distribution/spec/auth/token/
//!
//! The token is issued and checked by this registry alone, so it is opaque
//! to clients but self-contained: `base64url(claims JSON) "."
//! base64url(HMAC-SHA256(key, claims))`, the claims being the user, the
//! granted access and the expiry. Nothing is stored, so a token stays valid
//! until it expires even if the user's permissions change meanwhile: keep
//! the lifetime short.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::hmac;
use serde::{Deserialize, Serialize};

use crate::auth::{Action, Credentials, Decision, RegistryAuth, Scope};
use crate::error::RegistryError;
use crate::names::RepositoryName;

/// Keys shorter than this are refused (HMAC-SHA256's own output size).
pub(crate) const MIN_KEY_BYTES: usize = 32;

/// Scopes one token request may name: more would only make the registry do
/// unbounded work (each is a [`RegistryAuth`] check) for one request.
const MAX_SCOPES: usize = 32;

/// No token this registry issues is longer (names are at most 255 bytes and
/// scopes at most [`MAX_SCOPES`]); anything longer is not decoded at all.
const MAX_TOKEN_LEN: usize = 32 * 1024;

/// Separates these MACs from anything else the same key might sign.
const CONTEXT: &[u8] = b"deis-registry token v1\n";

/// The token flow's settings.
#[derive(Clone)]
pub struct TokenOptions {
    /// The HMAC-SHA256 key tokens are signed with: at least 32 random bytes
    /// (shorter keys disable the token flow, with an error in the log).
    /// Every registry replica that should accept a token needs the same key.
    pub key: Vec<u8>,
    /// How long a token is valid (`expires_in`). Clients assume at least
    /// 60 s, so shorter lifetimes make them use expired tokens.
    pub lifetime: Duration,
    /// Whether 401 answers challenge with `Bearer` (pointing clients at the
    /// token endpoint) rather than `Basic`. Basic credentials and bearer
    /// tokens are accepted either way.
    pub challenge_bearer: bool,
    /// The token endpoint's URL as clients should reach it (say
    /// `https://registry.example.com/v2/token` behind a TLS proxy). `None`:
    /// built from each request's `Host` header, with `https` when the
    /// request says `X-Forwarded-Proto: https` and `http` otherwise.
    pub realm_url: Option<String>,
}

impl TokenOptions {
    /// Tokens signed with `key`, valid five minutes, with `Bearer`
    /// challenges and the endpoint's URL taken from each request.
    pub fn new(key: impl Into<Vec<u8>>) -> TokenOptions {
        TokenOptions {
            key: key.into(),
            lifetime: Duration::from_secs(300),
            challenge_bearer: true,
            realm_url: None,
        }
    }
}

impl std::fmt::Debug for TokenOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key.
        f.debug_struct("TokenOptions")
            .field("key", &format_args!("<{} bytes>", self.key.len()))
            .field("lifetime", &self.lifetime)
            .field("challenge_bearer", &self.challenge_bearer)
            .field("realm_url", &self.realm_url)
            .finish()
    }
}

/// Why a presented token is not accepted (all answered 401 `UNAUTHORIZED`;
/// the reason is only logged).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum TokenError {
    /// Not of the token's shape, or not decodable.
    #[error("malformed token")]
    Malformed,
    /// The MAC does not match: forged, altered, or signed with another key.
    #[error("token signature does not match")]
    Forged,
    /// Past its expiry.
    #[error("token expired")]
    Expired,
}

/// One resource's granted actions, as the token spec writes them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Access {
    #[serde(rename = "type")]
    pub(crate) kind: String,
    pub(crate) name: String,
    pub(crate) actions: Vec<String>,
}

/// What a token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Claims {
    /// The user it was issued to (empty when anonymous).
    pub(crate) sub: String,
    pub(crate) access: Vec<Access>,
    /// Issued and expires, in seconds since the Unix epoch.
    pub(crate) iat: u64,
    pub(crate) exp: u64,
}

impl Claims {
    /// Whether the token allows `scope`. Any valid token may use the base
    /// endpoint: it was issued only to callers the registry admits.
    pub(crate) fn allows(&self, scope: Scope<'_>) -> bool {
        let (kind, name, action) = match scope {
            Scope::Registry => return true,
            Scope::Catalog => ("registry", "catalog", "*"),
            Scope::Repository { name, action } => ("repository", name, action_name(action)),
        };
        self.access.iter().any(|access| {
            access.kind == kind
                && access.name == name
                && access.actions.iter().any(|granted| granted == action)
        })
    }
}

fn action_name(action: Action) -> &'static str {
    match action {
        Action::Pull => "pull",
        Action::Push => "push",
        Action::Delete => "delete",
    }
}

fn unix_seconds(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |since| since.as_secs())
}

/// Signs and verifies tokens.
pub(crate) struct Tokens {
    key: hmac::Key,
    pub(crate) options: TokenOptions,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens").field("options", &self.options).finish()
    }
}

impl Tokens {
    /// `None` (and an error in the log) when the key is too short to be safe.
    pub(crate) fn new(options: TokenOptions) -> Option<Tokens> {
        if options.key.len() < MIN_KEY_BYTES {
            tracing::error!(
                bytes = options.key.len(),
                "the registry's token key is shorter than {MIN_KEY_BYTES} bytes: the token flow is off"
            );
            return None;
        }
        Some(Tokens {
            key: hmac::Key::new(hmac::HMAC_SHA256, &options.key),
            options,
        })
    }

    fn mac(&self, payload: &[u8]) -> hmac::Tag {
        let mut context = hmac::Context::with_key(&self.key);
        context.update(CONTEXT);
        context.update(payload);
        context.sign()
    }

    pub(crate) fn sign(&self, claims: &Claims) -> String {
        // Serialising this plain struct cannot fail.
        let payload = serde_json::to_vec(claims).unwrap_or_default();
        let tag = self.mac(&payload);
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(&payload),
            URL_SAFE_NO_PAD.encode(tag.as_ref())
        )
    }

    /// The claims of a token this registry signed that is still valid at
    /// `now`. The MAC is checked (in constant time) before anything in the
    /// payload is believed.
    pub(crate) fn verify(&self, token: &str, now: SystemTime) -> Result<Claims, TokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Malformed);
        }
        let (payload, tag) = token.split_once('.').ok_or(TokenError::Malformed)?;
        let payload = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| TokenError::Malformed)?;
        let tag = URL_SAFE_NO_PAD.decode(tag).map_err(|_| TokenError::Malformed)?;
        let mut context = CONTEXT.to_vec();
        context.extend_from_slice(&payload);
        hmac::verify(&self.key, &context, &tag).map_err(|_| TokenError::Forged)?;
        let claims: Claims = serde_json::from_slice(&payload).map_err(|_| TokenError::Malformed)?;
        if unix_seconds(now) >= claims.exp {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }
}

/// A resource a token request asks about.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Resource {
    Repository(RepositoryName),
    Catalog,
}

/// Parses the requested scopes (`repository:<name>:<actions>`,
/// `registry:catalog:*`), merging repeats. Scopes of other types, invalid
/// names and unknown actions are left out: they are simply not granted.
fn requested(scopes: &[&str]) -> Result<BTreeMap<Resource, Vec<Action>>, RegistryError> {
    if scopes.len() > MAX_SCOPES {
        return Err(RegistryError::Unsupported(format!(
            "a token request may name at most {MAX_SCOPES} scopes"
        )));
    }
    let mut wanted: BTreeMap<Resource, Vec<Action>> = BTreeMap::new();
    for scope in scopes {
        let Some((kind, rest)) = scope.split_once(':') else {
            continue;
        };
        let Some((name, actions)) = rest.rsplit_once(':') else {
            continue;
        };
        let resource = match (kind, name) {
            ("repository", name) => match RepositoryName::parse(name) {
                Ok(name) => Resource::Repository(name),
                Err(_) => continue,
            },
            ("registry", "catalog") => Resource::Catalog,
            _ => continue,
        };
        let entry = wanted.entry(resource.clone()).or_default();
        for action in actions.split(',') {
            let named: &[Action] = match (action.trim(), &resource) {
                // The catalog's one action; `Pull` stands for it here.
                ("*", Resource::Catalog) => &[Action::Pull],
                (_, Resource::Catalog) => &[],
                ("pull", _) => &[Action::Pull],
                ("push", _) => &[Action::Push],
                ("delete", _) => &[Action::Delete],
                ("*", _) => &[Action::Pull, Action::Push, Action::Delete],
                _ => &[],
            };
            for action in named {
                if !entry.contains(action) {
                    entry.push(*action);
                }
            }
        }
    }
    Ok(wanted)
}

/// Decides what a token request gets: the caller must be admitted to the
/// registry (`Scope::Registry`), then each requested action is granted when
/// `auth` allows it and silently left out when not. Refused only when the
/// credentials are missing (and anonymous callers are not admitted) or wrong.
pub(crate) async fn grant(
    auth: &dyn RegistryAuth,
    credentials: Option<&Credentials>,
    scopes: &[&str],
    now: SystemTime,
    lifetime: Duration,
) -> Result<Claims, RegistryError> {
    let subject = match credentials {
        None => String::new(),
        Some(Credentials::Basic { username, .. }) => username.clone(),
        // A token is not traded for another token.
        Some(Credentials::Bearer(_)) => return Err(RegistryError::Unauthorized),
    };
    match auth.check(credentials, Scope::Registry).await {
        Decision::Allow => {}
        Decision::Unauthenticated => return Err(RegistryError::Unauthorized),
        Decision::Deny => return Err(RegistryError::Denied),
    }
    let mut access = Vec::new();
    for (resource, actions) in requested(scopes)? {
        let mut granted = Vec::new();
        for action in actions {
            let scope = match &resource {
                Resource::Repository(name) => Scope::Repository {
                    name: name.as_str(),
                    action,
                },
                Resource::Catalog => Scope::Catalog,
            };
            match auth.check(credentials, scope).await {
                Decision::Allow => granted.push(match resource {
                    Resource::Repository(_) => action_name(action),
                    Resource::Catalog => "*",
                }),
                // Given credentials that are wrong for one scope are wrong.
                Decision::Unauthenticated if credentials.is_some() => {
                    return Err(RegistryError::Unauthorized);
                }
                Decision::Unauthenticated | Decision::Deny => {}
            }
        }
        if granted.is_empty() {
            continue;
        }
        let (kind, name) = match resource {
            Resource::Repository(name) => ("repository", name.to_string()),
            Resource::Catalog => ("registry", "catalog".to_owned()),
        };
        access.push(Access {
            kind: kind.to_owned(),
            name,
            actions: granted.into_iter().map(str::to_owned).collect(),
        });
    }
    let iat = unix_seconds(now);
    Ok(Claims {
        sub: subject,
        access,
        iat,
        exp: iat.saturating_add(lifetime.as_secs()),
    })
}

/// The scope a `Bearer` challenge names for what was refused, as clients
/// pass it back to the token endpoint.
pub(crate) fn challenge_scope(scope: Scope<'_>) -> Option<String> {
    match scope {
        Scope::Registry => None,
        Scope::Catalog => Some("registry:catalog:*".to_owned()),
        Scope::Repository { name, action } => Some(match action {
            Action::Pull => format!("repository:{name}:pull"),
            // Pushing clients also read (blob existence checks, mounts).
            Action::Push => format!("repository:{name}:pull,push"),
            Action::Delete => format!("repository:{name}:delete"),
        }),
    }
}

/// `issued_at` of a token response: RFC 3339 in UTC.
pub(crate) fn rfc3339(time: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(time).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{Grant, StaticAuth};

    fn tokens(key: &[u8]) -> Tokens {
        Tokens::new(TokenOptions::new(key.to_vec())).unwrap()
    }

    fn claims(exp: u64) -> Claims {
        Claims {
            sub: "user".into(),
            access: vec![Access {
                kind: "repository".into(),
                name: "app".into(),
                actions: vec!["pull".into()],
            }],
            iat: exp - 300,
            exp,
        }
    }

    fn at(seconds: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(seconds)
    }

    #[test]
    fn signed_tokens_verify_until_they_expire() {
        let tokens = tokens(&[7; 32]);
        let token = tokens.sign(&claims(1_000_000));
        assert_eq!(tokens.verify(&token, at(999_999)), Ok(claims(1_000_000)));
        assert_eq!(tokens.verify(&token, at(1_000_000)), Err(TokenError::Expired));
        assert_eq!(tokens.verify(&token, at(2_000_000)), Err(TokenError::Expired));
    }

    #[test]
    fn altered_or_foreign_tokens_are_refused() {
        let tokens = tokens(&[7; 32]);
        let now = at(999_000);
        let token = tokens.sign(&claims(1_000_000));
        let (payload, tag) = token.split_once('.').unwrap();

        // Grant more (push) and keep the MAC: the MAC no longer matches.
        let mut wider = claims(1_000_000);
        wider.access[0].actions.push("push".into());
        let wider = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&wider).unwrap());
        assert_eq!(
            tokens.verify(&format!("{wider}.{tag}"), now),
            Err(TokenError::Forged)
        );
        // Extend the expiry.
        let later = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims(9_000_000)).unwrap());
        assert_eq!(
            tokens.verify(&format!("{later}.{tag}"), now),
            Err(TokenError::Forged)
        );
        // Flip one bit of the MAC.
        let mut mac = URL_SAFE_NO_PAD.decode(tag).unwrap();
        mac[0] ^= 1;
        let flipped = format!("{payload}.{}", URL_SAFE_NO_PAD.encode(&mac));
        assert_eq!(tokens.verify(&flipped, now), Err(TokenError::Forged));
        // Signed with another key.
        let other = super::Tokens::new(TokenOptions::new(vec![8; 32])).unwrap();
        assert_eq!(
            tokens.verify(&other.sign(&claims(1_000_000)), now),
            Err(TokenError::Forged)
        );
        // Not a token at all.
        for junk in [
            "",
            ".",
            "abc",
            "a.b.c",
            "!!!.???",
            &format!("{payload}."),
            &"a".repeat(MAX_TOKEN_LEN + 1),
        ] {
            assert!(tokens.verify(junk, now).is_err(), "{junk:?}");
        }
        // A valid MAC over something that is not claims.
        let payload = b"not json";
        let mut signed = CONTEXT.to_vec();
        signed.extend_from_slice(payload);
        let mac = hmac::sign(&tokens.key, &signed);
        let odd = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(payload),
            URL_SAFE_NO_PAD.encode(mac.as_ref())
        );
        assert_eq!(tokens.verify(&odd, now), Err(TokenError::Malformed));
    }

    #[test]
    fn short_keys_disable_tokens_and_are_never_printed() {
        assert!(Tokens::new(TokenOptions::new(vec![1; MIN_KEY_BYTES - 1])).is_none());
        let printed = format!(
            "{:?}",
            TokenOptions::new(b"a secret key of many bytes, over 32".to_vec())
        );
        assert!(!printed.contains("secret"), "{printed}");
    }

    #[test]
    fn claims_allow_exactly_what_they_name() {
        let claims = Claims {
            sub: "u".into(),
            access: vec![
                Access {
                    kind: "repository".into(),
                    name: "app".into(),
                    actions: vec!["pull".into(), "push".into()],
                },
                Access {
                    kind: "registry".into(),
                    name: "catalog".into(),
                    actions: vec!["*".into()],
                },
            ],
            iat: 0,
            exp: 1,
        };
        let repo = |name, action| Scope::Repository { name, action };
        assert!(claims.allows(Scope::Registry));
        assert!(claims.allows(Scope::Catalog));
        assert!(claims.allows(repo("app", Action::Pull)));
        assert!(claims.allows(repo("app", Action::Push)));
        assert!(!claims.allows(repo("app", Action::Delete)));
        assert!(!claims.allows(repo("app/web", Action::Pull)));
        assert!(!claims.allows(repo("other", Action::Pull)));
        let none = Claims {
            access: Vec::new(),
            ..claims
        };
        assert!(!none.allows(Scope::Catalog));
    }

    #[tokio::test]
    async fn grants_are_the_intersection_of_wanted_and_allowed() {
        let auth = StaticAuth::new()
            .with_user("dev", "pw", Grant::ReadWriteOnly(vec!["mine".into()]))
            .with_user("admin", "pw", Grant::ReadWrite);
        let basic = |user: &str, password: &str| Credentials::Basic {
            username: user.into(),
            password: password.into(),
        };
        let now = at(1_000);
        let life = Duration::from_secs(60);
        let dev = basic("dev", "pw");
        let claims = grant(
            &auth,
            Some(&dev),
            &[
                "repository:mine:pull,push",
                "repository:theirs:pull,push",
                "repository:mine:delete",
                "registry:catalog:*",
                "repository:Bad Name:pull",
                "repository(plugin):x:pull",
                "nonsense",
            ],
            now,
            life,
        )
        .await
        .unwrap();
        assert_eq!(claims.sub, "dev");
        assert_eq!((claims.iat, claims.exp), (1_000, 1_060));
        let summary: Vec<(String, String, Vec<String>)> = claims
            .access
            .iter()
            .map(|a| (a.kind.clone(), a.name.clone(), a.actions.clone()))
            .collect();
        let entry = |kind: &str, name: &str, actions: &[&str]| {
            (
                kind.to_owned(),
                name.to_owned(),
                actions.iter().map(|a| (*a).to_owned()).collect::<Vec<_>>(),
            )
        };
        // StaticAuth: any user pulls everything and lists the catalog; dev
        // pushes (and deletes) only `mine`.
        assert_eq!(
            summary,
            [
                entry("repository", "mine", &["pull", "push", "delete"]),
                entry("repository", "theirs", &["pull"]),
                entry("registry", "catalog", &["*"]),
            ]
        );

        let all = grant(&auth, Some(&basic("admin", "pw")), &["repository:x:*"], now, life)
            .await
            .unwrap();
        assert_eq!(all.access[0].actions, ["pull", "push", "delete"]);

        // Wrong credentials are refused even for nothing in particular.
        assert!(matches!(
            grant(&auth, Some(&basic("dev", "no")), &[], now, life).await,
            Err(RegistryError::Unauthorized)
        ));
        assert!(matches!(
            grant(&auth, Some(&Credentials::Bearer("t".into())), &[], now, life).await,
            Err(RegistryError::Unauthorized)
        ));
        // Anonymous callers get only what anonymous callers may do.
        assert!(matches!(
            grant(&auth, None, &["repository:mine:pull"], now, life).await,
            Err(RegistryError::Unauthorized)
        ));
        let public = auth.clone().with_anonymous_pull();
        let anonymous = grant(&public, None, &["repository:mine:pull,push"], now, life)
            .await
            .unwrap();
        assert_eq!(anonymous.sub, "");
        assert_eq!(anonymous.access[0].actions, ["pull"]);

        let many: Vec<String> = (0..=MAX_SCOPES)
            .map(|n| format!("repository:r{n}:pull"))
            .collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert!(grant(&auth, Some(&dev), &many, now, life).await.is_err());
    }

    #[test]
    fn challenges_name_what_was_refused() {
        let repo = |action| Scope::Repository { name: "a/b", action };
        assert_eq!(challenge_scope(Scope::Registry), None);
        assert_eq!(challenge_scope(Scope::Catalog).unwrap(), "registry:catalog:*");
        assert_eq!(
            challenge_scope(repo(Action::Pull)).unwrap(),
            "repository:a/b:pull"
        );
        assert_eq!(
            challenge_scope(repo(Action::Push)).unwrap(),
            "repository:a/b:pull,push"
        );
        assert_eq!(rfc3339(at(86_400 + 61)), "1970-01-02T00:01:01Z");
    }
}
