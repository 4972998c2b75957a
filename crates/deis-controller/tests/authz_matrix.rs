//! Every RPC × {anonymous, stranger, collaborator, owner, admin}, asserting
//! the exact status code. Each case runs on a fresh app (with a build, three
//! releases, a domain and a whitelist entry) so that no case depends on what
//! another one changed.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;

use deis_proto::internal as ipb;
use deis_proto::v2 as pb;
use deis_testkit::{Clients, TestPlatform, authed, code_of, random_ed25519_public_key, test_certificate};
use prost_types::value::Kind;
use tonic::{Code, Request};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Role {
    Anonymous,
    Stranger,
    Collaborator,
    Owner,
    Admin,
}

const ROLES: [Role; 5] = [
    Role::Anonymous,
    Role::Stranger,
    Role::Collaborator,
    Role::Owner,
    Role::Admin,
];

use Code::{Ok as OK, PermissionDenied as PD, Unauthenticated as UA};
const READ: [Code; 5] = [UA, PD, OK, OK, OK];
const WRITE: [Code; 5] = READ;
const OWN: [Code; 5] = [UA, PD, PD, OK, OK];
const SELF: [Code; 5] = [UA, OK, OK, OK, OK];
const ADMIN: [Code; 5] = [UA, PD, PD, PD, OK];
const PUBLIC: [Code; 5] = [OK; 5];
const INTERNAL: [Code; 5] = [UA; 5];

/// Every fixture app's drain (nothing listens there; delivery just retries).
const FIXTURE_DRAIN: &str = "syslog://127.0.0.1:9";

/// What a case gets to work with.
struct Ctx {
    c: Clients,
    /// The acting role's token (None for anonymous).
    token: Option<String>,
    username: String,
    app: String,
    build_uuid: String,
    domain: String,
    n: usize,
}

impl Ctx {
    fn req<T>(&self, message: T) -> Request<T> {
        match &self.token {
            Some(token) => authed(token, message),
            None => Request::new(message),
        }
    }
}

type Outcome = Pin<Box<dyn Future<Output = Result<(), tonic::Status>> + Send>>;
type Call = fn(Ctx) -> Outcome;

fn string_value(s: &str) -> prost_types::Value {
    prost_types::Value {
        kind: Some(Kind::StringValue(s.into())),
    }
}

macro_rules! call {
    (|$ctx:ident| $body:expr) => {{
        fn f($ctx: Ctx) -> Outcome {
            Box::pin(async move {
                #[allow(unused_mut)]
                let mut $ctx = $ctx;
                $body.await.map(|_| ())
            })
        }
        f as Call
    }};
}

fn cases() -> Vec<(&'static str, [Code; 5], Call)> {
    vec![
        (
            "PlatformService/GetPlatformInfo",
            PUBLIC,
            call!(|x| x
                .c
                .platform
                .get_platform_info(x.req(pb::GetPlatformInfoRequest {}))),
        ),
        (
            "AuthService/Whoami",
            SELF,
            call!(|x| x.c.auth.whoami(x.req(pb::WhoamiRequest {}))),
        ),
        (
            "AuthService/ChangePassword",
            SELF,
            call!(|x| {
                let password = format!("{}-password", x.username);
                let req = x.req(pb::ChangePasswordRequest {
                    password: password.clone(),
                    new_password: password,
                    username: String::new(),
                });
                x.c.auth.change_password(req)
            }),
        ),
        (
            "AuthService/RegenerateToken",
            SELF,
            call!(|x| x
                .c
                .auth
                .regenerate_token(x.req(pb::RegenerateTokenRequest::default()))),
        ),
        (
            "AuthService/RegenerateToken(other user)",
            ADMIN,
            call!(|x| {
                x.c.auth.regenerate_token(x.req(pb::RegenerateTokenRequest {
                    username: "extra".into(),
                    all: false,
                }))
            }),
        ),
        (
            "UsersService/ListUsers",
            ADMIN,
            call!(|x| x.c.users.list_users(x.req(pb::ListUsersRequest::default()))),
        ),
        (
            "UsersService/ListAdmins",
            ADMIN,
            call!(|x| x.c.users.list_admins(x.req(pb::ListAdminsRequest::default()))),
        ),
        (
            "UsersService/GrantAdmin",
            ADMIN,
            call!(|x| x.c.users.grant_admin(x.req(pb::GrantAdminRequest {
                username: "extra".into()
            }))),
        ),
        (
            "UsersService/RevokeAdmin",
            ADMIN,
            call!(|x| x.c.users.revoke_admin(x.req(pb::RevokeAdminRequest {
                username: "extra-admin".into()
            }))),
        ),
        (
            "AppsService/CreateApp",
            SELF,
            call!(|x| x.c.apps.create_app(x.req(pb::CreateAppRequest {
                id: format!("new-{}", x.n)
            }))),
        ),
        (
            "AppsService/ListApps",
            SELF,
            call!(|x| x.c.apps.list_apps(x.req(pb::ListAppsRequest::default()))),
        ),
        (
            "AppsService/GetApp",
            READ,
            call!(|x| x.c.apps.get_app(x.req(pb::GetAppRequest { id: x.app.clone() }))),
        ),
        (
            "AppsService/TransferApp",
            OWN,
            call!(|x| x.c.apps.transfer_app(x.req(pb::TransferAppRequest {
                id: x.app.clone(),
                owner: "extra".into()
            }))),
        ),
        (
            "AppsService/DeleteApp",
            OWN,
            call!(|x| x
                .c
                .apps
                .delete_app(x.req(pb::DeleteAppRequest { id: x.app.clone() }))),
        ),
        (
            "AppsService/RunCommand",
            WRITE,
            call!(|x| x.c.apps.run_command(x.req(pb::RunCommandRequest {
                app: x.app.clone(),
                command: "true".into()
            }))),
        ),
        (
            "AppsService/RunAttached",
            WRITE,
            call!(|x| async move {
                use pb::run_attached_request::Kind;
                let messages = [
                    Kind::Start(pb::RunStart {
                        app: x.app.clone(),
                        command: "true".into(),
                        ..Default::default()
                    }),
                    Kind::Eof(pb::RunEof {}),
                ]
                .map(|kind| pb::RunAttachedRequest { kind: Some(kind) });
                let mut responses =
                    x.c.apps
                        .run_attached(x.req(futures::stream::iter(messages)))
                        .await?
                        .into_inner();
                while responses.message().await?.is_some() {}
                Ok::<(), tonic::Status>(())
            }),
        ),
        (
            "AppsService/GetLogs",
            READ,
            call!(|x| x.c.apps.get_logs(x.req(pb::GetLogsRequest {
                app: x.app.clone(),
                log_lines: 10,
                ..Default::default()
            }))),
        ),
        (
            "AppsService/FollowLogs",
            READ,
            call!(|x| x.c.apps.follow_logs(x.req(pb::FollowLogsRequest {
                app: x.app.clone(),
                log_lines: 10,
                ..Default::default()
            }))),
        ),
        (
            "DrainsService/ListDrains",
            READ,
            call!(|x| x
                .c
                .drains
                .list_drains(x.req(pb::ListDrainsRequest { app: x.app.clone() }))),
        ),
        (
            "DrainsService/AddDrain",
            WRITE,
            call!(|x| x.c.drains.add_drain(x.req(pb::AddDrainRequest {
                app: x.app.clone(),
                url: format!("https://logs.example.com/{}", x.n)
            }))),
        ),
        (
            "DrainsService/RemoveDrain",
            WRITE,
            call!(|x| x.c.drains.remove_drain(x.req(pb::RemoveDrainRequest {
                app: x.app.clone(),
                drain: FIXTURE_DRAIN.into()
            }))),
        ),
        (
            "ConfigService/GetConfig",
            READ,
            call!(|x| x
                .c
                .config
                .get_config(x.req(pb::GetConfigRequest { app: x.app.clone() }))),
        ),
        (
            "ConfigService/SetConfig",
            WRITE,
            call!(|x| {
                let values = HashMap::from([(format!("KEY_{}", x.n), string_value("v"))]);
                x.c.config.set_config(x.req(pb::SetConfigRequest {
                    app: x.app.clone(),
                    values,
                    ..Default::default()
                }))
            }),
        ),
        (
            "BuildsService/ListBuilds",
            READ,
            call!(|x| x.c.builds.list_builds(x.req(pb::ListBuildsRequest {
                app: x.app.clone(),
                ..Default::default()
            }))),
        ),
        (
            "BuildsService/GetBuild",
            READ,
            call!(|x| x.c.builds.get_build(x.req(pb::GetBuildRequest {
                app: x.app.clone(),
                uuid: x.build_uuid.clone()
            }))),
        ),
        (
            "BuildsService/CreateBuild",
            WRITE,
            call!(|x| {
                x.c.builds.create_build(x.req(pb::CreateBuildRequest {
                    app: x.app.clone(),
                    image: "example/web:v2".into(),
                    ..Default::default()
                }))
            }),
        ),
        (
            "ReleasesService/ListReleases",
            READ,
            call!(|x| x.c.releases.list_releases(x.req(pb::ListReleasesRequest {
                app: x.app.clone(),
                ..Default::default()
            }))),
        ),
        (
            "ReleasesService/GetRelease",
            READ,
            call!(|x| x.c.releases.get_release(x.req(pb::GetReleaseRequest {
                app: x.app.clone(),
                version: "v2".into()
            }))),
        ),
        (
            "ReleasesService/RollbackRelease",
            WRITE,
            call!(
                |x| x.c.releases.rollback_release(x.req(pb::RollbackReleaseRequest {
                    app: x.app.clone(),
                    version: None
                }))
            ),
        ),
        (
            "DomainsService/ListDomains",
            READ,
            call!(|x| x.c.domains.list_domains(x.req(pb::ListDomainsRequest {
                app: x.app.clone(),
                ..Default::default()
            }))),
        ),
        (
            "DomainsService/AddDomain",
            WRITE,
            call!(|x| x.c.domains.add_domain(x.req(pb::AddDomainRequest {
                app: x.app.clone(),
                domain: format!("new-{}.example.com", x.n)
            }))),
        ),
        (
            "DomainsService/RemoveDomain",
            WRITE,
            call!(|x| x.c.domains.remove_domain(x.req(pb::RemoveDomainRequest {
                app: x.app.clone(),
                domain: x.domain.clone()
            }))),
        ),
        (
            "CertsService/ListCerts",
            SELF,
            call!(|x| x.c.certs.list_certs(x.req(pb::ListCertsRequest::default()))),
        ),
        (
            "CertsService/CreateCert",
            SELF,
            call!(|x| {
                let (certificate, key) = test_certificate();
                x.c.certs.create_cert(x.req(pb::CreateCertRequest {
                    name: format!("cert-{}", x.n),
                    certificate,
                    key,
                }))
            }),
        ),
        (
            "CertsService/GetCert",
            SELF,
            call!(|x| async move {
                own_cert(&mut x).await?;
                x.c.certs
                    .get_cert(x.req(pb::GetCertRequest {
                        name: format!("own-{}", x.n),
                    }))
                    .await
            }),
        ),
        (
            "CertsService/DeleteCert",
            SELF,
            call!(|x| async move {
                own_cert(&mut x).await?;
                x.c.certs
                    .delete_cert(x.req(pb::DeleteCertRequest {
                        name: format!("own-{}", x.n),
                    }))
                    .await
            }),
        ),
        (
            "CertsService/AttachCert",
            WRITE,
            call!(|x| async move {
                own_cert(&mut x).await?;
                x.c.certs
                    .attach_cert(x.req(pb::AttachCertRequest {
                        name: format!("own-{}", x.n),
                        domain: x.domain.clone(),
                    }))
                    .await
            }),
        ),
        (
            "CertsService/DetachCert",
            WRITE,
            call!(|x| async move {
                own_cert(&mut x).await?;
                let name = format!("own-{}", x.n);
                // Attaching may be refused (strangers); detaching is what is checked.
                let _ =
                    x.c.certs
                        .attach_cert(x.req(pb::AttachCertRequest {
                            name: name.clone(),
                            domain: x.domain.clone(),
                        }))
                        .await;
                x.c.certs
                    .detach_cert(x.req(pb::DetachCertRequest {
                        name,
                        domain: x.domain.clone(),
                    }))
                    .await
            }),
        ),
        (
            "KeysService/ListKeys",
            SELF,
            call!(|x| x.c.keys.list_keys(x.req(pb::ListKeysRequest::default()))),
        ),
        (
            "KeysService/AddKey",
            SELF,
            call!(|x| {
                x.c.keys.add_key(x.req(pb::AddKeyRequest {
                    id: format!("key-{}", x.n),
                    public: random_ed25519_public_key("k"),
                }))
            }),
        ),
        (
            "KeysService/GetKey",
            SELF,
            call!(|x| async move {
                own_key(&mut x).await?;
                x.c.keys
                    .get_key(x.req(pb::GetKeyRequest {
                        id: format!("own-key-{}", x.n),
                    }))
                    .await
            }),
        ),
        (
            "KeysService/RemoveKey",
            SELF,
            call!(|x| async move {
                own_key(&mut x).await?;
                x.c.keys
                    .remove_key(x.req(pb::RemoveKeyRequest {
                        id: format!("own-key-{}", x.n),
                    }))
                    .await
            }),
        ),
        (
            "PermsService/ListAppPerms",
            READ,
            call!(|x| x
                .c
                .perms
                .list_app_perms(x.req(pb::ListAppPermsRequest { app: x.app.clone() }))),
        ),
        (
            "PermsService/GrantAppPerm",
            OWN,
            call!(|x| x.c.perms.grant_app_perm(x.req(pb::GrantAppPermRequest {
                app: x.app.clone(),
                username: "extra".into()
            }))),
        ),
        // A collaborator may remove themself (the collaborator is the target here).
        (
            "PermsService/RevokeAppPerm(collaborator)",
            WRITE,
            call!(|x| x.c.perms.revoke_app_perm(x.req(pb::RevokeAppPermRequest {
                app: x.app.clone(),
                username: "collaborator".into()
            }))),
        ),
        (
            "SettingsService/GetAppSettings",
            READ,
            call!(|x| x
                .c
                .settings
                .get_app_settings(x.req(pb::GetAppSettingsRequest { app: x.app.clone() }))),
        ),
        (
            "SettingsService/UpdateAppSettings",
            WRITE,
            call!(|x| {
                x.c.settings
                    .update_app_settings(x.req(pb::UpdateAppSettingsRequest {
                        app: x.app.clone(),
                        maintenance: Some(true),
                        ..Default::default()
                    }))
            }),
        ),
        (
            "SettingsService/ListWhitelist",
            READ,
            call!(|x| x
                .c
                .settings
                .list_whitelist(x.req(pb::ListWhitelistRequest { app: x.app.clone() }))),
        ),
        (
            "SettingsService/AddWhitelist",
            WRITE,
            call!(|x| x.c.settings.add_whitelist(x.req(pb::AddWhitelistRequest {
                app: x.app.clone(),
                addresses: vec!["10.1.0.0/16".into()]
            }))),
        ),
        (
            "SettingsService/RemoveWhitelist",
            WRITE,
            call!(
                |x| x.c.settings.remove_whitelist(x.req(pb::RemoveWhitelistRequest {
                    app: x.app.clone(),
                    addresses: vec!["10.0.0.1".into()]
                }))
            ),
        ),
        (
            "SettingsService/GetTls",
            READ,
            call!(|x| x
                .c
                .settings
                .get_tls(x.req(pb::GetTlsRequest { app: x.app.clone() }))),
        ),
        (
            "SettingsService/SetTls",
            WRITE,
            call!(|x| x.c.settings.set_tls(x.req(pb::SetTlsRequest {
                app: x.app.clone(),
                https_enforced: true
            }))),
        ),
        (
            "PsService/ListPods",
            READ,
            call!(|x| x.c.ps.list_pods(x.req(pb::ListPodsRequest {
                app: x.app.clone(),
                ..Default::default()
            }))),
        ),
        (
            "PsService/ScalePods",
            WRITE,
            call!(|x| {
                x.c.ps.scale_pods(x.req(pb::ScalePodsRequest {
                    app: x.app.clone(),
                    structure: HashMap::from([("web".to_string(), 2)]),
                }))
            }),
        ),
        (
            "PsService/RestartPods",
            WRITE,
            call!(|x| x.c.ps.restart_pods(x.req(pb::RestartPodsRequest {
                app: x.app.clone(),
                ..Default::default()
            }))),
        ),
        (
            "InternalService/LookupKey",
            INTERNAL,
            call!(|x| x.c.internal.lookup_key(x.req(ipb::LookupKeyRequest {
                fingerprint: "SHA256:x".into()
            }))),
        ),
        (
            "InternalService/AuthorizeApp",
            INTERNAL,
            call!(|x| {
                x.c.internal.authorize_app(x.req(ipb::AuthorizeAppRequest {
                    username: "owner".into(),
                    app: x.app.clone(),
                    access: ipb::Access::Write as i32,
                }))
            }),
        ),
        (
            "InternalService/GetBuildConfig",
            INTERNAL,
            call!(
                |x| x.c.internal.get_build_config(x.req(ipb::GetBuildConfigRequest {
                    username: "owner".into(),
                    app: x.app.clone()
                }))
            ),
        ),
        (
            "InternalService/PublishBuild",
            INTERNAL,
            call!(|x| {
                x.c.internal.publish_build(x.req(ipb::PublishBuildRequest {
                    username: "owner".into(),
                    app: x.app.clone(),
                    image: "i".into(),
                    ..Default::default()
                }))
            }),
        ),
    ]
}

/// Creates a certificate owned by the acting user (as that user).
async fn own_cert(x: &mut Ctx) -> Result<(), tonic::Status> {
    if x.token.is_none() {
        return Err(tonic::Status::unauthenticated("anonymous"));
    }
    let (certificate, key) = test_certificate();
    x.c.certs
        .create_cert(x.req(pb::CreateCertRequest {
            name: format!("own-{}", x.n),
            certificate,
            key,
        }))
        .await?;
    Ok(())
}

/// Creates a key owned by the acting user (as that user).
async fn own_key(x: &mut Ctx) -> Result<(), tonic::Status> {
    if x.token.is_none() {
        return Err(tonic::Status::unauthenticated("anonymous"));
    }
    let public = random_ed25519_public_key("own");
    x.c.keys
        .add_key(x.req(pb::AddKeyRequest {
            id: format!("own-key-{}", x.n),
            public,
        }))
        .await?;
    Ok(())
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Anonymous => "",
        Role::Stranger => "stranger",
        Role::Collaborator => "collaborator",
        Role::Owner => "owner",
        Role::Admin => "admin",
    }
}

async fn login(c: &mut Clients, username: &str) -> String {
    c.auth
        .login(pb::LoginRequest {
            username: username.into(),
            password: format!("{username}-password"),
        })
        .await
        .expect("login")
        .into_inner()
        .token
}

/// A fresh app owned by `owner` with `collaborator` on it, a build, releases
/// v1..v4, a domain and a whitelist entry.
async fn fixture(c: &mut Clients, owner: &str, admin: &str, app: &str, domain: &str) -> String {
    c.apps
        .create_app(authed(owner, pb::CreateAppRequest { id: app.into() }))
        .await
        .expect("create app");
    c.perms
        .grant_app_perm(authed(
            owner,
            pb::GrantAppPermRequest {
                app: app.into(),
                username: "collaborator".into(),
            },
        ))
        .await
        .expect("share");
    for n in 0..2 {
        let values = HashMap::from([(format!("SETUP_{n}"), string_value("x"))]);
        c.config
            .set_config(authed(
                owner,
                pb::SetConfigRequest {
                    app: app.into(),
                    values,
                    ..Default::default()
                },
            ))
            .await
            .expect("config");
    }
    let build = c
        .builds
        .create_build(authed(
            owner,
            pb::CreateBuildRequest {
                app: app.into(),
                image: "example/web:v1".into(),
                procfile: HashMap::from([("web".to_string(), "serve".to_string())]),
                ..Default::default()
            },
        ))
        .await
        .expect("build")
        .into_inner()
        .build
        .expect("build in response");
    c.domains
        .add_domain(authed(
            owner,
            pb::AddDomainRequest {
                app: app.into(),
                domain: domain.into(),
            },
        ))
        .await
        .expect("domain");
    c.drains
        .add_drain(authed(
            owner,
            pb::AddDrainRequest {
                app: app.into(),
                url: FIXTURE_DRAIN.into(),
            },
        ))
        .await
        .expect("drain");
    c.settings
        .add_whitelist(authed(
            owner,
            pb::AddWhitelistRequest {
                app: app.into(),
                addresses: vec!["10.0.0.1".into()],
            },
        ))
        .await
        .expect("whitelist");
    let _ = admin;
    build.uuid
}

#[tokio::test]
async fn every_rpc_answers_each_role_with_the_exact_code() {
    let platform = TestPlatform::start().await;
    for name in ["admin", "owner", "collaborator", "stranger", "extra"] {
        platform.register(name).await;
    }
    let mut c = platform.clients().await;
    let admin = login(&mut c, "admin").await;
    c.users
        .grant_admin(authed(
            &admin,
            pb::GrantAdminRequest {
                username: "extra-admin".into(),
            },
        ))
        .await
        .ok();
    platform.register("extra-admin").await;

    let mut failures = Vec::new();
    let mut n = 0;
    let mut tokens = HashMap::new();
    for (name, expected, call) in cases() {
        for (role, expect) in ROLES.iter().zip(expected) {
            n += 1;
            if tokens.is_empty() {
                for r in ROLES.iter().skip(1) {
                    tokens.insert(*r, login(&mut c, role_name(*r)).await);
                }
            }
            let (owner, admin) = (tokens[&Role::Owner].clone(), tokens[&Role::Admin].clone());
            c.users
                .grant_admin(authed(
                    &admin,
                    pb::GrantAdminRequest {
                        username: "extra-admin".into(),
                    },
                ))
                .await
                .expect("grant");
            let app = format!("matrix-{n}");
            let domain = format!("matrix-{n}.example.com");
            let build_uuid = fixture(&mut c, &owner, &admin, &app, &domain).await;
            let token = tokens.get(role).cloned();
            let ctx = Ctx {
                c: c.clone(),
                token,
                username: role_name(*role).into(),
                app,
                build_uuid,
                domain,
                n,
            };
            let got = match call(ctx).await {
                Ok(()) => Code::Ok,
                Err(status) => status.code(),
            };
            if got != expect {
                failures.push(format!("{name} as {role:?}: expected {expect:?}, got {got:?}"));
            }
            if name.starts_with("AuthService/RegenerateToken") {
                // The old token of the target was revoked: log everyone in again.
                tokens.clear();
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatches on {}:\n{}",
        failures.len(),
        platform.backend,
        failures.join("\n")
    );
}

#[tokio::test]
async fn user_scoped_resources_are_invisible_to_other_users() {
    let platform = TestPlatform::start().await;
    let alice = platform.register("alice").await;
    let bob = platform.register("bob").await;
    let mut c = platform.clients().await;
    let (certificate, key) = test_certificate();
    c.certs
        .create_cert(authed(
            &alice,
            pb::CreateCertRequest {
                name: "alice-cert".into(),
                certificate,
                key,
            },
        ))
        .await
        .unwrap();
    c.keys
        .add_key(authed(
            &alice,
            pb::AddKeyRequest {
                id: "alice-key".into(),
                public: random_ed25519_public_key("a"),
            },
        ))
        .await
        .unwrap();
    // Even the administrator (alice is the first user) sees only their own.
    assert_eq!(
        code_of(
            c.certs
                .get_cert(authed(
                    &bob,
                    pb::GetCertRequest {
                        name: "alice-cert".into()
                    }
                ))
                .await
        ),
        Code::NotFound
    );
    assert_eq!(
        code_of(
            c.certs
                .delete_cert(authed(
                    &bob,
                    pb::DeleteCertRequest {
                        name: "alice-cert".into()
                    }
                ))
                .await
        ),
        Code::NotFound
    );
    assert_eq!(
        code_of(
            c.keys
                .get_key(authed(
                    &bob,
                    pb::GetKeyRequest {
                        id: "alice-key".into()
                    }
                ))
                .await
        ),
        Code::NotFound
    );
    assert_eq!(
        code_of(
            c.keys
                .remove_key(authed(
                    &bob,
                    pb::RemoveKeyRequest {
                        id: "alice-key".into()
                    }
                ))
                .await
        ),
        Code::NotFound
    );
    let listed = c
        .certs
        .list_certs(authed(&bob, pb::ListCertsRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.count, 0);
    let listed = c
        .keys
        .list_keys(authed(&bob, pb::ListKeysRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.count, 0);
}
