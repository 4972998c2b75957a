//! Domains, certificates and SSH keys.

use std::collections::HashMap;

use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Set,
    TransactionTrait,
};

use crate::entity::{certificate, domain, ssh_key, user};
use crate::json::{from_text, to_text};
use crate::{
    App, Certificate, Domain, NewCertificate, Page, PageRequest, Result, SshKey, Store, StoreError, User,
    new_uuid, now,
};

impl Store {
    async fn certificate_names(&self, ids: Vec<String>) -> Result<HashMap<String, String>> {
        Ok(certificate::Entity::find()
            .filter(certificate::Column::Uuid.is_in(ids))
            .all(&self.db)
            .await?
            .into_iter()
            .map(|c| (c.uuid, c.name))
            .collect())
    }

    async fn domain_records(&self, app: &App, models: Vec<domain::Model>) -> Result<Vec<Domain>> {
        let cert_ids = models.iter().filter_map(|m| m.certificate_uuid.clone()).collect();
        let names = self.certificate_names(cert_ids).await?;
        Ok(models
            .into_iter()
            .map(|m| Domain {
                certificate: m.certificate_uuid.as_ref().and_then(|id| names.get(id).cloned()),
                uuid: m.uuid,
                app: app.name.clone(),
                owner: m.owner,
                domain: m.domain,
                created: m.created,
                updated: m.updated,
            })
            .collect())
    }

    /// An app's domains, by name.
    pub async fn list_domains(&self, app: &App, page: PageRequest) -> Result<Page<Domain>> {
        let query = domain::Entity::find()
            .filter(domain::Column::AppUuid.eq(&app.uuid))
            .order_by_asc(domain::Column::Domain);
        let count = query.clone().count(&self.db).await?;
        let models = query.offset(page.offset).limit(page.limit).all(&self.db).await?;
        Ok(Page {
            count,
            items: self.domain_records(app, models).await?,
        })
    }

    /// The app a domain (ACE form) belongs to, if any.
    pub async fn domain_owner_app(&self, ace: &str) -> Result<Option<App>> {
        let Some(d) = domain::Entity::find()
            .filter(domain::Column::Domain.eq(ace))
            .one(&self.db)
            .await?
        else {
            return Ok(None);
        };
        let app = crate::entity::app::Entity::find_by_id(d.app_uuid)
            .one(&self.db)
            .await?;
        app.map(crate::apps::app_record).transpose()
    }

    /// Adds a domain to an app; `Duplicate` if any app has it.
    pub async fn add_domain(&self, app: &App, owner: &str, ace: &str) -> Result<Domain> {
        let created = now();
        let m = domain::ActiveModel {
            uuid: Set(new_uuid()),
            app_uuid: Set(app.uuid.clone()),
            owner: Set(owner.to_owned()),
            domain: Set(ace.to_owned()),
            certificate_uuid: Set(None),
            created: Set(created),
            updated: Set(created),
        }
        .insert(&self.db)
        .await?;
        Ok(self.domain_records(app, vec![m]).await?.remove(0))
    }

    /// Removes a domain of an app; false if the app has no such domain.
    pub async fn remove_domain(&self, app: &App, ace: &str) -> Result<bool> {
        let result = domain::Entity::delete_many()
            .filter(domain::Column::AppUuid.eq(&app.uuid))
            .filter(domain::Column::Domain.eq(ace))
            .exec(&self.db)
            .await?;
        Ok(result.rows_affected > 0)
    }

    async fn certificate_records(
        &self,
        owner: &User,
        models: Vec<certificate::Model>,
    ) -> Result<Vec<Certificate>> {
        let ids: Vec<String> = models.iter().map(|m| m.uuid.clone()).collect();
        let mut domains: HashMap<String, Vec<String>> = HashMap::new();
        for d in domain::Entity::find()
            .filter(domain::Column::CertificateUuid.is_in(ids))
            .order_by_asc(domain::Column::Domain)
            .all(&self.db)
            .await?
        {
            if let Some(cert) = d.certificate_uuid {
                domains.entry(cert).or_default().push(d.domain);
            }
        }
        models
            .into_iter()
            .map(|m| {
                Ok(Certificate {
                    domains: domains.remove(&m.uuid).unwrap_or_default(),
                    san: from_text("certificates.san", &m.san)?,
                    uuid: m.uuid,
                    owner: owner.username.clone(),
                    owner_uuid: m.owner_uuid,
                    name: m.name,
                    certificate: m.certificate,
                    common_name: m.common_name,
                    fingerprint: m.fingerprint,
                    expires: m.expires,
                    starts: m.starts,
                    issuer: m.issuer,
                    subject: m.subject,
                    created: m.created,
                    updated: m.updated,
                })
            })
            .collect()
    }

    /// A user's certificates, by name.
    pub async fn list_certificates(&self, owner: &User, page: PageRequest) -> Result<Page<Certificate>> {
        let query = certificate::Entity::find()
            .filter(certificate::Column::OwnerUuid.eq(&owner.uuid))
            .order_by_asc(certificate::Column::Name);
        let count = query.clone().count(&self.db).await?;
        let models = query.offset(page.offset).limit(page.limit).all(&self.db).await?;
        Ok(Page {
            count,
            items: self.certificate_records(owner, models).await?,
        })
    }

    /// One of a user's certificates.
    pub async fn find_certificate(&self, owner: &User, name: &str) -> Result<Option<Certificate>> {
        let model = certificate::Entity::find()
            .filter(certificate::Column::OwnerUuid.eq(&owner.uuid))
            .filter(certificate::Column::Name.eq(name))
            .one(&self.db)
            .await?;
        Ok(self
            .certificate_records(owner, model.into_iter().collect())
            .await?
            .pop())
    }

    /// Stores a certificate; `Duplicate` if the name is taken (by anyone).
    pub async fn create_certificate(&self, owner: &User, new: NewCertificate) -> Result<Certificate> {
        let created = now();
        let m = certificate::ActiveModel {
            uuid: Set(new_uuid()),
            owner_uuid: Set(owner.uuid.clone()),
            name: Set(new.name),
            certificate: Set(new.certificate),
            private_key: Set(new.private_key),
            common_name: Set(new.info.common_name),
            san: Set(to_text(&new.info.san)?),
            fingerprint: Set(new.info.fingerprint),
            expires: Set(new.info.expires),
            starts: Set(new.info.starts),
            issuer: Set(new.info.issuer),
            subject: Set(new.info.subject),
            created: Set(created),
            updated: Set(created),
        }
        .insert(&self.db)
        .await?;
        Ok(self.certificate_records(owner, vec![m]).await?.remove(0))
    }

    /// Detaches a certificate from every domain and deletes it.
    pub async fn delete_certificate(&self, cert: &Certificate) -> Result<()> {
        let txn = self.db.begin().await?;
        domain::Entity::update_many()
            .col_expr(
                domain::Column::CertificateUuid,
                sea_orm::sea_query::Expr::value(Option::<String>::None),
            )
            .filter(domain::Column::CertificateUuid.eq(&cert.uuid))
            .exec(&txn)
            .await?;
        certificate::Entity::delete_by_id(cert.uuid.clone())
            .exec(&txn)
            .await?;
        txn.commit().await?;
        Ok(())
    }

    /// Attaches a certificate to a domain (ACE form), or detaches it with `None`.
    /// `Conflict` when attaching to a domain that already has a certificate.
    pub async fn set_domain_certificate(&self, ace: &str, cert: Option<&Certificate>) -> Result<()> {
        let txn = self.db.begin().await?;
        let d = domain::Entity::find()
            .filter(domain::Column::Domain.eq(ace))
            .one(&txn)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("Domain {ace} does not exist")))?;
        if cert.is_some() && d.certificate_uuid.is_some() {
            return Err(StoreError::Conflict(
                "Domain already has a certificate attached to it".into(),
            ));
        }
        domain::ActiveModel {
            uuid: Set(d.uuid),
            certificate_uuid: Set(cert.map(|c| c.uuid.clone())),
            updated: Set(now()),
            ..Default::default()
        }
        .update(&txn)
        .await?;
        txn.commit().await?;
        Ok(())
    }

    fn key_record(owner: &str, m: ssh_key::Model) -> SshKey {
        SshKey {
            uuid: m.uuid,
            owner: owner.to_owned(),
            name: m.name,
            public_key: m.public_key,
            md5_fingerprint: m.md5_fingerprint,
            sha256_fingerprint: m.sha256_fingerprint,
            created: m.created,
            updated: m.updated,
        }
    }

    /// A user's SSH keys, by name.
    pub async fn list_keys(&self, owner: &User, page: PageRequest) -> Result<Page<SshKey>> {
        let query = ssh_key::Entity::find()
            .filter(ssh_key::Column::OwnerUuid.eq(&owner.uuid))
            .order_by_asc(ssh_key::Column::Name);
        let count = query.clone().count(&self.db).await?;
        let models = query.offset(page.offset).limit(page.limit).all(&self.db).await?;
        Ok(Page {
            count,
            items: models
                .into_iter()
                .map(|m| Self::key_record(&owner.username, m))
                .collect(),
        })
    }

    /// One of a user's keys.
    pub async fn find_key(&self, owner: &User, name: &str) -> Result<Option<SshKey>> {
        Ok(ssh_key::Entity::find()
            .filter(ssh_key::Column::OwnerUuid.eq(&owner.uuid))
            .filter(ssh_key::Column::Name.eq(name))
            .one(&self.db)
            .await?
            .map(|m| Self::key_record(&owner.username, m)))
    }

    /// Whether any key has this name, or this public key.
    pub async fn key_exists(&self, name: &str, sha256_fingerprint: &str) -> Result<(bool, bool)> {
        let by_name = ssh_key::Entity::find()
            .filter(ssh_key::Column::Name.eq(name))
            .count(&self.db)
            .await?
            > 0;
        let by_key = ssh_key::Entity::find()
            .filter(ssh_key::Column::Sha256Fingerprint.eq(sha256_fingerprint))
            .count(&self.db)
            .await?
            > 0;
        Ok((by_name, by_key))
    }

    /// Stores a key; `Duplicate` if its name or the key itself is taken.
    pub async fn add_key(
        &self,
        owner: &User,
        name: &str,
        public_key: &str,
        md5: &str,
        sha256: &str,
    ) -> Result<SshKey> {
        let created = now();
        let m = ssh_key::ActiveModel {
            uuid: Set(new_uuid()),
            owner_uuid: Set(owner.uuid.clone()),
            name: Set(name.to_owned()),
            public_key: Set(public_key.to_owned()),
            md5_fingerprint: Set(md5.to_owned()),
            sha256_fingerprint: Set(sha256.to_owned()),
            created: Set(created),
            updated: Set(created),
        }
        .insert(&self.db)
        .await?;
        Ok(Self::key_record(&owner.username, m))
    }

    /// Deletes one of a user's keys; false if there was none.
    pub async fn remove_key(&self, owner: &User, name: &str) -> Result<bool> {
        let result = ssh_key::Entity::delete_many()
            .filter(ssh_key::Column::OwnerUuid.eq(&owner.uuid))
            .filter(ssh_key::Column::Name.eq(name))
            .exec(&self.db)
            .await?;
        Ok(result.rows_affected > 0)
    }

    /// The key with this fingerprint (`SHA256:...` or MD5 hex) and its owner.
    pub async fn find_key_by_fingerprint(&self, fingerprint: &str) -> Result<Option<(SshKey, User)>> {
        let column = if fingerprint.starts_with("SHA256:") {
            ssh_key::Column::Sha256Fingerprint
        } else {
            ssh_key::Column::Md5Fingerprint
        };
        let Some(m) = ssh_key::Entity::find()
            .filter(column.eq(fingerprint))
            .one(&self.db)
            .await?
        else {
            return Ok(None);
        };
        let Some(owner) = user::Entity::find_by_id(m.owner_uuid.clone())
            .one(&self.db)
            .await?
        else {
            return Ok(None);
        };
        Ok(Some((Self::key_record(&owner.username, m), User::from(owner))))
    }
}
