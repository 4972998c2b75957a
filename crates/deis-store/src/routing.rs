//! What the router needs of every app, read in a handful of bulk queries so
//! that the whole routing state of thousands of apps rebuilds in
//! milliseconds.

use std::collections::HashMap;

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, Statement};

use crate::entity::{app, app_settings, app_tls, certificate, domain};
use crate::json::from_text;
use crate::{Result, Store};

/// One app as the router sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoutingRecord {
    pub app: String,
    pub routable: bool,
    pub maintenance: bool,
    pub whitelist: Vec<String>,
    pub https_enforced: bool,
    /// Custom domains (ACE form), by name.
    pub domains: Vec<RoutedDomain>,
}

/// A custom domain and the certificate attached to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoutedDomain {
    pub domain: String,
    /// The attached certificate's id (a key of
    /// [`RoutingInputs::certificates`]).
    pub certificate: Option<String>,
}

/// A certificate with its private key.
#[derive(Clone, PartialEq, Eq)]
pub struct RoutingCertificate {
    pub name: String,
    pub certificate: String,
    pub private_key: String,
}

impl std::fmt::Debug for RoutingCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoutingCertificate")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// Everything the routing state is built from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RoutingInputs {
    /// Every app, by name.
    pub apps: Vec<RoutingRecord>,
    /// Certificates attached to some domain, by id.
    pub certificates: HashMap<String, RoutingCertificate>,
}

/// The newest revision of each app's rows in a revisioned table.
fn latest_revisions(table: &str) -> String {
    format!(
        "SELECT t.* FROM {table} t JOIN \
         (SELECT app_uuid, MAX(revision) AS revision FROM {table} GROUP BY app_uuid) m \
         ON t.app_uuid = m.app_uuid AND t.revision = m.revision"
    )
}

impl Store {
    /// The routing inputs of every app.
    pub async fn routing_inputs(&self) -> Result<RoutingInputs> {
        let backend = self.db.get_database_backend();
        let apps = app::Entity::find().all(&self.db).await?;
        let settings: HashMap<String, app_settings::Model> = app_settings::Entity::find()
            .from_raw_sql(Statement::from_string(backend, latest_revisions("app_settings")))
            .all(&self.db)
            .await?
            .into_iter()
            .map(|m| (m.app_uuid.clone(), m))
            .collect();
        let tls: HashMap<String, bool> = app_tls::Entity::find()
            .from_raw_sql(Statement::from_string(backend, latest_revisions("app_tls")))
            .all(&self.db)
            .await?
            .into_iter()
            .map(|m| (m.app_uuid, m.https_enforced.unwrap_or(false)))
            .collect();
        let mut domains: HashMap<String, Vec<RoutedDomain>> = HashMap::new();
        for d in domain::Entity::find().all(&self.db).await? {
            domains.entry(d.app_uuid).or_default().push(RoutedDomain {
                domain: d.domain,
                certificate: d.certificate_uuid,
            });
        }
        let attached: Vec<String> = domains
            .values()
            .flatten()
            .filter_map(|d| d.certificate.clone())
            .collect();
        let certificates = if attached.is_empty() {
            HashMap::new()
        } else {
            certificate::Entity::find()
                .filter(certificate::Column::Uuid.is_in(attached))
                .all(&self.db)
                .await?
                .into_iter()
                .map(|c| {
                    let cert = RoutingCertificate {
                        name: c.name,
                        certificate: c.certificate,
                        private_key: c.private_key,
                    };
                    (c.uuid, cert)
                })
                .collect()
        };
        let mut records = Vec::with_capacity(apps.len());
        for a in apps {
            let Some(s) = settings.get(&a.uuid) else {
                continue;
            };
            let mut app_domains = domains.remove(&a.uuid).unwrap_or_default();
            app_domains.sort_by(|x, y| x.domain.cmp(&y.domain));
            records.push(RoutingRecord {
                routable: s.routable,
                maintenance: s.maintenance,
                whitelist: from_text("app_settings.whitelist", &s.whitelist)?,
                https_enforced: tls.get(&a.uuid).copied().unwrap_or(false),
                domains: app_domains,
                app: a.name,
            });
        }
        records.sort_by(|x, y| x.app.cmp(&y.app));
        Ok(RoutingInputs {
            apps: records,
            certificates,
        })
    }
}
