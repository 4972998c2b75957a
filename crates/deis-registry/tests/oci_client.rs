//! A Rust client, `oci-client` (the ORAS project's), pushes an image (config
//! and two layers) and pulls it back: with Basic credentials, and through
//! the Docker token flow it negotiates by itself when challenged with
//! `Bearer`. Plain HTTP on loopback.

mod common;

use std::sync::Arc;

use common::{TestRegistry, sha256};
use deis_registry::{RegistryOptions, TokenOptions};
use http::Method;
use oci_client::client::{ClientConfig, ClientProtocol, Config, ImageLayer};
use oci_client::manifest::{
    IMAGE_CONFIG_MEDIA_TYPE, IMAGE_LAYER_GZIP_MEDIA_TYPE, IMAGE_LAYER_MEDIA_TYPE, OCI_IMAGE_MEDIA_TYPE,
};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};

fn client() -> Client {
    // reqwest is built without a default crypto provider (the workspace
    // keeps TLS on ring); plain HTTP never uses it, but building the client
    // requires one.
    let _ = rustls::crypto::ring::default_provider().install_default();
    Client::new(ClientConfig {
        protocol: ClientProtocol::Http,
        ..ClientConfig::default()
    })
}

fn basic(user: &str) -> RegistryAuth {
    RegistryAuth::Basic(user.to_owned(), "pass".to_owned())
}

/// Bytes that differ from block to block, a little more than oci-client's
/// 4 MiB chunk, so it is pushed in two `PATCH`es.
fn big_layer() -> Vec<u8> {
    (0..(4 * 1024 + 64) * 1024u32)
        .map(|i| (i / 4096 + i % 251) as u8)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oci_client_pushes_and_pulls_an_image() {
    let registry =
        TestRegistry::start_logged(Arc::new(common::test_auth()), RegistryOptions::default()).await;
    let client = client();
    let reference: Reference = format!("{}/team/app:v1", registry.addr).parse().unwrap();
    let config = Config::oci_v1(
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#.to_vec(),
        None,
    );
    let layers = vec![
        ImageLayer::oci_v1(b"a small first layer".to_vec(), None),
        ImageLayer::oci_v1_gzip(big_layer(), None),
    ];

    let pushed = client
        .push(&reference, &layers, config.clone(), &basic("user"), None)
        .await
        .unwrap();
    let stored = registry
        .registry
        .resolve_tag("team/app", "v1")
        .await
        .unwrap()
        .expect("the tag was pushed")
        .to_string();
    // The registry's Location names the manifest by digest.
    assert!(
        pushed
            .manifest_url
            .ends_with(&format!("/v2/team/app/manifests/{stored}")),
        "{}",
        pushed.manifest_url
    );
    // The large layer went up chunk by chunk (no fallback to one PUT).
    let patches = registry
        .requests()
        .iter()
        .filter(|r| r.method == Method::PATCH && r.scheme.as_deref() == Some("Basic"))
        .count();
    assert!(patches >= 2, "{:#?}", registry.requests());

    // The manifest comes back byte for byte under its digest.
    let (raw, digest) = client
        .pull_manifest_raw(&reference, &basic("reader"), &[OCI_IMAGE_MEDIA_TYPE])
        .await
        .unwrap();
    assert_eq!(digest, stored);
    assert_eq!(sha256(&raw), stored);
    let manifest: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(manifest["config"]["mediaType"], IMAGE_CONFIG_MEDIA_TYPE);
    assert_eq!(manifest["config"]["digest"], sha256(&config.data));

    // And the whole image: config and every layer, bytes compared.
    let image = client
        .pull(
            &reference,
            &basic("reader"),
            vec![IMAGE_LAYER_MEDIA_TYPE, IMAGE_LAYER_GZIP_MEDIA_TYPE],
        )
        .await
        .unwrap();
    assert_eq!(image.digest.as_deref(), Some(stored.as_str()));
    assert_eq!(image.config.data, config.data);
    let in_manifest: Vec<&str> = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|layer| layer["digest"].as_str().unwrap())
        .collect();
    let sent: Vec<String> = layers.iter().map(ImageLayer::sha256_digest).collect();
    assert_eq!(in_manifest, sent);
    // oci-client downloads layers concurrently, so they come back in any order.
    assert_eq!(image.layers.len(), layers.len());
    for pushed in &layers {
        let pulled = image
            .layers
            .iter()
            .find(|pulled| pulled.media_type == pushed.media_type)
            .expect("every layer comes back");
        assert!(
            pulled.data == pushed.data,
            "layer {} differs",
            pushed.sha256_digest()
        );
    }

    // The same store behind a registry that challenges with Bearer:
    // oci-client trades the credentials for a token and pulls with it.
    let options = RegistryOptions {
        token: Some(TokenOptions::new(&b"the oci-client test's token key!"[..])),
        ..RegistryOptions::default()
    };
    let bearer = registry.replica(Arc::new(common::test_auth()), options).await;
    let client = self::client();
    let via_token: Reference = format!("{}/team/app:v1", bearer.addr).parse().unwrap();
    let (raw_again, digest) = client
        .pull_manifest_raw(&via_token, &basic("reader"), &[OCI_IMAGE_MEDIA_TYPE])
        .await
        .unwrap();
    assert_eq!((digest.as_str(), &raw_again), (stored.as_str(), &raw));
    let requests = bearer.requests();
    let token_requests: Vec<_> = requests.iter().filter(|r| r.path() == "/v2/token").collect();
    assert_eq!(token_requests.len(), 1, "{requests:#?}");
    assert_eq!(token_requests[0].scheme.as_deref(), Some("Basic"));
    assert!(
        token_requests[0]
            .target
            .contains("scope=repository%3Ateam%2Fapp%3Apull"),
        "{:?}",
        token_requests[0].target
    );
    let manifest_gets: Vec<_> = requests
        .iter()
        .filter(|r| r.path() == "/v2/team/app/manifests/v1")
        .collect();
    assert!(!manifest_gets.is_empty());
    assert!(
        manifest_gets
            .iter()
            .all(|r| r.scheme.as_deref() == Some("Bearer")),
        "{manifest_gets:#?}"
    );

    // Pushing through the token flow: a pull-and-push token for `user`
    // (a new client: oci-client keeps the first credentials per registry)...
    let v2: Reference = format!("{}/team/app:v2", bearer.addr).parse().unwrap();
    self::client()
        .push(&v2, &layers[..1], config.clone(), &basic("user"), None)
        .await
        .unwrap();
    assert!(
        bearer
            .registry
            .resolve_tag("team/app", "v2")
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        bearer
            .requests()
            .iter()
            .any(|r| r.path() == "/v2/token" && r.target.contains("pull%2Cpush"))
    );
    // ...and a pull-only one for `reader`, whose push is refused.
    let refused: Reference = format!("{}/team/app:reader", bearer.addr).parse().unwrap();
    let error = self::client()
        .push(&refused, &layers[..1], config, &basic("reader"), None)
        .await
        .err()
        .expect("a reader cannot push");
    println!("the reader's push: {error}");
    assert!(error.to_string().contains("DENIED"), "{error}");
    assert!(
        bearer
            .registry
            .resolve_tag("team/app", "reader")
            .await
            .unwrap()
            .is_none()
    );
    bearer.stop().await;
    registry.stop().await;
}
