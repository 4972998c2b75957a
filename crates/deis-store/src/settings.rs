//! The per-app settings and TLS histories: every change is a new revision.

use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, Set, TransactionTrait};

use crate::entity::{app_settings, app_tls};
use crate::json::{from_text, to_text};
use crate::{App, AppSettings, Result, SettingsData, Store, StoreError, Tls, new_uuid, now};

fn settings_record(app: &App, m: app_settings::Model) -> Result<AppSettings> {
    Ok(AppSettings {
        whitelist: from_text("app_settings.whitelist", &m.whitelist)?,
        autoscale: from_text("app_settings.autoscale", &m.autoscale)?,
        label: from_text("app_settings.label", &m.label)?,
        uuid: m.uuid,
        app: app.name.clone(),
        owner: m.owner,
        maintenance: m.maintenance,
        routable: m.routable,
        created: m.created,
        updated: m.updated,
    })
}

fn tls_record(app: &App, m: app_tls::Model) -> Tls {
    Tls {
        uuid: m.uuid,
        app: app.name.clone(),
        owner: m.owner,
        https_enforced: m.https_enforced,
        created: m.created,
        updated: m.updated,
    }
}

impl Store {
    async fn latest_settings_model<C: sea_orm::ConnectionTrait>(
        &self,
        conn: &C,
        app: &App,
    ) -> Result<app_settings::Model> {
        app_settings::Entity::find()
            .filter(app_settings::Column::AppUuid.eq(&app.uuid))
            .order_by_desc(app_settings::Column::Revision)
            .one(conn)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("app {} has no settings", app.name)))
    }

    /// The current settings of an app.
    pub async fn current_settings(&self, app: &App) -> Result<AppSettings> {
        settings_record(app, self.latest_settings_model(&self.db, app).await?)
    }

    /// Records a new settings revision.
    pub async fn save_settings(&self, app: &App, owner: &str, data: &SettingsData) -> Result<AppSettings> {
        let txn = self.db.begin().await?;
        let revision = self.latest_settings_model(&txn, app).await?.revision + 1;
        let created = now();
        let m = app_settings::ActiveModel {
            uuid: Set(new_uuid()),
            app_uuid: Set(app.uuid.clone()),
            revision: Set(revision),
            owner: Set(owner.to_owned()),
            maintenance: Set(data.maintenance),
            routable: Set(data.routable),
            whitelist: Set(to_text(&data.whitelist)?),
            autoscale: Set(to_text(&data.autoscale)?),
            label: Set(to_text(&data.label)?),
            created: Set(created),
            updated: Set(created),
        }
        .insert(&txn)
        .await?;
        txn.commit().await?;
        settings_record(app, m)
    }

    async fn latest_tls_model<C: sea_orm::ConnectionTrait>(
        &self,
        conn: &C,
        app: &App,
    ) -> Result<app_tls::Model> {
        app_tls::Entity::find()
            .filter(app_tls::Column::AppUuid.eq(&app.uuid))
            .order_by_desc(app_tls::Column::Revision)
            .one(conn)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("app {} has no TLS settings", app.name)))
    }

    /// The current HTTPS enforcement of an app.
    pub async fn current_tls(&self, app: &App) -> Result<Tls> {
        Ok(tls_record(app, self.latest_tls_model(&self.db, app).await?))
    }

    /// Records a new HTTPS enforcement revision.
    pub async fn save_tls(&self, app: &App, owner: &str, https_enforced: bool) -> Result<Tls> {
        let txn = self.db.begin().await?;
        let revision = self.latest_tls_model(&txn, app).await?.revision + 1;
        let created = now();
        let m = app_tls::ActiveModel {
            uuid: Set(new_uuid()),
            app_uuid: Set(app.uuid.clone()),
            revision: Set(revision),
            owner: Set(owner.to_owned()),
            https_enforced: Set(Some(https_enforced)),
            created: Set(created),
            updated: Set(created),
        }
        .insert(&txn)
        .await?;
        txn.commit().await?;
        Ok(tls_record(app, m))
    }
}
