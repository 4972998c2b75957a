//! SSH public keys as users upload them (`deis keys:add`).

use base64::Engine as _;
use base64::alphabet;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use md5::Md5;
use sha2::{Digest, Sha256};

use crate::{Error, Result};

/// The longest public key line accepted (a 16384-bit RSA key is about 2.8 KiB).
pub const MAX_KEY_BYTES: usize = 16 * 1024;

/// Key types accepted, as `ssh-keygen` writes them.
pub const ALGORITHMS: [&str; 5] = [
    "ssh-rsa",
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
];

/// Base64 that accepts the blob with or without its trailing padding.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A parsed and checked SSH public key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SshPublicKey {
    /// Key type, e.g. `ssh-ed25519`.
    pub algorithm: String,
    /// The comment after the key data, if any.
    pub comment: Option<String>,
    /// MD5 of the key blob as `aa:bb:…` (Deis's fingerprint, used by the builder).
    pub md5_fingerprint: String,
    /// `SHA256:<base64 without padding>`, as `ssh-keygen -l` prints it.
    pub sha256_fingerprint: String,
    /// `"<algo> <base64>"` without the comment, for duplicate detection.
    pub canonical: String,
}

/// Parses one OpenSSH public key line (`<algo> <base64> [comment]`).
pub fn parse_public_key(text: &str) -> Result<SshPublicKey> {
    if text.len() > MAX_KEY_BYTES {
        return Err(Error::invalid(format!(
            "SSH public key is too long; the limit is {MAX_KEY_BYTES} bytes."
        )));
    }
    let text = text.trim();
    if text.chars().any(|c| c.is_control() && c != '\t') {
        return Err(Error::invalid(
            "SSH public key must be a single line without control characters.",
        ));
    }
    let mut fields = text.splitn(2, [' ', '\t']);
    let algorithm = fields.next().unwrap_or_default();
    let rest = fields.next().unwrap_or_default().trim_start_matches([' ', '\t']);
    let mut fields = rest.splitn(2, [' ', '\t']);
    let data = fields.next().unwrap_or_default();
    let comment = fields
        .next()
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_owned);

    if algorithm.is_empty() {
        return Err(Error::invalid("SSH public key is empty."));
    }
    if !ALGORITHMS.contains(&algorithm) {
        return Err(Error::invalid(format!(
            "Unsupported SSH key type {}; use ssh-ed25519, ecdsa-sha2-nistp256/384/521 or ssh-rsa.",
            shorten(algorithm)
        )));
    }
    let blob = LENIENT
        .decode(data)
        .ok()
        .filter(|b| !b.is_empty())
        .ok_or_else(|| Error::invalid("Key contains invalid base64 chars"))?;
    check_blob(algorithm, &blob)?;

    let md5 = Md5::digest(&blob);
    let sha = Sha256::digest(&blob);
    Ok(SshPublicKey {
        algorithm: algorithm.to_owned(),
        comment,
        md5_fingerprint: colon_hex(&md5),
        sha256_fingerprint: format!("SHA256:{}", STANDARD_NO_PAD.encode(sha)),
        canonical: format!("{algorithm} {}", STANDARD.encode(&blob)),
    })
}

/// `aa:bb:cc` lower hex.
fn colon_hex(bytes: &[u8]) -> String {
    let parts: Vec<String> = bytes.iter().map(|b| format!("{b:02x}")).collect();
    parts.join(":")
}

/// Keeps user input quoted in messages short.
fn shorten(s: &str) -> String {
    if s.chars().count() > 40 {
        let head: String = s.chars().take(40).collect();
        format!("{head}…")
    } else {
        s.to_owned()
    }
}

/// Reads SSH wire-format fields (RFC 4251 `string` / `mpint`).
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn string(&mut self) -> Option<&'a [u8]> {
        let (len, rest) = self.buf.split_first_chunk::<4>()?;
        let len = usize::try_from(u32::from_be_bytes(*len)).ok()?;
        if len > rest.len() {
            return None;
        }
        let (s, rest) = rest.split_at(len);
        self.buf = rest;
        Some(s)
    }
}

/// Checks the decoded blob: its embedded type equals the declared one and the
/// key material has the shape that type requires, with nothing left over.
fn check_blob(algorithm: &str, blob: &[u8]) -> Result<()> {
    let malformed = || Error::invalid(format!("The {algorithm} key data is malformed."));
    let mut r = Reader { buf: blob };
    let embedded = r.string().ok_or_else(malformed)?;
    if embedded != algorithm.as_bytes() {
        return Err(Error::invalid(format!(
            "The key data is not a {algorithm} key, although the line says so."
        )));
    }
    match algorithm {
        "ssh-rsa" => {
            let e = r.string().ok_or_else(malformed)?;
            let n = r.string().ok_or_else(malformed)?;
            if e.is_empty() || n.is_empty() {
                return Err(malformed());
            }
            // mpint: a leading zero byte only keeps the number positive.
            let n = match n.split_first() {
                Some((0, rest)) => rest,
                _ => n,
            };
            let bits = n
                .first()
                .map_or(0, |b| (n.len() - 1) * 8 + (8 - b.leading_zeros() as usize));
            if bits < 1024 {
                return Err(Error::invalid("RSA keys must be at least 1024 bits long."));
            }
        }
        "ssh-ed25519" => {
            let key = r.string().ok_or_else(malformed)?;
            if key.len() != 32 {
                return Err(malformed());
            }
        }
        _ => {
            // ecdsa-sha2-<curve>: curve name, then an uncompressed point.
            let curve = algorithm.strip_prefix("ecdsa-sha2-").unwrap_or_default();
            let name = r.string().ok_or_else(malformed)?;
            let point = r.string().ok_or_else(malformed)?;
            let coord = match curve {
                "nistp256" => 32,
                "nistp384" => 48,
                _ => 66,
            };
            if name != curve.as_bytes() || point.len() != 1 + 2 * coord || point.first() != Some(&4) {
                return Err(malformed());
            }
        }
    }
    if !r.buf.is_empty() {
        return Err(malformed());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(r: Result<SshPublicKey>) -> String {
        match r {
            Ok(k) => panic!("expected an error, got {k:?}"),
            Err(e) => e.message,
        }
    }

    fn blob(parts: &[&[u8]]) -> String {
        let mut out = Vec::new();
        for p in parts {
            out.extend_from_slice(&u32::try_from(p.len()).unwrap_or(0).to_be_bytes());
            out.extend_from_slice(p);
        }
        STANDARD.encode(out)
    }

    #[test]
    fn hand_built_ed25519() {
        let key = [7u8; 32];
        let line = format!("ssh-ed25519 {} me@host", blob(&[b"ssh-ed25519", &key]));
        let k = parse_public_key(&line).unwrap();
        assert_eq!(k.algorithm, "ssh-ed25519");
        assert_eq!(k.comment.as_deref(), Some("me@host"));
        assert_eq!(k.md5_fingerprint.len(), 47);
        assert!(k.sha256_fingerprint.starts_with("SHA256:"));
        assert!(!k.sha256_fingerprint.ends_with('='));
        assert!(!k.canonical.contains("me@host"));
    }

    #[test]
    fn rejects_bad_input() {
        let good_blob = blob(&[b"ssh-ed25519", &[1u8; 32]]);
        assert_eq!(
            msg(parse_public_key("ssh-ed25519 not*base64")),
            "Key contains invalid base64 chars"
        );
        assert_eq!(
            msg(parse_public_key("ssh-ed25519")),
            "Key contains invalid base64 chars"
        );
        assert_eq!(msg(parse_public_key("")), "SSH public key is empty.");
        assert_eq!(msg(parse_public_key("   \n")), "SSH public key is empty.");
        assert!(
            msg(parse_public_key(&format!("ssh-dss {good_blob}")))
                .starts_with("Unsupported SSH key type ssh-dss")
        );
        assert!(msg(parse_public_key(&good_blob)).starts_with("Unsupported SSH key type"));
        assert!(
            msg(parse_public_key(&format!(
                "command=\"ls\" ssh-ed25519 {good_blob}"
            )))
            .starts_with("Unsupported SSH key type")
        );
        // Declared type differs from the embedded one.
        assert_eq!(
            msg(parse_public_key(&format!("ssh-rsa {good_blob}"))),
            "The key data is not a ssh-rsa key, although the line says so."
        );
        // Wrong sizes, truncation, trailing bytes.
        for (algo, b) in [
            ("ssh-ed25519", blob(&[b"ssh-ed25519", &[1u8; 31]])),
            ("ssh-ed25519", blob(&[b"ssh-ed25519"])),
            ("ssh-ed25519", blob(&[b"ssh-ed25519", &[1u8; 32], b"x"])),
            (
                "ecdsa-sha2-nistp256",
                blob(&[b"ecdsa-sha2-nistp256", b"nistp384", &[4u8; 65]]),
            ),
            (
                "ecdsa-sha2-nistp256",
                blob(&[b"ecdsa-sha2-nistp256", b"nistp256", &[4u8; 64]]),
            ),
            (
                "ecdsa-sha2-nistp256",
                blob(&[b"ecdsa-sha2-nistp256", b"nistp256", &[3u8; 65]]),
            ),
            ("ssh-rsa", blob(&[b"ssh-rsa", &[1, 0, 1]])),
            ("ssh-rsa", blob(&[b"ssh-rsa", b"", &[0xff; 200]])),
        ] {
            assert_eq!(
                msg(parse_public_key(&format!("{algo} {b}"))),
                format!("The {algo} key data is malformed."),
                "{b}"
            );
        }
        // A length prefix pointing past the end.
        let mut raw = 11u32.to_be_bytes().to_vec();
        raw.extend_from_slice(b"ssh-ed25519");
        raw.extend_from_slice(&u32::MAX.to_be_bytes());
        let line = format!("ssh-ed25519 {}", STANDARD.encode(raw));
        assert!(msg(parse_public_key(&line)).ends_with("malformed."));
        // Small RSA.
        let small = blob(&[b"ssh-rsa", &[1, 0, 1], &[0xff; 64]]);
        assert_eq!(
            msg(parse_public_key(&format!("ssh-rsa {small}"))),
            "RSA keys must be at least 1024 bits long."
        );
        // Control characters and size.
        assert!(
            msg(parse_public_key(&format!("ssh-ed25519 {good_blob} a\u{0}b"))).contains("control characters")
        );
        assert!(
            msg(parse_public_key(&format!(
                "ssh-ed25519 {good_blob}\nssh-ed25519 {good_blob}"
            )))
            .contains("single line")
        );
        let huge = format!("ssh-ed25519 {}", "A".repeat(MAX_KEY_BYTES));
        assert!(msg(parse_public_key(&huge)).contains("too long"));
        // Messages never echo long user input.
        let long_algo = "x".repeat(500);
        assert!(msg(parse_public_key(&long_algo)).len() < 200);
    }
}
