//! TLS certificates and private keys uploaded with `deis certs:add`.
//!
//! Only parsing, description and the check that a key belongs to its
//! certificate happen here; nothing is verified against a trust store, and
//! expired certificates are accepted (as in Deis).

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use x509_parser::der_parser::asn1_rs::Tag;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, SubjectPublicKeyInfo, X509Certificate, X509Name};

use crate::{Error, Result};

/// The largest PEM text accepted for a certificate chain or a key.
pub const MAX_PEM_BYTES: usize = 1024 * 1024;

/// What the API shows about a certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertificateInfo {
    /// The subject's CN, or empty when there is none.
    pub common_name: String,
    /// DNS names from the subjectAltName extension, in certificate order.
    pub san: Vec<String>,
    /// SHA-256 of the DER encoding, `AB:CD:…` upper hex.
    pub fingerprint: String,
    /// notAfter.
    pub expires: DateTime<Utc>,
    /// notBefore.
    pub starts: DateTime<Utc>,
    /// The issuer as `/C=US/ST=CA/…/CN=x`.
    pub issuer: String,
    /// The subject as `/C=US/ST=CA/…/CN=x`.
    pub subject: String,
}

fn certificate_error(reason: &str) -> Error {
    Error::invalid(format!("Could not load certificate: {reason}"))
}

/// Calls `with` on the first certificate of a PEM chain, parsed, and its DER.
fn with_first_certificate<T>(
    pem: &str,
    with: impl FnOnce(&X509Certificate<'_>, &[u8]) -> Result<T>,
) -> Result<T> {
    let (_, der) = first_block(pem, &["CERTIFICATE"]).map_err(|r| certificate_error(&r))?;
    // The parser's error is a nom/DER debug dump; a plain reason reads better.
    let (_, cert) = X509Certificate::from_der(&der)
        .map_err(|_| certificate_error("the data is not a valid DER-encoded X.509 certificate"))?;
    with(&cert, &der)
}

/// Parses the first certificate of a PEM chain and describes it.
pub fn parse_certificate(pem: &str) -> Result<CertificateInfo> {
    with_first_certificate(pem, describe_certificate)
}

fn describe_certificate(cert: &X509Certificate<'_>, der: &[u8]) -> Result<CertificateInfo> {
    let subject = cert.subject();
    let common_name = subject
        .iter_common_name()
        .next()
        .map(|a| attr_string(a.attr_value().header.tag(), a.attr_value().data))
        .unwrap_or_default();
    let mut san = Vec::new();
    match cert.subject_alternative_name() {
        Ok(Some(ext)) => {
            for name in &ext.value.general_names {
                if let GeneralName::DNSName(d) = name {
                    san.push((*d).to_owned());
                }
            }
        }
        Ok(None) => {}
        Err(e) => {
            return Err(certificate_error(&format!(
                "invalid subjectAltName extension ({e})"
            )));
        }
    }
    let time = |t: i64| {
        DateTime::<Utc>::from_timestamp(t, 0)
            .ok_or_else(|| certificate_error("the validity dates are out of range"))
    };
    Ok(CertificateInfo {
        common_name,
        san,
        fingerprint: colon_hex_upper(&Sha256::digest(der)),
        expires: time(cert.validity().not_after.timestamp())?,
        starts: time(cert.validity().not_before.timestamp())?,
        issuer: slash_name(cert.issuer()),
        subject: slash_name(subject),
    })
}

/// Checks that `pem` holds a usable unencrypted private key: PKCS#8
/// (`PRIVATE KEY`), PKCS#1 RSA (`RSA PRIVATE KEY`) or SEC1 EC (`EC PRIVATE KEY`).
///
/// Messages never include key material.
pub fn parse_private_key(pem: &str) -> Result<()> {
    load_private_key(pem).map(|_| ())
}

/// Checks that the private key in `key_pem` belongs to the first
/// certificate of `certificate_pem`: the public key the key implies is the
/// certificate's subject public key (same algorithm, same curve, same
/// value). A TLS server cannot serve a certificate with any other key.
///
/// Both are parsed as [`parse_certificate`] and [`parse_private_key`] do,
/// with the same errors. Messages never include key material.
pub fn check_key_pair(certificate_pem: &str, key_pem: &str) -> Result<()> {
    let key = load_private_key(key_pem)?;
    with_first_certificate(certificate_pem, |cert, _| {
        if key.matches(cert.public_key()) {
            Ok(())
        } else {
            Err(Error::invalid(
                "Could not load private key: the key does not match the certificate's public key",
            ))
        }
    })
}

// Algorithm and curve OIDs.
const RSA_ENCRYPTION: &str = "1.2.840.113549.1.1.1";
const RSASSA_PSS: &str = "1.2.840.113549.1.1.10";
const EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
const ED25519: &str = "1.3.101.112";
const ED448: &str = "1.3.101.113";
const P256: &str = "1.2.840.10045.3.1.7";
const P384: &str = "1.3.132.0.34";

/// What a private key tells about its public key.
enum PrivateKey {
    /// The public modulus and exponent, big-endian without leading zeros.
    Rsa { modulus: Vec<u8>, exponent: Vec<u8> },
    /// The curve (when the key names it), the private scalar, and the
    /// public point when the key carries it.
    Ec {
        curve: Option<String>,
        scalar: Vec<u8>,
        public: Option<Vec<u8>>,
    },
    /// Ed25519 or Ed448 (`oid`): the seed, and the public key when the key
    /// carries it (PKCS#8 v2).
    Eddsa {
        oid: &'static str,
        seed: Vec<u8>,
        public: Option<Vec<u8>>,
    },
}

impl PrivateKey {
    /// Whether this key's public half is `spki`.
    fn matches(&self, spki: &SubjectPublicKeyInfo<'_>) -> bool {
        let algorithm = spki.algorithm.algorithm.to_id_string();
        let public: &[u8] = &spki.subject_public_key.data;
        match self {
            Self::Rsa { modulus, exponent } => {
                (algorithm == RSA_ENCRYPTION || algorithm == RSASSA_PSS)
                    && pkcs1::RsaPublicKey::try_from(public).is_ok_and(|p| {
                        p.modulus.as_bytes() == modulus.as_slice()
                            && p.public_exponent.as_bytes() == exponent.as_slice()
                    })
            }
            Self::Ec {
                curve,
                scalar,
                public: carried,
            } => {
                if algorithm != EC_PUBLIC_KEY {
                    return false;
                }
                let cert_curve = spki
                    .algorithm
                    .parameters
                    .as_ref()
                    .and_then(|p| p.as_oid().ok())
                    .map(|oid| oid.to_id_string());
                if let (Some(key), Some(cert)) = (curve, &cert_curve)
                    && key != cert
                {
                    return false;
                }
                let signing = match cert_curve.as_deref().or(curve.as_deref()) {
                    Some(P256) => Some((&ring::signature::ECDSA_P256_SHA256_ASN1_SIGNING, 32)),
                    Some(P384) => Some((&ring::signature::ECDSA_P384_SHA384_ASN1_SIGNING, 48)),
                    _ => None,
                };
                // Derive the public point from the scalar where ring knows the
                // curve (it wants an uncompressed point); elsewhere compare
                // the point the key carries, if any.
                match signing {
                    Some((alg, len)) if public.first() == Some(&0x04) => fixed_length(scalar, len)
                        .is_some_and(|scalar| {
                            ring::signature::EcdsaKeyPair::from_private_key_and_public_key(
                                alg,
                                &scalar,
                                public,
                                &ring::rand::SystemRandom::new(),
                            )
                            .is_ok()
                        }),
                    _ => carried.as_deref().is_none_or(|point| point == public),
                }
            }
            Self::Eddsa {
                oid,
                seed,
                public: carried,
            } => {
                if algorithm != *oid {
                    return false;
                }
                if *oid == ED25519 {
                    ring::signature::Ed25519KeyPair::from_seed_and_public_key(seed, public).is_ok()
                } else {
                    carried.as_deref().is_none_or(|key| key == public)
                }
            }
        }
    }
}

/// A big-endian scalar as exactly `len` bytes (SEC1 says fixed length, but
/// some encoders drop leading zeros).
fn fixed_length(scalar: &[u8], len: usize) -> Option<Vec<u8>> {
    let start = scalar.iter().position(|b| *b != 0).unwrap_or(scalar.len());
    let digits = scalar.get(start..)?;
    let pad = len.checked_sub(digits.len())?;
    let mut out = vec![0; pad];
    out.extend_from_slice(digits);
    Some(out)
}

/// Parses a private key as [`parse_private_key`] describes.
fn load_private_key(pem: &str) -> Result<PrivateKey> {
    let fail = |reason: &str| Error::invalid(format!("Could not load private key: {reason}"));
    if pem.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----") || pem.contains("Proc-Type: 4,ENCRYPTED") {
        return Err(fail(
            "encrypted private keys are not supported; remove the passphrase first",
        ));
    }
    let (tag, der) =
        first_block(pem, &["PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY"]).map_err(|r| fail(&r))?;
    match tag.as_str() {
        "RSA PRIVATE KEY" => check_rsa(&der).map_err(|r| fail(&r)),
        "EC PRIVATE KEY" => check_ec(&der, None).map_err(|r| fail(&r)),
        _ => {
            let info = pkcs8::PrivateKeyInfo::try_from(der.as_slice())
                .map_err(|e| fail(&format!("the key is not valid PKCS#8 ({e})")))?;
            let oid = info.algorithm.oid.to_string();
            match oid.as_str() {
                RSA_ENCRYPTION => check_rsa(info.private_key).map_err(|r| fail(&r)),
                EC_PUBLIC_KEY => {
                    let curve = info.algorithm.parameters_oid().ok().map(|o| o.to_string());
                    check_ec(info.private_key, curve).map_err(|r| fail(&r))
                }
                // Ed25519, Ed448: an OCTET STRING of 32 or 57 bytes.
                ED25519 | ED448 => {
                    let (oid, want) = if oid == ED25519 {
                        (ED25519, 32)
                    } else {
                        (ED448, 57)
                    };
                    match info.private_key {
                        [0x04, len, rest @ ..] if usize::from(*len) == want && rest.len() == want => {
                            Ok(PrivateKey::Eddsa {
                                oid,
                                seed: rest.to_vec(),
                                public: info.public_key.map(<[u8]>::to_vec),
                            })
                        }
                        _ => Err(fail("the EdDSA key is malformed")),
                    }
                }
                _ => Err(fail(&format!("unsupported key algorithm {oid}"))),
            }
        }
    }
}

fn check_rsa(der: &[u8]) -> std::result::Result<PrivateKey, String> {
    let key = pkcs1::RsaPrivateKey::try_from(der).map_err(|e| format!("the RSA key is malformed ({e})"))?;
    let n = key.modulus.as_bytes();
    let bits = n
        .iter()
        .position(|b| *b != 0)
        .and_then(|i| n.get(i..))
        .and_then(|n| {
            n.first()
                .map(|b| (n.len() - 1) * 8 + (8 - b.leading_zeros() as usize))
        })
        .unwrap_or(0);
    if bits < 1024 {
        return Err("RSA keys must be at least 1024 bits long".to_owned());
    }
    Ok(PrivateKey::Rsa {
        modulus: key.modulus.as_bytes().to_vec(),
        exponent: key.public_exponent.as_bytes().to_vec(),
    })
}

/// `curve`: the one PKCS#8 names around the SEC1 key, if any.
fn check_ec(der: &[u8], curve: Option<String>) -> std::result::Result<PrivateKey, String> {
    let key = sec1::EcPrivateKey::try_from(der).map_err(|e| format!("the EC key is malformed ({e})"))?;
    if key.private_key.is_empty() {
        return Err("the EC key is malformed".to_owned());
    }
    Ok(PrivateKey::Ec {
        curve: curve.or_else(|| {
            key.parameters
                .and_then(sec1::EcParameters::named_curve)
                .map(|oid| oid.to_string())
        }),
        scalar: key.private_key.to_vec(),
        public: key.public_key.map(<[u8]>::to_vec),
    })
}

/// Finds the first PEM block whose label is one of `tags`; returns (label, DER).
fn first_block(text: &str, tags: &[&str]) -> std::result::Result<(String, Vec<u8>), String> {
    if text.len() > MAX_PEM_BYTES {
        return Err(format!(
            "the PEM text is larger than the limit of {MAX_PEM_BYTES} bytes"
        ));
    }
    if !text.contains("-----BEGIN ") {
        return Err("no PEM data found".to_owned());
    }
    let blocks = pem::parse_many(text).map_err(|e| {
        match e {
            pem::PemError::MismatchedTags(_, _) => "the PEM BEGIN and END lines do not match",
            pem::PemError::MissingEndTag | pem::PemError::MalformedFraming => {
                "the PEM data is truncated or malformed"
            }
            pem::PemError::InvalidData(_) => "the PEM data is not valid base64",
            _ => "the PEM data is malformed",
        }
        .to_owned()
    })?;
    if let Some(b) = blocks.iter().find(|b| tags.contains(&b.tag())) {
        if b.contents().is_empty() {
            return Err("the PEM block is empty".to_owned());
        }
        return Ok((b.tag().to_owned(), b.contents().to_vec()));
    }
    match blocks.first() {
        // Tags are short ASCII labels from the BEGIN line, not secret content.
        Some(b) => Err(format!(
            "expected a PEM block of type {}, found {}",
            tags.join(" or "),
            b.tag().chars().take(40).collect::<String>()
        )),
        None => Err("the PEM data is truncated or malformed".to_owned()),
    }
}

/// `AB:CD:…` upper hex, as pyOpenSSL's `digest()` prints.
fn colon_hex_upper(bytes: &[u8]) -> String {
    let parts: Vec<String> = bytes.iter().map(|b| format!("{b:02X}")).collect();
    parts.join(":")
}

/// OpenSSL's short names for the usual name attributes.
fn short_name(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.4.3" => "CN",
        "2.5.4.4" => "SN",
        "2.5.4.5" => "serialNumber",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.9" => "street",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "2.5.4.12" => "title",
        "2.5.4.15" => "businessCategory",
        "2.5.4.17" => "postalCode",
        "2.5.4.42" => "GN",
        "2.5.4.43" => "initials",
        "2.5.4.44" => "generationQualifier",
        "2.5.4.46" => "dnQualifier",
        "2.5.4.65" => "pseudonym",
        "1.2.840.113549.1.9.1" => "emailAddress",
        "0.9.2342.19200300.100.1.1" => "UID",
        "0.9.2342.19200300.100.1.25" => "DC",
        "1.3.6.1.4.1.311.60.2.1.1" => "jurisdictionL",
        "1.3.6.1.4.1.311.60.2.1.2" => "jurisdictionST",
        "1.3.6.1.4.1.311.60.2.1.3" => "jurisdictionC",
        _ => return None,
    })
}

/// `/K=V/K=V…` in certificate order, as Deis builds from pyOpenSSL's `get_components()`.
fn slash_name(name: &X509Name<'_>) -> String {
    let mut out = String::from("/");
    let parts: Vec<String> = name
        .iter_attributes()
        .map(|a| {
            let oid = a.attr_type().to_id_string();
            let key = short_name(&oid).map_or(oid, str::to_owned);
            let v = attr_string(a.attr_value().header.tag(), a.attr_value().data);
            format!("{key}={v}")
        })
        .collect();
    out.push_str(&parts.join("/"));
    out
}

/// Decodes a directory string whatever ASN.1 string type it uses.
fn attr_string(tag: Tag, data: &[u8]) -> String {
    match tag {
        Tag::BmpString => {
            let units: Vec<u16> = data
                .chunks_exact(2)
                .map(|c| match c {
                    [a, b] => u16::from_be_bytes([*a, *b]),
                    _ => 0xfffd,
                })
                .collect();
            String::from_utf16_lossy(&units)
        }
        Tag::UniversalString => data
            .chunks_exact(4)
            .map(|c| match c {
                [a, b, c, d] => char::from_u32(u32::from_be_bytes([*a, *b, *c, *d])).unwrap_or('\u{fffd}'),
                _ => '\u{fffd}',
            })
            .collect(),
        // T.61 is treated as Latin-1, as OpenSSL does.
        Tag::T61String => data.iter().map(|b| char::from(*b)).collect(),
        _ => String::from_utf8_lossy(data).into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_and_strings() {
        assert_eq!(colon_hex_upper(&[0xab, 0x01, 0xff]), "AB:01:FF");
        assert_eq!(attr_string(Tag::Utf8String, "héllo".as_bytes()), "héllo");
        assert_eq!(attr_string(Tag::BmpString, &[0, 0x41, 0, 0xe9]), "Aé");
        assert_eq!(attr_string(Tag::T61String, &[0x41, 0xe9]), "Aé");
        assert_eq!(attr_string(Tag::UniversalString, &[0, 0, 0, 0x41]), "A");
        // Odd lengths do not panic.
        assert_eq!(attr_string(Tag::BmpString, &[0, 0x41, 0]), "A");
    }
}
