//! Typed gRPC client of the platform API with token authentication.
//!
//! [`DeisClient`] holds one HTTP/2 channel to the controller and hands out
//! the generated service clients of `deis.v2`, each wrapped in a
//! [`TokenInterceptor`] that adds `authorization: token <key>` to every call.
//!
//! ```no_run
//! # async fn demo() -> Result<(), deis_client::ClientError> {
//! use deis_client::{DeisClient, v2::ListAppsRequest};
//!
//! let client = DeisClient::connect("127.0.0.1:8000", Some("secret".into())).await?;
//! let apps = client
//!     .apps()
//!     .list_apps(ListAppsRequest { limit: 100, offset: 0 })
//!     .await
//!     .map_err(ClientError::from)?
//!     .into_inner();
//! # let _ = apps;
//! # Ok(())
//! # }
//! # use deis_client::ClientError;
//! ```

mod error;
mod interceptor;
mod tls;
mod url;

use std::time::Duration;

use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};

pub use deis_proto as proto;
pub use deis_proto::v2;
pub use error::{ClientError, describe_status, terminate};
pub use interceptor::TokenInterceptor;
pub use url::{ControllerUrl, DEFAULT_BUILDER_PORT};

use v2::{
    apps_service_client::AppsServiceClient, auth_service_client::AuthServiceClient,
    builds_service_client::BuildsServiceClient, certs_service_client::CertsServiceClient,
    config_service_client::ConfigServiceClient, domains_service_client::DomainsServiceClient,
    drains_service_client::DrainsServiceClient, keys_service_client::KeysServiceClient,
    perms_service_client::PermsServiceClient, platform_service_client::PlatformServiceClient,
    ps_service_client::PsServiceClient, releases_service_client::ReleasesServiceClient,
    settings_service_client::SettingsServiceClient, users_service_client::UsersServiceClient,
};

/// How long [`DeisClient::connect`] waits for the TCP (and TLS) handshake.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How often an idle connection is pinged by default, and how long a ping
/// may go unanswered before the connection counts as dead.
pub const DEFAULT_KEEP_ALIVE: Duration = Duration::from_secs(10);

/// The channel type every service client runs over: the shared channel with
/// the token interceptor in front.
pub type AuthChannel = InterceptedService<Channel, TokenInterceptor>;

/// How to reach the controller; [`ConnectOptions::default`] suits the CLI.
#[derive(Clone, Debug)]
pub struct ConnectOptions {
    /// Upper bound for establishing the connection. Calls themselves have no
    /// deadline because `apps:run` and deploys legitimately take minutes.
    pub connect_timeout: Duration,
    /// Verify the controller's TLS certificate (only relevant for https://).
    /// `false` mirrors Deis's `--ssl-verify=false` for self-signed setups.
    pub tls_verify: bool,
    /// Sent as the HTTP `user-agent`.
    pub user_agent: String,
    /// How often an idle connection is pinged, and how long a ping may go
    /// unanswered: a controller that stopped answering (while its kernel
    /// still holds the connection) is noticed within twice this.
    pub keep_alive: Duration,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self {
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            tls_verify: true,
            user_agent: format!("deis-client/{}", env!("CARGO_PKG_VERSION")),
            keep_alive: DEFAULT_KEEP_ALIVE,
        }
    }
}

/// A connection to one controller, optionally authenticated with a token.
///
/// Cloning is cheap: clones share the underlying channel.
#[derive(Clone, Debug)]
pub struct DeisClient {
    channel: Channel,
    url: ControllerUrl,
    interceptor: TokenInterceptor,
}

impl DeisClient {
    /// Connects to `controller_url` (`http://…`, `https://…` or a bare
    /// `host:port`, which means `http://`) with the default options.
    ///
    /// Fails with [`ClientError::Unreachable`] when nothing answers, so the
    /// caller learns about a wrong URL before sending anything.
    pub async fn connect(controller_url: &str, token: Option<String>) -> Result<Self, ClientError> {
        Self::connect_with(controller_url, token, &ConnectOptions::default()).await
    }

    /// [`DeisClient::connect`] with explicit options.
    pub async fn connect_with(
        controller_url: &str,
        token: Option<String>,
        options: &ConnectOptions,
    ) -> Result<Self, ClientError> {
        let url = ControllerUrl::parse(controller_url)?;
        let interceptor = TokenInterceptor::new(token.as_deref())?;
        let endpoint = endpoint(&url, options)?;
        let channel = endpoint
            .connect()
            .await
            .map_err(|err| ClientError::unreachable(&url, &err, options.connect_timeout))?;
        Ok(Self {
            channel,
            url,
            interceptor,
        })
    }

    /// The normalised controller URL this client talks to.
    pub fn url(&self) -> &ControllerUrl {
        &self.url
    }

    /// Whether calls carry a token.
    pub fn has_token(&self) -> bool {
        self.interceptor.has_token()
    }

    /// The same connection with another token (or none); used after login.
    pub fn with_token(&self, token: Option<&str>) -> Result<Self, ClientError> {
        Ok(Self {
            channel: self.channel.clone(),
            url: self.url.clone(),
            interceptor: TokenInterceptor::new(token)?,
        })
    }

    fn authed(&self) -> AuthChannel {
        InterceptedService::new(self.channel.clone(), self.interceptor.clone())
    }

    /// `deis.v2.AuthService`: register, login, whoami, passwords, tokens.
    pub fn auth(&self) -> AuthServiceClient<AuthChannel> {
        AuthServiceClient::new(self.authed())
    }

    /// `deis.v2.UsersService`: users and administrators.
    pub fn users(&self) -> UsersServiceClient<AuthChannel> {
        UsersServiceClient::new(self.authed())
    }

    /// `deis.v2.AppsService`: apps, one-off commands and logs.
    pub fn apps(&self) -> AppsServiceClient<AuthChannel> {
        AppsServiceClient::new(self.authed())
    }

    /// `deis.v2.ConfigService`: environment, limits, tags, registry, health checks.
    pub fn config(&self) -> ConfigServiceClient<AuthChannel> {
        ConfigServiceClient::new(self.authed())
    }

    /// `deis.v2.BuildsService`: builds (`deis pull`).
    pub fn builds(&self) -> BuildsServiceClient<AuthChannel> {
        BuildsServiceClient::new(self.authed())
    }

    /// `deis.v2.ReleasesService`: releases and rollbacks.
    pub fn releases(&self) -> ReleasesServiceClient<AuthChannel> {
        ReleasesServiceClient::new(self.authed())
    }

    /// `deis.v2.DomainsService`: an app's domains.
    pub fn domains(&self) -> DomainsServiceClient<AuthChannel> {
        DomainsServiceClient::new(self.authed())
    }

    /// `deis.v2.DrainsService`: an app's log drains.
    pub fn drains(&self) -> DrainsServiceClient<AuthChannel> {
        DrainsServiceClient::new(self.authed())
    }

    /// `deis.v2.CertsService`: TLS certificates.
    pub fn certs(&self) -> CertsServiceClient<AuthChannel> {
        CertsServiceClient::new(self.authed())
    }

    /// `deis.v2.KeysService`: SSH keys for `git push`.
    pub fn keys(&self) -> KeysServiceClient<AuthChannel> {
        KeysServiceClient::new(self.authed())
    }

    /// `deis.v2.PermsService`: app collaborators.
    pub fn perms(&self) -> PermsServiceClient<AuthChannel> {
        PermsServiceClient::new(self.authed())
    }

    /// `deis.v2.SettingsService`: maintenance, routing, whitelist, autoscale, labels, TLS.
    pub fn settings(&self) -> SettingsServiceClient<AuthChannel> {
        SettingsServiceClient::new(self.authed())
    }

    /// `deis.v2.PsService`: processes.
    pub fn ps(&self) -> PsServiceClient<AuthChannel> {
        PsServiceClient::new(self.authed())
    }

    /// `deis.v2.PlatformService`: versions and addresses (needs no token).
    pub fn platform(&self) -> PlatformServiceClient<AuthChannel> {
        PlatformServiceClient::new(self.authed())
    }
}

/// Builds the tonic endpoint for `url`, with TLS when the scheme is https.
fn endpoint(url: &ControllerUrl, options: &ConnectOptions) -> Result<Endpoint, ClientError> {
    let invalid = |reason: String| ClientError::InvalidUrl {
        url: url.as_str().to_owned(),
        reason,
    };
    let endpoint = Endpoint::from_shared(url.as_str().to_owned())
        .map_err(|err| invalid(err.to_string()))?
        .user_agent(options.user_agent.clone())
        .map_err(|err| invalid(err.to_string()))?
        .connect_timeout(options.connect_timeout)
        .tcp_nodelay(true)
        // Long calls (deploys, `apps:run`) sit idle on the wire; keep-alives
        // stop proxies and NAT boxes from dropping them, and tell a
        // controller that stopped answering from one that is busy.
        .http2_keep_alive_interval(options.keep_alive)
        .keep_alive_timeout(options.keep_alive)
        .keep_alive_while_idle(true);
    if !url.is_https() {
        return Ok(endpoint);
    }
    let tls = ClientTlsConfig::new().timeout(options.connect_timeout);
    let configured = if options.tls_verify {
        // System roots first (corporate CAs); the bundled Mozilla roots when
        // the system has none, e.g. in a minimal container.
        endpoint
            .clone()
            .tls_config(tls.clone().with_native_roots())
            .or_else(|_| endpoint.tls_config(tls.with_webpki_roots()))
    } else {
        endpoint.tls_config_with_verifier(tls, tls::insecure_verifier())
    };
    configured.map_err(|err| invalid(format!("TLS setup failed: {err}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(tls_verify: bool) -> ConnectOptions {
        ConnectOptions {
            tls_verify,
            ..ConnectOptions::default()
        }
    }

    #[test]
    fn https_endpoints_get_tls_in_both_verify_modes() -> Result<(), ClientError> {
        let url = ControllerUrl::parse("https://deis.example.com")?;
        for verify in [true, false] {
            let endpoint = endpoint(&url, &options(verify))?;
            assert_eq!(endpoint.uri().scheme_str(), Some("https"));
        }
        Ok(())
    }

    #[test]
    fn http_endpoints_keep_the_timeout() -> Result<(), ClientError> {
        let url = ControllerUrl::parse("127.0.0.1:8000")?;
        let endpoint = endpoint(&url, &options(true))?;
        assert_eq!(endpoint.uri().to_string(), "http://127.0.0.1:8000/");
        assert_eq!(endpoint.get_connect_timeout(), Some(DEFAULT_CONNECT_TIMEOUT));
        Ok(())
    }
}
