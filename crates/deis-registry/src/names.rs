//! The names of the distribution spec: repository names, tags, digests and
//! manifest references, parsed once at the edge so everything behind works
//! with values known to be valid (and safe as object-store key components).

use std::fmt;

use crate::error::RegistryError;

/// The longest repository name accepted (Distribution's limit, which the
/// spec recommends clients respect).
const MAX_NAME_LEN: usize = 255;

/// The longest tag the spec's grammar allows.
const MAX_TAG_LEN: usize = 128;

/// A repository name: `/`-separated components matching
/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RepositoryName(String);

impl RepositoryName {
    /// Validates a repository name.
    pub fn parse(name: &str) -> Result<RepositoryName, RegistryError> {
        if name.is_empty() || name.len() > MAX_NAME_LEN || !name.split('/').all(valid_component) {
            return Err(RegistryError::NameInvalid(
                name.chars().take(MAX_NAME_LEN).collect(),
            ));
        }
        Ok(RepositoryName(name.to_owned()))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RepositoryName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One path component: alphanumeric runs joined by `.`, `_`, `__` or any
/// number of `-`.
fn valid_component(component: &str) -> bool {
    let alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    let bytes = component.as_bytes();
    let (Some(&first), Some(&last)) = (bytes.first(), bytes.last()) else {
        return false;
    };
    if !alnum(first) || !alnum(last) {
        return false;
    }
    // Between two alphanumeric runs: a separator of one allowed shape.
    let mut separator = String::new();
    for &c in bytes {
        if alnum(c) {
            let allowed =
                matches!(separator.as_str(), "" | "." | "_" | "__") || separator.bytes().all(|s| s == b'-');
            if !allowed {
                return false;
            }
            separator.clear();
        } else if matches!(c, b'.' | b'_' | b'-') {
            separator.push(char::from(c));
        } else {
            return false;
        }
    }
    true
}

/// Validates a tag: `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
pub(crate) fn validate_tag(tag: &str) -> Result<(), RegistryError> {
    let mut chars = tag.bytes();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_');
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'));
    if first_ok && rest_ok && tag.len() <= MAX_TAG_LEN {
        Ok(())
    } else {
        Err(RegistryError::ManifestInvalid(format!(
            "invalid tag {:?}",
            tag.chars().take(MAX_TAG_LEN).collect::<String>()
        )))
    }
}

/// A `sha256:<64 lowercase hex>` digest, the only algorithm this registry
/// stores.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Digest {
    hex: String,
}

impl Digest {
    /// Parses a digest; a well-formed digest of another algorithm is
    /// `UNSUPPORTED`, anything else `DIGEST_INVALID`.
    pub fn parse(text: &str) -> Result<Digest, RegistryError> {
        let shown = || text.chars().take(200).collect::<String>();
        let Some((algorithm, encoded)) = text.split_once(':') else {
            return Err(RegistryError::DigestInvalid(format!(
                "{:?} is not a digest",
                shown()
            )));
        };
        if algorithm == "sha256" {
            let lower_hex = |c: u8| c.is_ascii_digit() || (b'a'..=b'f').contains(&c);
            if encoded.len() == 64 && encoded.bytes().all(lower_hex) {
                return Ok(Digest {
                    hex: encoded.to_owned(),
                });
            }
            return Err(RegistryError::DigestInvalid(format!(
                "{:?} is not a sha256 digest (64 lowercase hex digits)",
                shown()
            )));
        }
        // The grammar of the spec: algorithm components joined by [+._-],
        // then an encoded part of [a-zA-Z0-9=_-].
        let algorithm_ok = !algorithm.is_empty()
            && algorithm.split(['+', '.', '_', '-']).all(|part| {
                !part.is_empty() && part.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            });
        let encoded_ok = !encoded.is_empty()
            && encoded
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'=' | b'_' | b'-'));
        if algorithm_ok && encoded_ok {
            Err(RegistryError::Unsupported(format!(
                "digest algorithm {algorithm:?} is not supported; use sha256"
            )))
        } else {
            Err(RegistryError::DigestInvalid(format!(
                "{:?} is not a digest",
                shown()
            )))
        }
    }

    /// The digest of some bytes.
    pub fn of(bytes: &[u8]) -> Digest {
        let mut hasher = DigestHasher::new();
        hasher.update(bytes);
        hasher.finish()
    }

    /// The 64 hex digits.
    pub fn hex(&self) -> &str {
        &self.hex
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex)
    }
}

/// SHA-256 computed piece by piece, giving a [`Digest`]. ring's
/// implementation: it is assembly even in unoptimised builds, where `sha2`
/// manages some 20 MB/s (too slow for tests that push large blobs).
#[derive(Clone)]
pub struct DigestHasher(ring::digest::Context);

impl DigestHasher {
    /// An empty hash.
    pub fn new() -> DigestHasher {
        DigestHasher(ring::digest::Context::new(&ring::digest::SHA256))
    }

    /// Adds bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    /// The digest of everything added.
    pub fn finish(self) -> Digest {
        Digest {
            hex: hex::encode(self.0.finish()),
        }
    }
}

impl Default for DigestHasher {
    fn default() -> DigestHasher {
        DigestHasher::new()
    }
}

impl fmt::Debug for DigestHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DigestHasher(sha256)")
    }
}

/// What a manifest URL names: a tag or a digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reference {
    Tag(String),
    Digest(Digest),
}

impl Reference {
    /// A reference with a `:` is a digest (tags cannot contain one).
    pub(crate) fn parse(text: &str) -> Result<Reference, RegistryError> {
        if text.contains(':') {
            Ok(Reference::Digest(Digest::parse(text)?))
        } else {
            validate_tag(text)?;
            Ok(Reference::Tag(text.to_owned()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_names_follow_the_spec_grammar() {
        for good in [
            "a",
            "myapp",
            "library/ubuntu",
            "a/b/c",
            "my-app",
            "my--app",
            "my.app",
            "my_app",
            "my__app",
            "0",
        ] {
            assert!(RepositoryName::parse(good).is_ok(), "{good}");
        }
        let long = "a".repeat(256);
        for bad in [
            "",
            "A",
            "a/",
            "/a",
            "a//b",
            "-a",
            "a-",
            "a.",
            "a...b",
            "a___b",
            "a._b",
            "a b",
            "a:b",
            "..",
            "_a",
            long.as_str(),
        ] {
            assert!(
                matches!(RepositoryName::parse(bad), Err(RegistryError::NameInvalid(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn tags_follow_the_spec_grammar() {
        let (longest, too_long) = ("a".repeat(128), "a".repeat(129));
        for good in ["latest", "v1.0", "_x", "A-b_c.d", longest.as_str()] {
            assert!(validate_tag(good).is_ok(), "{good}");
        }
        for bad in ["", ".a", "-a", "a/b", "a:b", too_long.as_str()] {
            assert!(validate_tag(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn digests_are_sha256_only() {
        let hex = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let digest = Digest::parse(&format!("sha256:{hex}")).unwrap();
        assert_eq!(digest, Digest::of(b""));
        assert_eq!(digest.to_string(), format!("sha256:{hex}"));
        assert!(matches!(
            Digest::parse(&format!("sha512:{hex}{hex}")),
            Err(RegistryError::Unsupported(_))
        ));
        let upper = format!("sha256:{}", hex.to_uppercase());
        for bad in [
            "sha256:abc",
            "sha256:",
            upper.as_str(),
            "nodigest",
            ":x",
            "sha256",
        ] {
            assert!(
                matches!(Digest::parse(bad), Err(RegistryError::DigestInvalid(_))),
                "{bad}"
            );
        }
        assert!(matches!(Reference::parse("v1"), Ok(Reference::Tag(_))));
        assert!(matches!(
            Reference::parse(&format!("sha256:{hex}")),
            Ok(Reference::Digest(_))
        ));
    }
}
