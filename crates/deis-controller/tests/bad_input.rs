//! Bad input never crashes the server and never leaves half-written state:
//! each malformed request gets a clear error, and a valid request right
//! after it still succeeds.

use std::collections::HashMap;

use bytes::Bytes;
use deis_proto::v2 as pb;
use deis_testkit::{Clients, TestPlatform, authed, code_of};
use http_body_util::Full;
use prost::Message;
use prost_types::value::Kind;
use tonic::Code;
use tower::ServiceExt;

fn s(v: &str) -> prost_types::Value {
    prost_types::Value {
        kind: Some(Kind::StringValue(v.into())),
    }
}

/// The app still answers and has exactly `releases` releases.
async fn intact(c: &mut Clients, token: &str, releases: i32) {
    let list = c
        .releases
        .list_releases(authed(
            token,
            pb::ListReleasesRequest {
                app: "solid".into(),
                ..Default::default()
            },
        ))
        .await
        .expect("a valid request after bad input succeeds")
        .into_inner();
    assert_eq!(list.count, releases, "no half-written state");
}

/// Sends raw bytes as the body of a unary gRPC call.
async fn raw_call(
    p: &TestPlatform,
    token: &str,
    path: &str,
    body: Vec<u8>,
) -> http::Response<tonic::body::Body> {
    let request = http::Request::builder()
        .method("POST")
        .uri(format!("{}{path}", p.url))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("authorization", format!("token {token}"))
        .body(tonic::body::Body::new(Full::new(Bytes::from(body))))
        .unwrap();
    p.channel()
        .await
        .oneshot(request)
        .await
        .expect("the server answers")
}

fn grpc_status(response: &http::Response<tonic::body::Body>) -> Option<String> {
    response
        .headers()
        .get("grpc-status")
        .map(|v| v.to_str().unwrap().to_owned())
}

#[tokio::test]
async fn malformed_requests_get_clear_errors_and_change_nothing() {
    let p = TestPlatform::start().await;
    let t = p.register("alice").await;
    let mut c = p.clients().await;
    c.apps
        .create_app(authed(&t, pb::CreateAppRequest { id: "solid".into() }))
        .await
        .unwrap();

    // A malformed PEM.
    let bad_pem = pb::CreateCertRequest {
        name: "broken".into(),
        certificate: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END".into(),
        key: "-----BEGIN PRIVATE KEY-----\n\u{0}\u{1}\n".into(),
    };
    let err = c.certs.create_cert(authed(&t, bad_pem)).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().starts_with("Could not load certificate"),
        "{}",
        err.message()
    );
    intact(&mut c, &t, 1).await;

    // A 10 MB config value: refused by the message size limit, in one sentence.
    let huge = pb::SetConfigRequest {
        app: "solid".into(),
        values: HashMap::from([("BIG".to_string(), s(&"x".repeat(10 * 1024 * 1024)))]),
        ..Default::default()
    };
    let err = c.config.set_config(authed(&t, huge)).await.unwrap_err();
    assert!(
        matches!(
            err.code(),
            Code::ResourceExhausted | Code::OutOfRange | Code::InvalidArgument
        ),
        "{err:?}"
    );
    assert!(
        err.message().contains("too large") || err.message().contains("limit"),
        "{}",
        err.message()
    );
    intact(&mut c, &t, 1).await;
    // A value under the message limit but over the per-value limit.
    let big = pb::SetConfigRequest {
        app: "solid".into(),
        values: HashMap::from([("BIG".to_string(), s(&"x".repeat(100 * 1024)))]),
        ..Default::default()
    };
    let err = c.config.set_config(authed(&t, big)).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("BIG"), "{}", err.message());
    intact(&mut c, &t, 1).await;

    // An SSH key with control characters.
    let key = pb::AddKeyRequest {
        id: "ctl".into(),
        public: "ssh-ed25519 AAAAC3Nz\u{1b}[31mred\u{0} me".into(),
    };
    assert_eq!(
        code_of(c.keys.add_key(authed(&t, key)).await),
        Code::InvalidArgument
    );
    let key = pb::AddKeyRequest {
        id: "bad\u{7}id".into(),
        public: deis_testkit::random_ed25519_public_key("x"),
    };
    assert_eq!(
        code_of(c.keys.add_key(authed(&t, key)).await),
        Code::InvalidArgument
    );
    let keys = c
        .keys
        .list_keys(authed(&t, pb::ListKeysRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(keys.count, 0);

    // A Unicode app name.
    let err = c
        .apps
        .create_app(authed(&t, pb::CreateAppRequest { id: "αpp".into() }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().starts_with("App name must start"),
        "{}",
        err.message()
    );

    // A truncated gRPC frame: the header announces 100 bytes, 3 arrive.
    let mut truncated = vec![0u8, 0, 0, 0, 100];
    truncated.extend_from_slice(&[0x0a, 0x05, b's']);
    let response = raw_call(&p, &t, "/deis.v2.AppsService/GetApp", truncated).await;
    let status = grpc_status(&response);
    assert!(
        status.as_deref().is_some_and(|s| s != "0"),
        "truncated frame answered with {status:?}"
    );
    // A complete frame whose protobuf is truncated (field length past the end).
    let mut body = vec![0u8, 0, 0, 0, 3];
    body.extend_from_slice(&[0x0a, 0x10, b's']);
    let response = raw_call(&p, &t, "/deis.v2.AppsService/GetApp", body).await;
    let status = grpc_status(&response);
    assert!(
        status.as_deref().is_some_and(|s| s != "0"),
        "truncated protobuf answered with {status:?}"
    );
    // A correct raw frame still works, proving the raw path itself is sound.
    let message = pb::GetAppRequest { id: "solid".into() }.encode_to_vec();
    let mut good = vec![0u8];
    good.extend_from_slice(&(message.len() as u32).to_be_bytes());
    good.extend_from_slice(&message);
    let response = raw_call(&p, &t, "/deis.v2.AppsService/GetApp", good).await;
    assert_eq!(response.status(), 200);
    intact(&mut c, &t, 1).await;

    // Unknown fields are ignored; a valid change still goes through.
    let ok = pb::SetConfigRequest {
        app: "solid".into(),
        values: HashMap::from([("OK".to_string(), s("1"))]),
        ..Default::default()
    };
    c.config.set_config(authed(&t, ok)).await.unwrap();
    intact(&mut c, &t, 2).await;
}
