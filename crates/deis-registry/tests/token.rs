//! The Docker token flow over real HTTP: `GET /v2/token` grants what the
//! caller asks and may do, endpoints accept the token for exactly that, and
//! 401s challenge with `Bearer` (or keep `Basic`) as configured.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{READER, TestRegistry, USER};
use deis_registry::{Grant, RegistryOptions, StaticAuth, TokenOptions};
use http::{Method, StatusCode};

const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

fn options(challenge_bearer: bool) -> RegistryOptions {
    RegistryOptions {
        token: Some(TokenOptions {
            challenge_bearer,
            ..TokenOptions::new(KEY)
        }),
        ..RegistryOptions::default()
    }
}

/// `user` pushes anywhere, `reader` only pulls, `dev` pushes only `mine`.
fn auth() -> StaticAuth {
    common::test_auth().with_user("dev", "pass", Grant::ReadWriteOnly(vec!["mine".into()]))
}

async fn start(auth: StaticAuth, challenge_bearer: bool) -> TestRegistry {
    TestRegistry::start_logged(Arc::new(auth), options(challenge_bearer)).await
}

/// Asks for a token as `user` (or anonymously); returns the reply.
async fn token_reply(
    registry: &TestRegistry,
    user: Option<(&'static str, &'static str)>,
    query: &str,
) -> common::Reply {
    let request = registry.req(Method::GET, &format!("/v2/token?service=deis-registry&{query}"));
    match user {
        Some((name, password)) => request.auth(name, password),
        None => request.anonymous(),
    }
    .send()
    .await
}

async fn token(registry: &TestRegistry, user: Option<(&'static str, &'static str)>, query: &str) -> String {
    let reply = token_reply(registry, user, query).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let json = reply.json();
    assert_eq!(json["token"], json["access_token"]);
    json["token"].as_str().unwrap().to_owned()
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

#[tokio::test]
async fn tokens_grant_what_was_asked_and_allowed() {
    let registry = start(auth(), true).await;
    registry.push_image("mine", "v1").await;
    registry.push_image("theirs", "v1").await;

    let reply = token_reply(
        &registry,
        Some(("dev", "pass")),
        "scope=repository%3Amine%3Apull%2Cpush&scope=repository:theirs:pull,push",
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.header("cache-control"), "no-store");
    let json = reply.json();
    assert_eq!(json["expires_in"], 300);
    let issued = json["issued_at"].as_str().unwrap();
    assert!(issued.ends_with('Z') && issued.len() == 20, "{issued}");
    let dev = json["token"].as_str().unwrap().to_owned();

    let with = |method: Method, path: &str| {
        registry
            .req(method, path)
            .anonymous()
            .header("authorization", &bearer(&dev))
    };
    assert_eq!(with(Method::GET, "/v2/").send().await.status, StatusCode::OK);
    for repository in ["mine", "theirs"] {
        let reply = with(Method::GET, &format!("/v2/{repository}/manifests/v1"))
            .send()
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{repository}: {}", reply.text());
    }
    // Push granted only where dev may push.
    let reply = with(Method::POST, "/v2/mine/blobs/uploads/").send().await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text());
    let reply = with(Method::POST, "/v2/theirs/blobs/uploads/").send().await;
    reply.expect_error(StatusCode::UNAUTHORIZED, "DENIED");
    let host = registry.addr;
    assert_eq!(
        reply.header("www-authenticate"),
        format!(
            "Bearer realm=\"http://{host}/v2/token\",service=\"deis-registry\",scope=\"repository:theirs:pull,push\",error=\"insufficient_scope\""
        )
    );
    // Nothing was asked for other repositories, the catalog or deleting.
    with(Method::GET, "/v2/other/tags/list")
        .send()
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "DENIED");
    with(Method::GET, "/v2/_catalog")
        .send()
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "DENIED");
    with(Method::DELETE, "/v2/mine/manifests/v1")
        .send()
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "DENIED");

    // The catalog and deletion, when asked for and allowed.
    let admin = token(
        &registry,
        Some(USER),
        "scope=registry:catalog:*&scope=repository:mine:*",
    )
    .await;
    let reply = registry
        .req(Method::GET, "/v2/_catalog")
        .anonymous()
        .header("authorization", &bearer(&admin))
        .send()
        .await;
    assert_eq!(
        reply.json()["repositories"],
        serde_json::json!(["mine", "theirs"])
    );
    let reply = registry
        .req(Method::DELETE, "/v2/mine/manifests/v1")
        .anonymous()
        .header("authorization", &bearer(&admin))
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text());

    // A token is not traded for another token.
    let reply = registry
        .req(Method::GET, "/v2/token?scope=repository:mine:pull")
        .anonymous()
        .header("authorization", &bearer(&admin))
        .send()
        .await;
    reply.expect_error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
    registry.stop().await;
}

#[tokio::test]
async fn bad_credentials_forged_and_expired_tokens_are_refused() {
    let registry = start(auth(), true).await;
    registry.push_image("app", "v1").await;
    let host = registry.addr;

    // Wrong credentials: 401 from the token endpoint, with a Basic challenge
    // (it takes Basic credentials); a known user without push still gets a
    // token, with pull only.
    let reply = token_reply(&registry, Some(("user", "wrong")), "scope=repository:app:pull").await;
    reply.expect_error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
    assert_eq!(reply.header("www-authenticate"), "Basic realm=\"deis-registry\"");
    let read_only = token(&registry, Some(READER), "scope=repository:app:pull,push").await;
    let get = |token: String| {
        registry
            .req(Method::GET, "/v2/app/manifests/v1")
            .anonymous()
            .header("authorization", &bearer(&token))
            .send()
    };
    assert_eq!(get(read_only.clone()).await.status, StatusCode::OK);

    // Change one character of the token (keeping it valid base64url).
    let (payload, mac) = read_only.split_once('.').unwrap();
    let mut tampered = payload.as_bytes().to_vec();
    tampered[10] = if tampered[10] == b'A' { b'B' } else { b'A' };
    let forged = format!("{}.{mac}", String::from_utf8(tampered).unwrap());
    for bad in [forged, "garbage".to_owned(), format!("{payload}.{payload}")] {
        let reply = get(bad).await;
        reply.expect_error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
        assert_eq!(
            reply.header("www-authenticate"),
            format!(
                "Bearer realm=\"http://{host}/v2/token\",service=\"deis-registry\",scope=\"repository:app:pull\",error=\"invalid_token\""
            )
        );
    }

    // The same key on a registry whose tokens last two seconds.
    let short = RegistryOptions {
        token: Some(TokenOptions {
            lifetime: Duration::from_secs(2),
            ..TokenOptions::new(KEY)
        }),
        ..RegistryOptions::default()
    };
    let replica = registry.replica(Arc::new(auth()), short).await;
    let reply = token_reply(&replica, Some(READER), "scope=repository:app:pull").await;
    assert_eq!(reply.json()["expires_in"], 2);
    let brief = reply.json()["token"].as_str().unwrap().to_owned();
    // Tokens are self-contained: the first registry accepts it too.
    assert_eq!(get(brief.clone()).await.status, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(3100)).await;
    get(brief)
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
    replica.stop().await;
    registry.stop().await;
}

#[tokio::test]
async fn challenges_point_at_the_token_endpoint_or_stay_basic() {
    let registry = start(auth(), true).await;
    let host = registry.addr;
    let realm = format!("Bearer realm=\"http://{host}/v2/token\",service=\"deis-registry\"");
    let challenge = |path: &'static str, method: Method| {
        let registry = &registry;
        async move {
            let reply = registry.req(method, path).anonymous().send().await;
            reply.expect_error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
            reply.header("www-authenticate").to_owned()
        }
    };
    assert_eq!(challenge("/v2/", Method::GET).await, realm);
    assert_eq!(
        challenge("/v2/_catalog", Method::GET).await,
        format!("{realm},scope=\"registry:catalog:*\"")
    );
    assert_eq!(
        challenge("/v2/a/b/manifests/v1", Method::GET).await,
        format!("{realm},scope=\"repository:a/b:pull\"")
    );
    assert_eq!(
        challenge("/v2/a/blobs/uploads/", Method::POST).await,
        format!("{realm},scope=\"repository:a:pull,push\"")
    );
    // Behind a TLS proxy, and with a Host that cannot be quoted.
    let reply = registry
        .req(Method::GET, "/v2/")
        .anonymous()
        .header("x-forwarded-proto", "https")
        .send()
        .await;
    assert_eq!(
        reply.header("www-authenticate"),
        format!("Bearer realm=\"https://{host}/v2/token\",service=\"deis-registry\"")
    );
    let reply = registry
        .req(Method::GET, "/v2/")
        .anonymous()
        .header("host", "evil\",x=\"y")
        .send()
        .await;
    assert_eq!(reply.header("www-authenticate"), "Basic realm=\"deis-registry\"");

    // Basic credentials keep working in Bearer mode.
    let (_, digest) = registry.push_image("app", "v1").await;
    let reply = registry.get(&format!("/v2/app/manifests/{digest}")).await;
    assert_eq!(reply.status, StatusCode::OK);
    registry.stop().await;

    // With Basic challenges, tokens are still issued and accepted.
    let basic = start(auth(), false).await;
    let reply = basic.req(Method::GET, "/v2/").anonymous().send().await;
    assert_eq!(reply.header("www-authenticate"), "Basic realm=\"deis-registry\"");
    basic.push_image("app", "v1").await;
    let token = token(&basic, Some(READER), "scope=repository:app:pull").await;
    let reply = basic
        .req(Method::GET, "/v2/app/manifests/v1")
        .anonymous()
        .header("authorization", &bearer(&token))
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    basic.stop().await;

    // Behind a proxy, the configured URL.
    let options = RegistryOptions {
        token: Some(TokenOptions {
            realm_url: Some("https://registry.example.com/v2/token".into()),
            ..TokenOptions::new(KEY)
        }),
        ..RegistryOptions::default()
    };
    let proxied = TestRegistry::start_logged(Arc::new(auth()), options).await;
    let reply = proxied.req(Method::GET, "/v2/").anonymous().send().await;
    assert_eq!(
        reply.header("www-authenticate"),
        "Bearer realm=\"https://registry.example.com/v2/token\",service=\"deis-registry\""
    );
    proxied.stop().await;

    // Without the token flow there is no token endpoint.
    let plain = TestRegistry::start().await;
    plain
        .get("/v2/token?scope=repository:app:pull")
        .await
        .expect_error(StatusCode::NOT_FOUND, "UNSUPPORTED");
    plain.stop().await;
}

#[tokio::test]
async fn anonymous_callers_get_pull_only_when_anonymous_pull_is_on() {
    let closed = start(auth(), true).await;
    token_reply(&closed, None, "scope=repository:app:pull")
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
    closed.stop().await;

    let open = start(auth().with_anonymous_pull(), true).await;
    open.push_image("app", "v1").await;
    let anonymous = token(&open, None, "scope=repository:app:pull,push").await;
    let with = |method: Method, path: &str| {
        open.req(method, path)
            .anonymous()
            .header("authorization", &bearer(&anonymous))
    };
    assert_eq!(
        with(Method::GET, "/v2/app/manifests/v1").send().await.status,
        StatusCode::OK
    );
    with(Method::POST, "/v2/app/blobs/uploads/")
        .send()
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "DENIED");
    open.stop().await;
}

#[tokio::test]
async fn a_short_key_turns_the_token_flow_off() {
    let options = RegistryOptions {
        token: Some(TokenOptions::new(&b"too short"[..])),
        ..RegistryOptions::default()
    };
    let registry = TestRegistry::start_logged(Arc::new(auth()), options).await;
    registry
        .get("/v2/token")
        .await
        .expect_error(StatusCode::NOT_FOUND, "UNSUPPORTED");
    let reply = registry.req(Method::GET, "/v2/").anonymous().send().await;
    assert_eq!(reply.header("www-authenticate"), "Basic realm=\"deis-registry\"");
    registry.stop().await;
}
