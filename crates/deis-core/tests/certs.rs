//! Certificate and key parsing against files made with `openssl`
//! (tests/fixtures/certs; `*.expected` holds what `openssl x509` printed).

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;

use deis_core::ErrorKind;
use deis_core::cert::{check_key_pair, parse_certificate, parse_private_key};

fn fixture(name: &str) -> String {
    let path = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("tests run under cargo"))
        .join("tests/fixtures/certs")
        .join(name);
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn expected(name: &str) -> BTreeMap<String, String> {
    fixture(&format!("{name}.expected"))
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn check(file: &str, expect: &str, cn: &str, san: &[&str]) {
    let info = parse_certificate(&fixture(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
    let want = expected(expect);
    assert_eq!(info.common_name, cn, "{file}");
    assert_eq!(info.san, san, "{file}");
    assert_eq!(info.fingerprint, want["fingerprint"], "{file}");
    assert_eq!(info.subject, want["subject"], "{file}");
    assert_eq!(info.issuer, want["issuer"], "{file}");
    assert_eq!(info.starts.timestamp().to_string(), want["starts"], "{file}");
    assert_eq!(info.expires.timestamp().to_string(), want["expires"], "{file}");
    assert!(info.expires > info.starts);
}

#[test]
fn self_signed_with_san() {
    check(
        "san.crt",
        "san",
        "www.example.com",
        &["www.example.com", "example.com", "api.example.com"],
    );
}

#[test]
fn wildcard() {
    check(
        "wildcard.crt",
        "wildcard",
        "*.example.com",
        &["*.example.com", "example.com"],
    );
}

#[test]
fn ec_without_san_with_email() {
    check("ec.crt", "ec", "ec.example.org", &[]);
}

#[test]
fn chain_uses_the_first_certificate() {
    // IP SANs are not DNS names and are left out, as in Deis.
    check(
        "chain.pem",
        "leaf",
        "leaf.example.net",
        &["leaf.example.net", "www.leaf.example.net"],
    );
    check("ca.crt", "ca", "Test Root CA", &[]);
    // Text around and between blocks is ignored; a key before the cert is skipped.
    let mixed = format!(
        "Bag Attributes\n{}\nsome text\n{}",
        fixture("ec-pkcs8.key"),
        fixture("leaf.crt")
    );
    let info = parse_certificate(&mixed).unwrap();
    assert_eq!(info.common_name, "leaf.example.net");
    // CRLF line endings.
    let crlf = fixture("san.crt").replace('\n', "\r\n");
    assert_eq!(parse_certificate(&crlf).unwrap().common_name, "www.example.com");
}

#[test]
fn bad_certificates() {
    let san = fixture("san.crt");
    let lines: Vec<&str> = san.lines().collect();
    let truncated_body = format!(
        "{}\n-----END CERTIFICATE-----\n",
        lines[..lines.len() / 2].join("\n")
    );
    let no_end = lines[..lines.len() - 1].join("\n");
    // Damage the outer DER header (the body starts with "MII", a SEQUENCE).
    let flipped = san.replacen("\nMII", "\nAII", 1);
    assert_ne!(flipped, san);

    let cases: Vec<(String, &str)> = vec![
        (String::new(), "no PEM data found"),
        ("garbage".to_owned(), "no PEM data found"),
        ("\u{0}\u{1}binary".to_owned(), "no PEM data found"),
        (truncated_body, "not a valid DER-encoded X.509 certificate"),
        (no_end, "truncated or malformed"),
        (
            "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n".to_owned(),
            "not valid base64",
        ),
        (
            "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n".to_owned(),
            "",
        ),
        (
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END PRIVATE KEY-----\n".to_owned(),
            "",
        ),
        (
            fixture("rsa-pkcs1.key"),
            "expected a PEM block of type CERTIFICATE, found RSA PRIVATE KEY",
        ),
        (
            fixture("ec-sec1.key"),
            "expected a PEM block of type CERTIFICATE, found EC PARAMETERS",
        ),
        (
            "-----BEGIN CERTIFICATE-----\nMAMCAQA=\n-----END CERTIFICATE-----\n".to_owned(),
            "not a valid DER-encoded X.509 certificate",
        ),
        (flipped, "not a valid DER-encoded X.509 certificate"),
        (
            format!("{san}{}", "x".repeat(1024 * 1024)),
            "larger than the limit",
        ),
    ];
    for (input, want) in cases {
        let e = parse_certificate(&input).unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidArgument);
        assert!(
            e.message.starts_with("Could not load certificate: "),
            "{}",
            e.message
        );
        assert!(e.message.contains(want), "want {want:?} in {:?}", e.message);
    }
}

#[test]
fn private_keys() {
    for f in [
        "rsa-pkcs1.key",
        "rsa-pkcs8.key",
        "ec-sec1.key",
        "ec-pkcs8.key",
        "ed25519-pkcs8.key",
        "ec-nopub.key",
        "p384.key",
    ] {
        parse_private_key(&fixture(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
    }
    // A bundle with the certificate first is fine too.
    parse_private_key(&format!("{}{}", fixture("san.crt"), fixture("rsa-pkcs1.key"))).unwrap();
}

#[test]
fn bad_private_keys() {
    let rsa = fixture("rsa-pkcs1.key");
    let lines: Vec<&str> = rsa.lines().collect();
    let truncated = format!(
        "{}\n-----END RSA PRIVATE KEY-----\n",
        lines[..lines.len() / 2].join("\n")
    );
    // The PKCS#8 wrapper around an RSA key with its inner key damaged.
    let pkcs8 = fixture("rsa-pkcs8.key");
    let p8_lines: Vec<&str> = pkcs8.lines().collect();
    let p8_truncated = format!(
        "{}\n-----END PRIVATE KEY-----\n",
        p8_lines[..p8_lines.len() / 2].join("\n")
    );

    let cases: Vec<(String, &str)> = vec![
        (String::new(), "no PEM data found"),
        ("not a key".to_owned(), "no PEM data found"),
        (
            fixture("rsa-encrypted.key"),
            "encrypted private keys are not supported",
        ),
        (
            fixture("san.crt"),
            "expected a PEM block of type PRIVATE KEY or RSA PRIVATE KEY or EC PRIVATE KEY, found CERTIFICATE",
        ),
        (truncated, "RSA key is malformed"),
        (p8_truncated, "not valid PKCS#8"),
        (
            "-----BEGIN PRIVATE KEY-----\nMAMCAQA=\n-----END PRIVATE KEY-----\n".to_owned(),
            "not valid PKCS#8",
        ),
        (
            "-----BEGIN EC PRIVATE KEY-----\nMAMCAQA=\n-----END EC PRIVATE KEY-----\n".to_owned(),
            "EC key is malformed",
        ),
        (
            rsa.replace("-----END RSA PRIVATE KEY-----", "-----END PRIVATE KEY-----"),
            "do not match",
        ),
        (
            format!("{rsa}{}", " ".repeat(1024 * 1024)),
            "larger than the limit",
        ),
    ];
    for (input, want) in cases {
        let e = parse_private_key(&input).unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidArgument);
        assert!(
            e.message.starts_with("Could not load private key: "),
            "{}",
            e.message
        );
        assert!(e.message.contains(want), "want {want:?} in {:?}", e.message);
        // No key material leaks into the message.
        for line in rsa.lines().filter(|l| !l.starts_with("-----")) {
            assert!(!e.message.contains(&line[..16.min(line.len())]), "{}", e.message);
        }
        assert!(e.message.len() < 300, "{}", e.message);
    }
}

#[test]
fn key_pairs_that_belong_together() {
    for (cert, key) in [
        ("san.crt", "rsa-pkcs1.key"),
        ("san.crt", "rsa-pkcs8.key"),
        ("wildcard.crt", "rsa-pkcs1.key"),
        ("ec.crt", "ec-sec1.key"),
        ("ec.crt", "ec-pkcs8.key"),
        // No public point in the key: it is derived from the scalar.
        ("ec.crt", "ec-nopub.key"),
        ("p384.crt", "p384.key"),
        // PKCS#8 v1: the seed alone.
        ("ed25519.crt", "ed25519-pkcs8.key"),
    ] {
        check_key_pair(&fixture(cert), &fixture(key)).unwrap_or_else(|e| panic!("{cert} + {key}: {e}"));
    }
    // A bundle (leaf first, then its key) is fine too.
    let bundle = format!("{}{}", fixture("san.crt"), fixture("rsa-pkcs1.key"));
    check_key_pair(&bundle, &bundle).unwrap();
}

#[test]
fn key_pairs_that_do_not_belong_together() {
    for (cert, key) in [
        // Same algorithm, another key: the case `certs:add` must refuse.
        ("san.crt", "rsa-other.key"),
        ("ec.crt", "ec-other.key"),
        ("ed25519.crt", "ed25519-other.key"),
        // Another algorithm or curve.
        ("san.crt", "ec-sec1.key"),
        ("ec.crt", "rsa-pkcs8.key"),
        ("ec.crt", "p384.key"),
        ("p384.crt", "ec-nopub.key"),
        ("ed25519.crt", "ec-pkcs8.key"),
        ("san.crt", "ed25519-pkcs8.key"),
        // chain.pem's leaf is not the CA's key (which was discarded).
        ("chain.pem", "rsa-pkcs1.key"),
    ] {
        let e = check_key_pair(&fixture(cert), &fixture(key))
            .err()
            .unwrap_or_else(|| panic!("{cert} + {key}: accepted"));
        assert_eq!(e.kind, ErrorKind::InvalidArgument, "{cert} + {key}");
        assert_eq!(
            e.message, "Could not load private key: the key does not match the certificate's public key",
            "{cert} + {key}"
        );
    }
    // Unparsable input keeps the parsers' messages.
    let e = check_key_pair("garbage", &fixture("rsa-pkcs1.key")).unwrap_err();
    assert!(
        e.message.starts_with("Could not load certificate: "),
        "{}",
        e.message
    );
    let e = check_key_pair(&fixture("san.crt"), "garbage").unwrap_err();
    assert!(
        e.message.starts_with("Could not load private key: "),
        "{}",
        e.message
    );
}
