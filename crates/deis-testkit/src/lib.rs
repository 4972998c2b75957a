//! Test harness shared by the workspace's tests (not shipped).
//!
//! - [`test_store`] gives a migrated, empty database: a fresh SQLite file, or
//!   a fresh PostgreSQL database when `DEIS_TEST_DATABASE_URL` points at a
//!   server (`buildtools/test` starts a throwaway cluster and runs every
//!   test twice, once per backend).
//! - [`TestPlatform`] serves a real controller on `127.0.0.1:0` over that
//!   database, with the recording scheduler as its runtime (the only test
//!   double; the runtime has its own tests).

use std::net::SocketAddr;
use std::sync::Arc;

use deis_auth::PlatformSecret;
use deis_controller::{Controller, ControllerConfig, RegistrationMode};
use deis_proto::v2::{LoginRequest, RegisterRequest, auth_service_client::AuthServiceClient};
use deis_scheduler::RecordingScheduler;
use deis_store::Store;
use sea_orm::{ConnectionTrait, Database};
use tonic::transport::Channel;

/// Environment variable naming a PostgreSQL server for tests.
pub const TEST_DATABASE_ENV: &str = "DEIS_TEST_DATABASE_URL";

/// Keeps a test database alive (the SQLite file's directory).
pub struct StoreGuard {
    _dir: Option<tempfile::TempDir>,
    /// `sqlite` or `postgres`.
    pub backend: &'static str,
}

/// A fresh, empty PostgreSQL database on the server `DEIS_TEST_DATABASE_URL`
/// names, or `None` when tests run on SQLite.
pub async fn fresh_postgres_database() -> Option<String> {
    let admin_url = std::env::var(TEST_DATABASE_ENV).ok().filter(|u| !u.is_empty())?;
    let name = format!("deis_test_{}", uuid::Uuid::new_v4().simple());
    let admin = Database::connect(admin_url.as_str())
        .await
        .expect("connect to the test PostgreSQL server");
    admin
        .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
        .await
        .expect("create a test database");
    admin.close().await.ok();
    // Swap the database name in the URL's path, keeping any query string.
    let authority_end = admin_url.find("://").map_or(0, |i| i + 3);
    let url = match admin_url[authority_end..].find('/') {
        Some(slash) => {
            let slash = authority_end + slash;
            let query = admin_url[slash..]
                .find('?')
                .map_or("", |q| &admin_url[slash + q..]);
            format!("{}/{name}{query}", &admin_url[..slash])
        }
        None => format!("{admin_url}/{name}"),
    };
    Some(url)
}

/// A migrated, empty store on the backend the environment selects.
pub async fn test_store() -> (Store, StoreGuard) {
    let (url, dir, backend) = match fresh_postgres_database().await {
        Some(url) => (url, None, "postgres"),
        None => {
            let dir = tempfile::tempdir().expect("temporary directory");
            let url = format!("sqlite://{}?mode=rwc", dir.path().join("test.sqlite3").display());
            (url, Some(dir), "sqlite")
        }
    };
    let store = Store::connect(&url).await.expect("open the test database");
    store.migrate().await.expect("migrate the test database");
    (store, StoreGuard { _dir: dir, backend })
}

/// A controller serving on a loopback port.
pub struct TestPlatform {
    /// Where it listens.
    pub addr: SocketAddr,
    /// `http://<addr>`.
    pub url: String,
    /// The controller itself.
    pub controller: Controller,
    /// The recording scheduler behind it.
    pub scheduler: Arc<RecordingScheduler>,
    /// The platform secret internal callers present.
    pub secret: String,
    /// The store (for assertions on state).
    pub store: Store,
    /// Which backend the store uses.
    pub backend: &'static str,
    _guard: StoreGuard,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Drop for TestPlatform {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestPlatform {
    /// A platform where anyone may register.
    pub async fn start() -> TestPlatform {
        Self::start_with(ControllerConfig {
            registration_mode: RegistrationMode::Enabled,
            ..Default::default()
        })
        .await
    }

    /// A platform with the given controller settings.
    pub async fn start_with(config: ControllerConfig) -> TestPlatform {
        let (store, guard) = test_store().await;
        let scheduler = Arc::new(RecordingScheduler::default());
        let secret = deis_auth::issue_token().token;
        let controller = Controller::new(
            store.clone(),
            scheduler.clone(),
            config,
            PlatformSecret::new(secret.clone()).expect("a strong secret"),
            Arc::new(deis_logger::Logger::new(Default::default(), Default::default())),
        );
        let (addr, task) = deis_controller::spawn(
            controller.clone(),
            "127.0.0.1:0".parse().expect("loopback address"),
        )
        .await
        .expect("bind a loopback port");
        TestPlatform {
            addr,
            url: format!("http://{addr}"),
            controller,
            scheduler,
            secret,
            store,
            backend: guard.backend,
            _guard: guard,
            task,
        }
    }

    /// A plain channel to the controller.
    pub async fn channel(&self) -> Channel {
        Channel::from_shared(self.url.clone())
            .expect("valid URL")
            .connect()
            .await
            .expect("connect to the controller")
    }

    /// Registers a user and logs them in; returns their token.
    pub async fn register(&self, username: &str) -> String {
        self.register_as(username, None).await
    }

    /// Registers a user with an existing user's token (admin-only mode) and
    /// logs them in; returns the new user's token.
    pub async fn register_as(&self, username: &str, token: Option<&str>) -> String {
        let mut auth = AuthServiceClient::new(self.channel().await);
        let mut request = tonic::Request::new(RegisterRequest {
            username: username.into(),
            password: format!("{username}-password"),
            email: format!("{username}@example.com"),
            ..Default::default()
        });
        if let Some(token) = token {
            request
                .metadata_mut()
                .insert("authorization", format!("token {token}").parse().expect("header"));
        }
        auth.register(request).await.expect("register");
        auth.login(LoginRequest {
            username: username.into(),
            password: format!("{username}-password"),
        })
        .await
        .expect("login")
        .into_inner()
        .token
    }
}

/// A request carrying `authorization: token <token>`.
pub fn authed<T>(token: &str, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        format!("token {token}").parse().expect("token is ASCII"),
    );
    request
}

/// A request carrying the platform secret.
pub fn internal<T>(secret: &str, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("x-deis-platform-secret", secret.parse().expect("secret is ASCII"));
    request
}

/// Every public service's client over one channel.
#[derive(Clone)]
pub struct Clients {
    pub auth: deis_proto::v2::auth_service_client::AuthServiceClient<Channel>,
    pub users: deis_proto::v2::users_service_client::UsersServiceClient<Channel>,
    pub apps: deis_proto::v2::apps_service_client::AppsServiceClient<Channel>,
    pub config: deis_proto::v2::config_service_client::ConfigServiceClient<Channel>,
    pub builds: deis_proto::v2::builds_service_client::BuildsServiceClient<Channel>,
    pub releases: deis_proto::v2::releases_service_client::ReleasesServiceClient<Channel>,
    pub domains: deis_proto::v2::domains_service_client::DomainsServiceClient<Channel>,
    pub drains: deis_proto::v2::drains_service_client::DrainsServiceClient<Channel>,
    pub certs: deis_proto::v2::certs_service_client::CertsServiceClient<Channel>,
    pub keys: deis_proto::v2::keys_service_client::KeysServiceClient<Channel>,
    pub perms: deis_proto::v2::perms_service_client::PermsServiceClient<Channel>,
    pub settings: deis_proto::v2::settings_service_client::SettingsServiceClient<Channel>,
    pub ps: deis_proto::v2::ps_service_client::PsServiceClient<Channel>,
    pub platform: deis_proto::v2::platform_service_client::PlatformServiceClient<Channel>,
    pub internal: deis_proto::internal::internal_service_client::InternalServiceClient<Channel>,
}

impl Clients {
    /// Clients over `channel`.
    pub fn new(channel: Channel) -> Clients {
        use deis_proto::internal::internal_service_client::InternalServiceClient;
        use deis_proto::v2::*;
        Clients {
            auth: auth_service_client::AuthServiceClient::new(channel.clone()),
            users: users_service_client::UsersServiceClient::new(channel.clone()),
            apps: apps_service_client::AppsServiceClient::new(channel.clone()),
            config: config_service_client::ConfigServiceClient::new(channel.clone()),
            builds: builds_service_client::BuildsServiceClient::new(channel.clone()),
            releases: releases_service_client::ReleasesServiceClient::new(channel.clone()),
            domains: domains_service_client::DomainsServiceClient::new(channel.clone()),
            drains: drains_service_client::DrainsServiceClient::new(channel.clone()),
            certs: certs_service_client::CertsServiceClient::new(channel.clone()),
            keys: keys_service_client::KeysServiceClient::new(channel.clone()),
            perms: perms_service_client::PermsServiceClient::new(channel.clone()),
            settings: settings_service_client::SettingsServiceClient::new(channel.clone()),
            ps: ps_service_client::PsServiceClient::new(channel.clone()),
            platform: platform_service_client::PlatformServiceClient::new(channel.clone()),
            internal: InternalServiceClient::new(channel),
        }
    }
}

impl TestPlatform {
    /// Clients for every service.
    pub async fn clients(&self) -> Clients {
        Clients::new(self.channel().await)
    }
}

/// A syntactically valid, random Ed25519 OpenSSH public key line.
pub fn random_ed25519_public_key(comment: &str) -> String {
    use base64::Engine;
    let mut blob = Vec::new();
    let name = b"ssh-ed25519";
    blob.extend_from_slice(&(name.len() as u32).to_be_bytes());
    blob.extend_from_slice(name);
    blob.extend_from_slice(&32u32.to_be_bytes());
    blob.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    blob.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    format!(
        "ssh-ed25519 {} {comment}",
        base64::engine::general_purpose::STANDARD.encode(blob)
    )
}

/// A self-signed certificate and its key for tests (from deis-core's fixtures).
pub fn test_certificate() -> (String, String) {
    // Embedded at compile time: a test binary may run from another checkout
    // than the one it was built in (a shared target directory).
    (CERT_FIXTURE.to_owned(), KEY_FIXTURE.to_owned())
}

const CERT_FIXTURE: &str = include_str!("../../deis-core/tests/fixtures/certs/san.crt");
const KEY_FIXTURE: &str = include_str!("../../deis-core/tests/fixtures/certs/rsa-pkcs1.key");

/// The status code of a call's result (`Ok` on success).
pub fn code_of<T>(result: Result<T, tonic::Status>) -> tonic::Code {
    result.map_or_else(|s| s.code(), |_| tonic::Code::Ok)
}
