//! The record types the store hands out. They carry parsed JSON and names
//! rather than foreign keys, so callers never see the table layout.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use deis_core::ConfigData;
use deis_core::validate::Autoscale;

/// A user account (without its password hash).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub uuid: String,
    pub username: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub is_superuser: bool,
    pub is_staff: bool,
    pub is_active: bool,
    pub date_joined: DateTime<Utc>,
    pub last_login: Option<DateTime<Utc>>,
}

/// A user to create.
#[derive(Clone, Debug)]
pub struct NewUser {
    pub username: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub password_hash: String,
}

/// An application.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct App {
    pub uuid: String,
    /// The app id users type (`myapp`).
    pub name: String,
    pub owner: String,
    pub owner_uuid: String,
    pub structure: BTreeMap<String, i32>,
    pub created: DateTime<Utc>,
    pub updated: DateTime<Utc>,
}

/// One immutable configuration version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub uuid: String,
    pub app: String,
    pub owner: String,
    pub data: ConfigData,
    pub created: DateTime<Utc>,
    pub updated: DateTime<Utc>,
}

/// One build.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Build {
    pub uuid: String,
    pub app: String,
    pub owner: String,
    pub image: String,
    pub sha: String,
    pub procfile: BTreeMap<String, String>,
    pub dockerfile: String,
    pub created: DateTime<Utc>,
    pub updated: DateTime<Utc>,
}

/// A build to record.
#[derive(Clone, Debug, Default)]
pub struct NewBuild {
    pub image: String,
    pub sha: String,
    pub procfile: BTreeMap<String, String>,
    pub dockerfile: String,
}

/// One release.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Release {
    pub uuid: String,
    pub app: String,
    pub owner: String,
    pub version: i32,
    pub summary: String,
    pub failed: bool,
    pub config_uuid: String,
    pub build_uuid: Option<String>,
    pub created: DateTime<Utc>,
    pub updated: DateTime<Utc>,
}

/// A release with its config and build loaded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReleaseState {
    pub release: Release,
    pub config: Config,
    pub build: Option<Build>,
}

/// Where a new release's config comes from.
#[derive(Clone, Debug)]
pub enum ConfigSource {
    /// A new config version with this content.
    New(ConfigData),
    /// An existing config version (rollback, new build).
    Existing(String),
}

/// Where a new release's build comes from.
#[derive(Clone, Debug)]
pub enum BuildSource {
    /// A new build.
    New(NewBuild),
    /// An existing build, or none.
    Existing(Option<String>),
}

/// A domain of an app.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Domain {
    pub uuid: String,
    pub app: String,
    pub owner: String,
    /// ACE form.
    pub domain: String,
    /// Name of the attached certificate.
    pub certificate: Option<String>,
    pub created: DateTime<Utc>,
    pub updated: DateTime<Utc>,
}

/// A log drain of an app.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Drain {
    pub uuid: String,
    pub app: String,
    pub owner: String,
    pub url: String,
    pub created: DateTime<Utc>,
}

/// A TLS certificate (the private key is only in [`CertificateKeyPair`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Certificate {
    pub uuid: String,
    pub owner: String,
    pub owner_uuid: String,
    pub name: String,
    pub certificate: String,
    pub common_name: String,
    pub san: Vec<String>,
    pub fingerprint: String,
    pub expires: DateTime<Utc>,
    pub starts: DateTime<Utc>,
    pub issuer: String,
    pub subject: String,
    pub domains: Vec<String>,
    pub created: DateTime<Utc>,
    pub updated: DateTime<Utc>,
}

/// A certificate to store.
#[derive(Clone, Debug)]
pub struct NewCertificate {
    pub name: String,
    pub certificate: String,
    pub private_key: String,
    pub info: deis_core::cert::CertificateInfo,
}

/// An SSH public key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SshKey {
    pub uuid: String,
    pub owner: String,
    pub name: String,
    pub public_key: String,
    pub md5_fingerprint: String,
    pub sha256_fingerprint: String,
    pub created: DateTime<Utc>,
    pub updated: DateTime<Utc>,
}

/// The settings of an app at one revision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppSettings {
    pub uuid: String,
    pub app: String,
    pub owner: String,
    pub maintenance: bool,
    pub routable: bool,
    pub whitelist: Vec<String>,
    pub autoscale: BTreeMap<String, Autoscale>,
    pub label: BTreeMap<String, String>,
    pub created: DateTime<Utc>,
    pub updated: DateTime<Utc>,
}

/// The content of a settings revision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SettingsData {
    pub maintenance: bool,
    pub routable: bool,
    pub whitelist: Vec<String>,
    pub autoscale: BTreeMap<String, Autoscale>,
    pub label: BTreeMap<String, String>,
}

impl Default for SettingsData {
    fn default() -> Self {
        SettingsData {
            maintenance: false,
            routable: true,
            whitelist: Vec::new(),
            autoscale: BTreeMap::new(),
            label: BTreeMap::new(),
        }
    }
}

impl From<&AppSettings> for SettingsData {
    fn from(s: &AppSettings) -> Self {
        SettingsData {
            maintenance: s.maintenance,
            routable: s.routable,
            whitelist: s.whitelist.clone(),
            autoscale: s.autoscale.clone(),
            label: s.label.clone(),
        }
    }
}

/// HTTPS enforcement of an app at one revision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tls {
    pub uuid: String,
    pub app: String,
    pub owner: String,
    pub https_enforced: Option<bool>,
    pub created: DateTime<Utc>,
    pub updated: DateTime<Utc>,
}

/// One page of a list, and the total count.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page<T> {
    pub count: u64,
    pub items: Vec<T>,
}

/// Offset pagination.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageRequest {
    pub limit: u64,
    pub offset: u64,
}
