//! Accounts and tokens: registration modes, the first user as administrator,
//! login and its rate limit, passwords, cancellation and token regeneration.

use deis_controller::{ControllerConfig, RegistrationMode};
use deis_proto::v2 as pb;
use deis_testkit::{TestPlatform, authed, code_of};
use tonic::{Code, Request};

fn register(username: &str) -> pb::RegisterRequest {
    pb::RegisterRequest {
        username: username.into(),
        password: format!("{username}-password"),
        email: format!("{username}@example.com"),
        ..Default::default()
    }
}

fn login(username: &str, password: &str) -> pb::LoginRequest {
    pb::LoginRequest {
        username: username.into(),
        password: password.into(),
    }
}

#[tokio::test]
async fn the_first_user_becomes_admin_and_admin_only_mode_holds() {
    let p = TestPlatform::start_with(ControllerConfig {
        registration_mode: RegistrationMode::AdminOnly,
        ..Default::default()
    })
    .await;
    let mut c = p.clients().await;
    let first = c
        .auth
        .register(Request::new(register("root")))
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    assert!(first.is_superuser && first.is_staff);
    // Now only an administrator may register others.
    let err = c.auth.register(Request::new(register("eve"))).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let root = c
        .auth
        .login(login("root", "root-password"))
        .await
        .unwrap()
        .into_inner()
        .token;
    let bob = c
        .auth
        .register(authed(&root, register("bob")))
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    assert!(!bob.is_superuser);
    let bob_token = c
        .auth
        .login(login("bob", "bob-password"))
        .await
        .unwrap()
        .into_inner()
        .token;
    assert_eq!(
        code_of(c.auth.register(authed(&bob_token, register("carol"))).await),
        Code::PermissionDenied
    );
    // Duplicate names are refused with Deis's message.
    let err = c.auth.register(authed(&root, register("bob"))).await.unwrap_err();
    assert_eq!(
        (err.code(), err.message()),
        (Code::AlreadyExists, "A user with that username already exists.")
    );
}

#[tokio::test]
async fn disabled_registration_refuses_everyone_but_the_first_user() {
    let p = TestPlatform::start_with(ControllerConfig {
        registration_mode: RegistrationMode::Disabled,
        ..Default::default()
    })
    .await;
    let mut c = p.clients().await;
    let err = c.auth.register(Request::new(register("root"))).await.unwrap_err();
    assert_eq!(
        (err.code(), err.message()),
        (Code::PermissionDenied, "Registration is disabled")
    );
}

#[tokio::test]
async fn login_whoami_and_bad_credentials() {
    let p = TestPlatform::start().await;
    let token = p.register("alice").await;
    let mut c = p.clients().await;
    let me = c
        .auth
        .whoami(authed(&token, pb::WhoamiRequest {}))
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    assert_eq!(me.username, "alice");
    assert!(me.last_login.is_some());
    assert_eq!(token.len(), 64, "256-bit tokens, hex encoded");

    let err = c.auth.login(login("alice", "wrong")).await.unwrap_err();
    assert_eq!(
        (err.code(), err.message()),
        (
            Code::Unauthenticated,
            "Unable to log in with provided credentials."
        )
    );
    let err = c.auth.login(login("nobody", "x")).await.unwrap_err();
    assert_eq!(err.message(), "Unable to log in with provided credentials.");
    // A bad token, a malformed header and no header.
    assert_eq!(
        code_of(
            c.auth
                .whoami(authed("0".repeat(64).as_str(), pb::WhoamiRequest {}))
                .await
        ),
        Code::Unauthenticated
    );
    let mut bad = Request::new(pb::WhoamiRequest {});
    bad.metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    assert_eq!(code_of(c.auth.whoami(bad).await), Code::Unauthenticated);
    assert_eq!(
        code_of(c.auth.whoami(Request::new(pb::WhoamiRequest {})).await),
        Code::Unauthenticated
    );
    // The keyword is case-insensitive, as in Deis.
    let mut upper = Request::new(pb::WhoamiRequest {});
    upper
        .metadata_mut()
        .insert("authorization", format!("Token {token}").parse().unwrap());
    assert_eq!(code_of(c.auth.whoami(upper).await), Code::Ok);
}

#[tokio::test]
async fn login_attempts_are_rate_limited_per_username() {
    let p = TestPlatform::start().await;
    p.register("alice").await;
    let mut c = p.clients().await;
    for _ in 0..10 {
        assert_eq!(
            code_of(c.auth.login(login("alice", "guess")).await),
            Code::Unauthenticated
        );
    }
    // Even the right password is refused while the limit holds.
    let err = c.auth.login(login("alice", "alice-password")).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert!(
        err.message().starts_with("Too many failed login attempts"),
        "{}",
        err.message()
    );
    // Other users are not locked out by alice's attacker (address limit is higher).
    p.register("bob").await;
}

#[tokio::test]
async fn passwords_change_and_admins_may_reset_them() {
    let p = TestPlatform::start().await;
    let admin = p.register("admin").await;
    let alice = p.register("alice").await;
    let mut c = p.clients().await;
    let change = |password: &str, new: &str, username: &str| pb::ChangePasswordRequest {
        password: password.into(),
        new_password: new.into(),
        username: username.into(),
    };
    let err = c
        .auth
        .change_password(authed(&alice, change("alice-password", "", "")))
        .await
        .unwrap_err();
    assert_eq!(err.message(), "new_password is a required field");
    let err = c
        .auth
        .change_password(authed(&alice, change("", "n3w", "")))
        .await
        .unwrap_err();
    assert_eq!(err.message(), "password is a required field");
    let err = c
        .auth
        .change_password(authed(&alice, change("wrong", "n3w", "")))
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), err.message()),
        (Code::Unauthenticated, "Current password does not match")
    );
    c.auth
        .change_password(authed(&alice, change("alice-password", "n3w", "")))
        .await
        .unwrap();
    c.auth.login(login("alice", "n3w")).await.unwrap();
    // Another user's password: administrators only, no current password needed.
    assert_eq!(
        code_of(
            c.auth
                .change_password(authed(&alice, change("", "x", "admin")))
                .await
        ),
        Code::PermissionDenied
    );
    c.auth
        .change_password(authed(&admin, change("", "reset", "alice")))
        .await
        .unwrap();
    c.auth.login(login("alice", "reset")).await.unwrap();
}

#[tokio::test]
async fn regenerating_tokens_revokes_the_old_ones() {
    let p = TestPlatform::start().await;
    let admin = p.register("admin").await;
    let alice = p.register("alice").await;
    let mut c = p.clients().await;
    let new = c
        .auth
        .regenerate_token(authed(&alice, pb::RegenerateTokenRequest::default()))
        .await
        .unwrap()
        .into_inner()
        .token;
    assert_ne!(new, alice);
    assert_eq!(
        code_of(c.auth.whoami(authed(&alice, pb::WhoamiRequest {})).await),
        Code::Unauthenticated
    );
    assert_eq!(
        code_of(c.auth.whoami(authed(&new, pb::WhoamiRequest {})).await),
        Code::Ok
    );
    // --all: everybody's tokens go, the administrator's too.
    let all = pb::RegenerateTokenRequest {
        username: String::new(),
        all: true,
    };
    assert_eq!(
        code_of(c.auth.regenerate_token(authed(&new, all.clone())).await),
        Code::PermissionDenied
    );
    let out = c
        .auth
        .regenerate_token(authed(&admin, all))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(out.token, "");
    assert_eq!(
        code_of(c.auth.whoami(authed(&new, pb::WhoamiRequest {})).await),
        Code::Unauthenticated
    );
    assert_eq!(
        code_of(c.auth.whoami(authed(&admin, pb::WhoamiRequest {})).await),
        Code::Unauthenticated
    );
}

#[tokio::test]
async fn cancelling_an_account() {
    let p = TestPlatform::start().await;
    let admin = p.register("admin").await;
    let alice = p.register("alice").await;
    let bob = p.register("bob").await;
    let mut c = p.clients().await;
    c.apps
        .create_app(authed(&alice, pb::CreateAppRequest { id: "mine".into() }))
        .await
        .unwrap();
    let cancel = |username: &str| pb::CancelAccountRequest {
        username: username.into(),
    };
    let err = c
        .auth
        .cancel_account(authed(&alice, cancel("")))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(
        err.message(),
        "alice still has applications assigned. Delete or transfer ownership"
    );
    assert_eq!(
        code_of(c.auth.cancel_account(authed(&alice, cancel("bob"))).await),
        Code::PermissionDenied
    );
    let err = c
        .auth
        .cancel_account(authed(&admin, cancel("")))
        .await
        .unwrap_err();
    assert!(err.message().contains("last administrator"), "{}", err.message());
    c.auth.cancel_account(authed(&bob, cancel(""))).await.unwrap();
    assert_eq!(
        code_of(c.auth.whoami(authed(&bob, pb::WhoamiRequest {})).await),
        Code::Unauthenticated
    );
    c.apps
        .transfer_app(authed(
            &alice,
            pb::TransferAppRequest {
                id: "mine".into(),
                owner: "admin".into(),
            },
        ))
        .await
        .unwrap();
    c.auth
        .cancel_account(authed(&admin, cancel("alice")))
        .await
        .unwrap();
    let users = c
        .users
        .list_users(authed(&admin, pb::ListUsersRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        users
            .results
            .iter()
            .map(|u| u.username.as_str())
            .collect::<Vec<_>>(),
        vec!["admin"]
    );
}

#[tokio::test]
async fn internal_api_takes_only_the_platform_secret() {
    use deis_proto::internal as ipb;
    let p = TestPlatform::start().await;
    let alice = p.register("alice").await;
    let mut c = p.clients().await;
    c.apps
        .create_app(authed(&alice, pb::CreateAppRequest { id: "svc".into() }))
        .await
        .unwrap();
    let key = deis_testkit::random_ed25519_public_key("laptop");
    let added = c
        .keys
        .add_key(authed(
            &alice,
            pb::AddKeyRequest {
                id: "laptop".into(),
                public: key,
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .key
        .unwrap();

    let lookup = ipb::LookupKeyRequest {
        fingerprint: added.sha256_fingerprint.clone(),
    };
    // A user token opens nothing here.
    assert_eq!(
        code_of(c.internal.lookup_key(authed(&alice, lookup.clone())).await),
        Code::Unauthenticated
    );
    let mut wrong = Request::new(lookup.clone());
    wrong
        .metadata_mut()
        .insert("x-deis-platform-secret", "not-the-secret".parse().unwrap());
    assert_eq!(
        code_of(c.internal.lookup_key(wrong).await),
        Code::PermissionDenied
    );
    // And the platform secret is no user token.
    assert_eq!(
        code_of(c.auth.whoami(authed(&p.secret, pb::WhoamiRequest {})).await),
        Code::Unauthenticated
    );

    let found = c
        .internal
        .lookup_key(deis_testkit::internal(&p.secret, lookup))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (found.username.as_str(), found.key_id.as_str()),
        ("alice", "laptop")
    );
    let by_md5 = ipb::LookupKeyRequest {
        fingerprint: added.fingerprint.clone(),
    };
    assert_eq!(
        c.internal
            .lookup_key(deis_testkit::internal(&p.secret, by_md5))
            .await
            .unwrap()
            .into_inner()
            .username,
        "alice"
    );

    let bob = p.register("bob").await;
    let _ = bob;
    let authorize = |username: &str| ipb::AuthorizeAppRequest {
        username: username.into(),
        app: "svc".into(),
        access: ipb::Access::Write as i32,
    };
    c.internal
        .authorize_app(deis_testkit::internal(&p.secret, authorize("alice")))
        .await
        .unwrap();
    assert_eq!(
        code_of(
            c.internal
                .authorize_app(deis_testkit::internal(&p.secret, authorize("bob")))
                .await
        ),
        Code::PermissionDenied
    );
    let published = c
        .internal
        .publish_build(deis_testkit::internal(
            &p.secret,
            ipb::PublishBuildRequest {
                username: "alice".into(),
                app: "svc".into(),
                image: "home/svc:git-12345678/push/slug.tgz".into(),
                sha: "1234567890abcdef1234567890abcdef12345678".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(published.version, 2);
    let r = c
        .releases
        .get_release(authed(
            &alice,
            pb::GetReleaseRequest {
                app: "svc".into(),
                version: "v2".into(),
            },
        ))
        .await
        .unwrap();
    assert_eq!(r.into_inner().release.unwrap().summary, "alice deployed 1234567");
}
