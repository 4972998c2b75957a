//! The platform's routing state, as plain data: what the controller knows
//! about every routable app (domains, certificates, settings) joined with
//! the ready endpoints the runtime publishes. The xDS feed is a pure
//! function of this and the platform's [`RouterSettings`].
//!
//! Architecture invariant: no I/O and no protocol types; the controller
//! produces it, `deis-xds` translates it.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use ipnet::IpNet;

/// Every routed app, by name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RoutingState {
    pub apps: BTreeMap<String, AppRoute>,
}

/// How one app is routed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AppRoute {
    /// Custom domains (ACE form, lower case). The default domain
    /// `<app>.<platform domain>` is implied.
    pub domains: Vec<String>,
    /// Certificates attached to its domains.
    pub certificates: Vec<TlsCertificate>,
    /// `tls:enable`: plain HTTP requests are redirected to HTTPS.
    pub https_only: bool,
    /// Maintenance mode: every request gets 503 and the maintenance page.
    pub maintenance: bool,
    /// Source networks allowed to reach the app; empty: everyone.
    pub whitelist: Vec<IpNet>,
    /// Ready processes of its routable type.
    pub endpoints: Vec<SocketAddr>,
}

/// A certificate with its key and the domains it serves.
#[derive(Clone, PartialEq, Eq)]
pub struct TlsCertificate {
    /// Its name (`deis certs`), for logs.
    pub name: String,
    /// The domains it is attached to (exact or `*.` wildcards).
    pub server_names: Vec<String>,
    /// PEM chain, leaf first.
    pub certificate_chain: String,
    /// PEM private key.
    pub private_key: String,
}

impl std::fmt::Debug for TlsCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsCertificate")
            .field("name", &self.name)
            .field("server_names", &self.server_names)
            .finish_non_exhaustive()
    }
}

/// Platform-wide router settings (from `deis-workflow` flags).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouterSettings {
    /// Apps answer at `<app>.<platform_domain>`.
    pub platform_domain: String,
    /// The address routers listen on.
    pub bind: IpAddr,
    /// Plain HTTP port.
    pub http_port: u16,
    /// HTTPS port (a listener exists only when some certificate does).
    pub https_port: u16,
    /// Served for `*.<platform_domain>` when set.
    pub platform_certificate: Option<TlsCertificate>,
    /// The builder's SSH port exposed through the router, as Deis did.
    pub builder: Option<BuilderRoute>,
    /// How long connecting to an app process may take (Deis: 30 s).
    pub connect_timeout: Duration,
    /// How long a request may wait for its response (Deis: 1300 s).
    pub request_timeout: Duration,
}

/// A TCP listener that forwards to the builder's SSH server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BuilderRoute {
    /// The router's port for it.
    pub port: u16,
    /// Where the builder listens.
    pub target: SocketAddr,
}

impl RouterSettings {
    /// Deis's defaults on loopback: `<app>.localhost`, 8080 and 8443.
    pub fn local() -> RouterSettings {
        RouterSettings {
            platform_domain: "localhost".into(),
            bind: IpAddr::from([127, 0, 0, 1]),
            http_port: 8080,
            https_port: 8443,
            platform_certificate: None,
            builder: None,
            connect_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(1300),
        }
    }

    /// The default domain of an app.
    pub fn default_domain(&self, app: &str) -> String {
        format!("{app}.{}", self.platform_domain)
    }
}

/// The maintenance page (Deis served a static page from the router image).
pub const MAINTENANCE_PAGE: &str = "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Down for maintenance</title></head>\n<body><h1>Down for maintenance</h1><p>This app is undergoing maintenance. Please check back soon.</p></body></html>\n";
