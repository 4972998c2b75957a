//! Deis's validation rules, checked through the API: each violation answers
//! INVALID_ARGUMENT (or Deis's conflict codes) with Deis's message, and
//! leaves no trace. The rule tables themselves are unit-tested in deis-core.

use std::collections::HashMap;

use deis_proto::v2 as pb;
use deis_testkit::{Clients, TestPlatform, authed, random_ed25519_public_key, test_certificate};
use prost_types::value::Kind;
use tonic::Code;

fn s(v: &str) -> prost_types::Value {
    prost_types::Value {
        kind: Some(Kind::StringValue(v.into())),
    }
}

async fn setup() -> (TestPlatform, Clients, String) {
    let p = TestPlatform::start().await;
    let token = p.register("alice").await;
    let mut c = p.clients().await;
    c.apps
        .create_app(authed(&token, pb::CreateAppRequest { id: "valid".into() }))
        .await
        .unwrap();
    (p, c, token)
}

fn expect(result: Result<impl Sized, tonic::Status>, code: Code, message: &str, what: &str) {
    match result {
        Ok(_) => panic!("{what}: accepted, expected {code:?} {message:?}"),
        Err(status) => {
            assert_eq!(status.code(), code, "{what}: {}", status.message());
            assert!(
                status.message().contains(message),
                "{what}: got {:?}, expected {message:?}",
                status.message()
            );
        }
    }
}

#[tokio::test]
async fn app_names() {
    let (_p, mut c, t) = setup().await;
    const MSG: &str = "App name must start with an alphabetic character, cannot end with a hyphen and can only contain a-z (lowercase), 0-9 and hyphens.";
    for bad in ["1abc", "-abc", "abc-", "ABC", "a_b", "a.b", "héllo", "日本"] {
        expect(
            c.apps
                .create_app(authed(&t, pb::CreateAppRequest { id: bad.into() }))
                .await,
            Code::InvalidArgument,
            MSG,
            bad,
        );
    }
    expect(
        c.apps
            .create_app(authed(&t, pb::CreateAppRequest { id: "a".repeat(64) }))
            .await,
        Code::InvalidArgument,
        "63",
        "64 chars",
    );
    c.apps
        .create_app(authed(&t, pb::CreateAppRequest { id: "a".repeat(63) }))
        .await
        .unwrap();
    expect(
        c.apps
            .create_app(authed(&t, pb::CreateAppRequest { id: "deis".into() }))
            .await,
        Code::InvalidArgument,
        "deis is a reserved name.",
        "reserved",
    );
    expect(
        c.apps
            .create_app(authed(&t, pb::CreateAppRequest { id: "valid".into() }))
            .await,
        Code::AlreadyExists,
        "Application with this id already exists.",
        "duplicate",
    );
    // No id: a generated adjective-noun name.
    let app = c
        .apps
        .create_app(authed(&t, pb::CreateAppRequest::default()))
        .await
        .unwrap()
        .into_inner()
        .app
        .unwrap();
    assert!(app.id.contains('-'), "{}", app.id);
    assert_eq!(app.url, format!("http://{}.localhost:8080", app.id));
}

#[tokio::test]
async fn config_keys_values_and_limits() {
    let (p, mut c, t) = setup().await;
    let set = |field: &str, key: &str, value: &str| {
        let map = HashMap::from([(key.to_string(), s(value))]);
        let mut req = pb::SetConfigRequest {
            app: "valid".into(),
            ..Default::default()
        };
        match field {
            "values" => req.values = map,
            "memory" => req.memory = map,
            "cpu" => req.cpu = map,
            "tags" => req.tags = map,
            "registry" => req.registry = map,
            _ => unreachable!(),
        }
        req
    };
    let keys_msg = "Config keys must start with a letter or underscore and only contain [A-z0-9_]";
    for bad in ["123", "../../foo", "FOO/", "FOO-BAR", "FOO BAR"] {
        expect(
            c.config.set_config(authed(&t, set("values", bad, "x"))).await,
            Code::InvalidArgument,
            keys_msg,
            bad,
        );
    }
    expect(
        c.config
            .set_config(authed(&t, set("values", "PORT", "dog")))
            .await,
        Code::InvalidArgument,
        "PORT can only be a numeric value",
        "PORT dog",
    );
    expect(
        c.config
            .set_config(authed(&t, set("values", "PORT", "99999")))
            .await,
        Code::InvalidArgument,
        "PORT needs to be between 1 and 65535",
        "PORT 99999",
    );
    let mem =
        "Memory limit format: <number><unit> or <number><unit>/<number><unit>, where unit = B, K, M or G";
    for bad in ["1Z", "1T", "-1M", "1.5G", "M"] {
        expect(
            c.config.set_config(authed(&t, set("memory", "web", bad))).await,
            Code::InvalidArgument,
            mem,
            bad,
        );
    }
    expect(
        c.config
            .set_config(authed(&t, set("memory", "Web_1", "1G")))
            .await,
        Code::InvalidArgument,
        "Process types can only contain",
        "ptype",
    );
    for bad in ["1z", "abc", "1/2/3"] {
        expect(
            c.config.set_config(authed(&t, set("cpu", "web", bad))).await,
            Code::InvalidArgument,
            "CPU",
            bad,
        );
    }
    expect(
        c.config
            .set_config(authed(&t, set("tags", "bad key!", "x")))
            .await,
        Code::InvalidArgument,
        "",
        "tag key",
    );
    expect(
        c.config
            .set_config(authed(&t, set("registry", "username", "bob")))
            .await,
        Code::InvalidArgument,
        "PORT needs to be set in the config when using a private registry",
        "registry without PORT",
    );
    let hc = prost_types::Struct {
        fields: [(
            "web".to_string(),
            prost_types::Value {
                kind: Some(Kind::StructValue(prost_types::Struct {
                    fields: [("livenessProbe".to_string(), s("nope"))].into(),
                })),
            },
        )]
        .into(),
    };
    let req = pb::SetConfigRequest {
        app: "valid".into(),
        healthcheck: Some(hc),
        ..Default::default()
    };
    expect(
        c.config.set_config(authed(&t, req)).await,
        Code::InvalidArgument,
        "livenessProbe",
        "healthcheck",
    );

    // Good values are accepted, stored and stringified.
    c.config
        .set_config(authed(&t, set("memory", "web", "256M/512M")))
        .await
        .unwrap();
    c.config
        .set_config(authed(&t, set("cpu", "web", "500m")))
        .await
        .unwrap();
    let mut req = pb::SetConfigRequest {
        app: "valid".into(),
        ..Default::default()
    };
    req.values.insert(
        "PORT".into(),
        prost_types::Value {
            kind: Some(Kind::NumberValue(5000.0)),
        },
    );
    let config = c
        .config
        .set_config(authed(&t, req))
        .await
        .unwrap()
        .into_inner()
        .config
        .unwrap();
    assert_eq!(config.values["PORT"], "5000");
    assert_eq!(config.memory["web"], "256M/512M");
    // Only the three good changes made releases.
    let releases = c
        .releases
        .list_releases(authed(
            &t,
            pb::ListReleasesRequest {
                app: "valid".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap();
    assert_eq!(releases.into_inner().count, 4, "{}", p.backend);
}

/// A valid RSA key that is not the test certificate's (deis-core's fixture).
const OTHER_RSA_KEY: &str = include_str!("../../deis-core/tests/fixtures/certs/rsa-other.key");
/// A valid EC key, likewise not the test certificate's.
const OTHER_EC_KEY: &str = include_str!("../../deis-core/tests/fixtures/certs/ec-sec1.key");

#[tokio::test]
async fn certs_add_refuses_a_key_that_is_not_the_certificates() {
    let (_p, mut c, t) = setup().await;
    let (certificate, key) = test_certificate();
    let cert = |name: &str, key: &str| pb::CreateCertRequest {
        name: name.into(),
        certificate: certificate.clone(),
        key: key.into(),
    };
    for (what, other) in [("another RSA key", OTHER_RSA_KEY), ("an EC key", OTHER_EC_KEY)] {
        expect(
            c.certs.create_cert(authed(&t, cert("mism", other))).await,
            Code::InvalidArgument,
            "Could not load private key: the key does not match the certificate's public key",
            what,
        );
    }
    // Refused without a trace: the name is still free, nothing is listed.
    expect(
        c.certs
            .get_cert(authed(&t, pb::GetCertRequest { name: "mism".into() }))
            .await,
        Code::NotFound,
        "",
        "refused cert stored",
    );
    let listed = c
        .certs
        .list_certs(authed(&t, pb::ListCertsRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert!(listed.results.is_empty(), "{listed:?}");
    // The certificate's own key is accepted under the same name.
    c.certs.create_cert(authed(&t, cert("mism", &key))).await.unwrap();
}

#[tokio::test]
async fn domains_certificates_keys_and_settings() {
    let (_p, mut c, t) = setup().await;
    let add = |d: &str| pb::AddDomainRequest {
        app: "valid".into(),
        domain: d.into(),
    };
    for bad in [
        "this_is_an.invalid.domain",
        "this-is-an.invalid.1",
        "foo.*.bar.com",
        "*",
        &"a".repeat(300),
    ] {
        expect(
            c.domains.add_domain(authed(&t, add(bad))).await,
            Code::InvalidArgument,
            "",
            bad,
        );
    }
    // IDN: the Unicode and ACE forms are the same domain.
    let d = c
        .domains
        .add_domain(authed(&t, add("bücher.example.com.")))
        .await
        .unwrap()
        .into_inner()
        .domain
        .unwrap();
    assert_eq!(d.domain, "xn--bcher-kva.example.com");
    expect(
        c.domains
            .add_domain(authed(&t, add("xn--bcher-kva.example.com")))
            .await,
        Code::AlreadyExists,
        "already",
        "ACE duplicate",
    );
    c.apps
        .create_app(authed(&t, pb::CreateAppRequest { id: "other".into() }))
        .await
        .unwrap();
    let other = pb::AddDomainRequest {
        app: "other".into(),
        domain: "bücher.example.com".into(),
    };
    expect(
        c.domains.add_domain(authed(&t, other)).await,
        Code::AlreadyExists,
        "The domain xn--bcher-kva.example.com is already in use by another app",
        "other app",
    );
    // Another app's default domain cannot be taken.
    expect(
        c.domains.add_domain(authed(&t, add("other.localhost"))).await,
        Code::PermissionDenied,
        "reserved",
        "default domain",
    );
    c.domains
        .remove_domain(authed(
            &t,
            pb::RemoveDomainRequest {
                app: "valid".into(),
                domain: "bücher.example.com".into(),
            },
        ))
        .await
        .unwrap();

    let (certificate, key) = test_certificate();
    let cert = |name: &str, certificate: &str, key: &str| pb::CreateCertRequest {
        name: name.into(),
        certificate: certificate.into(),
        key: key.into(),
    };
    expect(
        c.certs
            .create_cert(authed(&t, cert("Bad_Name", &certificate, &key)))
            .await,
        Code::InvalidArgument,
        "Can only contain a-z (lowercase), 0-9 and hyphens",
        "cert name",
    );
    expect(
        c.certs
            .create_cert(authed(
                &t,
                cert(
                    "x",
                    "-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n",
                    &key,
                ),
            ))
            .await,
        Code::InvalidArgument,
        "Could not load certificate",
        "bad cert",
    );
    expect(
        c.certs
            .create_cert(authed(&t, cert("x", &key, &certificate)))
            .await,
        Code::InvalidArgument,
        "Could not load certificate",
        "swapped",
    );
    expect(
        c.certs
            .create_cert(authed(&t, cert("x", &certificate, "garbage")))
            .await,
        Code::InvalidArgument,
        "Could not load private key",
        "bad key",
    );
    let created = c
        .certs
        .create_cert(authed(&t, cert("www", &certificate, &key)))
        .await
        .unwrap()
        .into_inner()
        .cert
        .unwrap();
    assert_eq!(created.common_name, "www.example.com");
    assert_eq!(
        created.san,
        vec!["www.example.com", "example.com", "api.example.com"]
    );
    expect(
        c.certs
            .create_cert(authed(&t, cert("www", &certificate, &key)))
            .await,
        Code::AlreadyExists,
        "Certificate with this name already exists.",
        "dup cert",
    );
    c.domains
        .add_domain(authed(&t, add("www.example.com")))
        .await
        .unwrap();
    let attach = pb::AttachCertRequest {
        name: "www".into(),
        domain: "www.example.com".into(),
    };
    c.certs.attach_cert(authed(&t, attach.clone())).await.unwrap();
    expect(
        c.certs.attach_cert(authed(&t, attach)).await,
        Code::FailedPrecondition,
        "Domain already has a certificate attached to it",
        "attached twice",
    );
    let shown = c
        .certs
        .get_cert(authed(&t, pb::GetCertRequest { name: "www".into() }))
        .await
        .unwrap()
        .into_inner()
        .cert
        .unwrap();
    assert_eq!(shown.domains, vec!["www.example.com"]);
    c.certs
        .delete_cert(authed(&t, pb::DeleteCertRequest { name: "www".into() }))
        .await
        .unwrap();
    let domains = c
        .domains
        .list_domains(authed(
            &t,
            pb::ListDomainsRequest {
                app: "valid".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap();
    assert_eq!(
        domains.into_inner().results[0].certificate,
        "",
        "deleting a cert detaches it"
    );

    let key_req = |id: &str, public: &str| pb::AddKeyRequest {
        id: id.into(),
        public: public.into(),
    };
    expect(
        c.keys
            .add_key(authed(&t, key_req("k", "ssh-rsa !!!notbase64")))
            .await,
        Code::InvalidArgument,
        "Key contains invalid base64 chars",
        "base64",
    );
    expect(
        c.keys
            .add_key(authed(&t, key_req("k", "ssh-ed25519 AAAA\u{7}x")))
            .await,
        Code::InvalidArgument,
        "",
        "control char",
    );
    let public = random_ed25519_public_key("me@laptop");
    c.keys
        .add_key(authed(&t, key_req("laptop", &public)))
        .await
        .unwrap();
    expect(
        c.keys.add_key(authed(&t, key_req("other", &public))).await,
        Code::AlreadyExists,
        "Public Key is already in use",
        "dup key",
    );
    expect(
        c.keys
            .add_key(authed(&t, key_req("laptop", &random_ed25519_public_key("x"))))
            .await,
        Code::AlreadyExists,
        "SSH Key with this id already exists.",
        "dup id",
    );
    let fixtures = format!(
        "{}/../deis-core/tests/fixtures/ssh",
        std::env::var("CARGO_MANIFEST_DIR").expect("tests run under cargo")
    );
    for name in ["rsa", "ecdsa256", "ecdsa384", "ecdsa521", "ed25519"] {
        let public = std::fs::read_to_string(format!("{fixtures}/{name}.pub")).unwrap();
        let key = c
            .keys
            .add_key(authed(&t, key_req(name, &public)))
            .await
            .unwrap()
            .into_inner()
            .key
            .unwrap();
        let md5 = std::fs::read_to_string(format!("{fixtures}/{name}.md5")).unwrap();
        assert!(
            md5.contains(&format!("MD5:{}", key.fingerprint)),
            "{name}: {md5} vs {}",
            key.fingerprint
        );
        let sha = std::fs::read_to_string(format!("{fixtures}/{name}.sha256")).unwrap();
        assert!(sha.contains(&key.sha256_fingerprint), "{name}");
    }

    let white = |a: &[&str]| pb::AddWhitelistRequest {
        app: "valid".into(),
        addresses: a.iter().map(|s| s.to_string()).collect(),
    };
    expect(
        c.settings.add_whitelist(authed(&t, white(&["10.0.0.300"]))).await,
        Code::InvalidArgument,
        "The address 10.0.0.300 is not valid",
        "ip",
    );
    c.settings
        .add_whitelist(authed(
            &t,
            white(&["10.0.0.1", "192.168.0.0/16", "2001:db8::/32"]),
        ))
        .await
        .unwrap();
    expect(
        c.settings.add_whitelist(authed(&t, white(&["10.0.0.1"]))).await,
        Code::FailedPrecondition,
        "alice changed nothing",
        "no-op",
    );
    let remove = pb::RemoveWhitelistRequest {
        app: "valid".into(),
        addresses: vec!["1.2.3.4".into()],
    };
    expect(
        c.settings.remove_whitelist(authed(&t, remove)).await,
        Code::FailedPrecondition,
        "does not exist in whitelist",
        "remove missing",
    );

    let autoscale = |min: f64, max: f64| {
        let spec = prost_types::Struct {
            fields: [("min", min), ("max", max), ("cpu_percent", 50.0)]
                .into_iter()
                .map(|(k, v)| {
                    (
                        k.to_string(),
                        prost_types::Value {
                            kind: Some(Kind::NumberValue(v)),
                        },
                    )
                })
                .collect(),
        };
        pb::UpdateAppSettingsRequest {
            app: "valid".into(),
            autoscale: Some(prost_types::Struct {
                fields: [(
                    "web".to_string(),
                    prost_types::Value {
                        kind: Some(Kind::StructValue(spec)),
                    },
                )]
                .into(),
            }),
            ..Default::default()
        }
    };
    expect(
        c.settings
            .update_app_settings(authed(&t, autoscale(3.0, 1.0)))
            .await,
        Code::InvalidArgument,
        "max",
        "max < min",
    );
    let saved = c
        .settings
        .update_app_settings(authed(&t, autoscale(1.0, 3.0)))
        .await
        .unwrap()
        .into_inner()
        .settings
        .unwrap();
    assert_eq!(
        saved.autoscale["web"],
        pb::Autoscale {
            min: 1,
            max: 3,
            cpu_percent: 50
        }
    );
    let tls = pb::SetTlsRequest {
        app: "valid".into(),
        https_enforced: true,
    };
    c.settings.set_tls(authed(&t, tls.clone())).await.unwrap();
    expect(
        c.settings.set_tls(authed(&t, tls)).await,
        Code::FailedPrecondition,
        "alice changed nothing",
        "tls no-op",
    );
}
