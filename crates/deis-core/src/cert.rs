//! TLS certificates and private keys uploaded with `deis certs:add`.
//!
//! Only parsing and description happen here; nothing is verified against a
//! trust store, and expired certificates are accepted (as in Deis).

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use x509_parser::der_parser::asn1_rs::Tag;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate, X509Name};

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

/// Parses the first certificate of a PEM chain and describes it.
pub fn parse_certificate(pem: &str) -> Result<CertificateInfo> {
    let fail = |reason: &str| Error::invalid(format!("Could not load certificate: {reason}"));
    let der = first_block(pem, &["CERTIFICATE"]).map_err(|r| fail(&r))?;
    // The parser's error is a nom/DER debug dump; a plain reason reads better.
    let (_, cert) = X509Certificate::from_der(&der.1)
        .map_err(|_| fail("the data is not a valid DER-encoded X.509 certificate"))?;

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
        Err(e) => return Err(fail(&format!("invalid subjectAltName extension ({e})"))),
    }
    let time = |t: i64| {
        DateTime::<Utc>::from_timestamp(t, 0).ok_or_else(|| fail("the validity dates are out of range"))
    };
    Ok(CertificateInfo {
        common_name,
        san,
        fingerprint: colon_hex_upper(&Sha256::digest(&der.1)),
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
        "EC PRIVATE KEY" => check_ec(&der).map_err(|r| fail(&r)),
        _ => {
            let info = pkcs8::PrivateKeyInfo::try_from(der.as_slice())
                .map_err(|e| fail(&format!("the key is not valid PKCS#8 ({e})")))?;
            let oid = info.algorithm.oid.to_string();
            match oid.as_str() {
                // rsaEncryption
                "1.2.840.113549.1.1.1" => check_rsa(info.private_key).map_err(|r| fail(&r)),
                // id-ecPublicKey
                "1.2.840.10045.2.1" => check_ec(info.private_key).map_err(|r| fail(&r)),
                // Ed25519, Ed448: an OCTET STRING of 32 or 57 bytes.
                "1.3.101.112" | "1.3.101.113" => {
                    let want = if oid == "1.3.101.112" { 32 } else { 57 };
                    match info.private_key {
                        [0x04, len, rest @ ..] if usize::from(*len) == want && rest.len() == want => Ok(()),
                        _ => Err(fail("the EdDSA key is malformed")),
                    }
                }
                _ => Err(fail(&format!("unsupported key algorithm {oid}"))),
            }
        }
    }
}

fn check_rsa(der: &[u8]) -> std::result::Result<(), String> {
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
    Ok(())
}

fn check_ec(der: &[u8]) -> std::result::Result<(), String> {
    let key = sec1::EcPrivateKey::try_from(der).map_err(|e| format!("the EC key is malformed ({e})"))?;
    if key.private_key.is_empty() {
        return Err("the EC key is malformed".to_owned());
    }
    Ok(())
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
